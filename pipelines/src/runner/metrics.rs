//! Per-camera numbers of a `--cameras` run, and the Prometheus text they are served as on
//! `METRICS_PORT` (`GET /metrics`). Camera names are the only labels; URIs (which may hold
//! credentials) never appear.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::report::Stats;

/// The window over which frames per second are counted.
const FPS_WINDOW: Duration = Duration::from_secs(5);

/// One camera's numbers; kept across restarts of its pipeline, dropped when it leaves the file.
#[derive(Default)]
pub struct CameraState {
    pub stats: Mutex<Stats>,
    /// Frames are arriving from the camera (false while it is away or not started).
    pub up: AtomicBool,
    /// Times the camera went away (`tritoncamerasrc` state "lost").
    pub outages: AtomicU64,
    /// Times its pipeline failed and was started again.
    pub restarts: AtomicU64,
    recent: Mutex<VecDeque<Instant>>,
}

impl CameraState {
    /// Notes that a frame left `tritoninfer` now (for frames per second).
    pub fn tick(&self, now: Instant) {
        let mut r = self.recent.lock().unwrap();
        r.push_back(now);
        while r
            .front()
            .is_some_and(|t| now.duration_since(*t) > FPS_WINDOW)
        {
            r.pop_front();
        }
    }

    /// Frames per second over the last [`FPS_WINDOW`].
    pub fn fps(&self, now: Instant) -> f64 {
        let r = self.recent.lock().unwrap();
        let n = r
            .iter()
            .filter(|t| now.duration_since(**t) <= FPS_WINDOW)
            .count();
        n as f64 / FPS_WINDOW.as_secs_f64()
    }
}

/// Every camera of the run, by name.
pub type Board = Arc<Mutex<BTreeMap<String, Arc<CameraState>>>>;

/// The Prometheus text exposition of the board.
pub fn render(board: &Board, now: Instant) -> String {
    let cams: Vec<(String, Arc<CameraState>)> = board
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = String::new();
    out.push_str("# HELP triton_video_cameras Cameras in the cameras file being run.\n");
    out.push_str("# TYPE triton_video_cameras gauge\n");
    out.push_str(&format!("triton_video_cameras {}\n", cams.len()));
    type Read = fn(&CameraState, Instant) -> String;
    let families: [(&str, &str, &str, Read); 10] = [
        (
            "up",
            "gauge",
            "1 while frames arrive from the camera, 0 while it is away or not started.",
            |c, _| u8::from(c.up.load(Ordering::SeqCst)).to_string(),
        ),
        (
            "frames_total",
            "counter",
            "Frames that left tritoninfer.",
            |c, _| c.stats.lock().unwrap().frames.to_string(),
        ),
        (
            "ok_frames_total",
            "counter",
            "Frames with an inference result.",
            |c, _| c.stats.lock().unwrap().ok.to_string(),
        ),
        (
            "error_frames_total",
            "counter",
            "Frames whose inference failed.",
            |c, _| c.stats.lock().unwrap().errors.to_string(),
        ),
        (
            "no_signal_frames_total",
            "counter",
            "Frames made while the camera was away (no request).",
            |c, _| c.stats.lock().unwrap().no_signal.to_string(),
        ),
        (
            "outages_total",
            "counter",
            "Times the camera went away.",
            |c, _| c.outages.load(Ordering::SeqCst).to_string(),
        ),
        (
            "restarts_total",
            "counter",
            "Times the camera's pipeline failed and was started again.",
            |c, _| c.restarts.load(Ordering::SeqCst).to_string(),
        ),
        (
            "fps",
            "gauge",
            "Frames per second over the last 5 s.",
            |c, now| format!("{:.2}", c.fps(now)),
        ),
        (
            "inference_latency_seconds_sum",
            "counter",
            "Summed request-to-answer time of the ok frames.",
            |c, _| format!("{:.6}", c.stats.lock().unwrap().latency_sum_ms / 1000.0),
        ),
        (
            "inference_latency_seconds_count",
            "counter",
            "Ok frames in the latency sum.",
            |c, _| c.stats.lock().unwrap().ok.to_string(),
        ),
    ];
    for (name, kind, help, read) in families {
        out.push_str(&format!("# HELP triton_video_camera_{name} {help}\n"));
        out.push_str(&format!("# TYPE triton_video_camera_{name} {kind}\n"));
        for (cam, c) in &cams {
            out.push_str(&format!(
                "triton_video_camera_{name}{{camera=\"{cam}\"}} {}\n",
                read(c, now)
            ));
        }
    }
    out
}

/// Serves the board on `0.0.0.0:port` from a thread of its own: `GET /metrics` (or `/`).
pub fn serve(port: u16, board: Board) -> std::io::Result<u16> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let bound = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if line.starts_with("GET ") && (path == "/metrics" || path == "/") {
                    ("200 OK", render(&board, Instant::now()))
                } else {
                    ("404 Not Found", "GET /metrics\n".to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_one_series_per_camera_and_family() {
        let board: Board = Default::default();
        let now = Instant::now();
        let door = Arc::new(CameraState::default());
        door.up.store(true, Ordering::SeqCst);
        door.outages.store(2, Ordering::SeqCst);
        {
            let mut s = door.stats.lock().unwrap();
            s.frames = 12;
            s.ok = 10;
            s.errors = 1;
            s.no_signal = 1;
            s.latency_sum_ms = 250.0;
        }
        for i in 0..10 {
            door.tick(now - Duration::from_millis(100 * i));
        }
        door.tick(now - Duration::from_secs(9));
        board.lock().unwrap().insert("door".into(), door);
        board
            .lock()
            .unwrap()
            .insert("yard".into(), Arc::new(CameraState::default()));
        let t = render(&board, now);
        for want in [
            "triton_video_cameras 2\n",
            "triton_video_camera_up{camera=\"door\"} 1\n",
            "triton_video_camera_up{camera=\"yard\"} 0\n",
            "triton_video_camera_frames_total{camera=\"door\"} 12\n",
            "triton_video_camera_ok_frames_total{camera=\"door\"} 10\n",
            "triton_video_camera_error_frames_total{camera=\"door\"} 1\n",
            "triton_video_camera_no_signal_frames_total{camera=\"door\"} 1\n",
            "triton_video_camera_outages_total{camera=\"door\"} 2\n",
            "triton_video_camera_fps{camera=\"door\"} 2.00\n",
            "triton_video_camera_inference_latency_seconds_sum{camera=\"door\"} 0.250000\n",
            "triton_video_camera_inference_latency_seconds_count{camera=\"door\"} 10\n",
            "# TYPE triton_video_camera_frames_total counter\n",
        ] {
            assert!(t.contains(want), "{want:?} missing from\n{t}");
        }
    }

    #[test]
    fn served_over_http() {
        let board: Board = Default::default();
        board
            .lock()
            .unwrap()
            .insert("c1".into(), Arc::new(CameraState::default()));
        let port = serve(0, board).unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        };
        let r = get("/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("triton_video_camera_up{camera=\"c1\"} 0\n"),
            "{r}"
        );
        assert!(get("/nope").starts_with("HTTP/1.1 404"), "404");
    }
}

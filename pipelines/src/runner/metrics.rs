//! Per-camera numbers of a `--cameras` run, and the Prometheus text they are served as on
//! `METRICS_PORT` and the API (`GET /metrics`, [`super::api`]). Camera names are the only labels; URIs (which may hold
//! credentials) never appear.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::report::Stats;

/// The window over which frames per second are counted.
const FPS_WINDOW: Duration = Duration::from_secs(5);

pub use super::events::Phase;

/// A camera's phase, since when, and the last error its pipeline had.
#[derive(Clone, Debug)]
pub struct Status {
    pub phase: Phase,
    pub since: std::time::SystemTime,
    pub last_error: Option<String>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            phase: Phase::Starting,
            since: std::time::SystemTime::now(),
            last_error: None,
        }
    }
}

/// One camera's numbers; kept across restarts of its pipeline, dropped when it leaves the file.
#[derive(Default)]
pub struct CameraState {
    /// Its entry in the cameras file (none once it has left it and is stopping).
    pub spec: Mutex<Option<super::cameras::Camera>>,
    /// Where its state changes are told (the camera's name and the run's events); none in tests
    /// of the numbers alone.
    pub watcher: Option<(String, Arc<super::events::Events>)>,
    pub status: Mutex<Status>,
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
    /// A camera's numbers whose state changes are told on `events`.
    pub fn watched(name: &str, events: Arc<super::events::Events>) -> CameraState {
        CameraState {
            watcher: Some((name.to_string(), events)),
            ..Default::default()
        }
    }

    /// Moves to `phase` (its `since` changes only when the phase does, and only then is it told
    /// as an event); `error` becomes the last error when given.
    pub fn set_phase(&self, phase: Phase, error: Option<String>) {
        let mut s = self.status.lock().unwrap();
        let changed = s.phase != phase;
        if changed {
            s.phase = phase;
            s.since = std::time::SystemTime::now();
        }
        if error.is_some() {
            s.last_error = error.clone();
        }
        if let (true, Some((name, events))) = (changed, &self.watcher) {
            events.state(name, phase, error);
        }
    }

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
}

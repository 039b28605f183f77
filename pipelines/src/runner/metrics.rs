//! Per-camera numbers of a `--cameras` run, and the Prometheus text they are served as on
//! `METRICS_PORT` and the API (`GET /metrics`, [`super::api`]), encoded by the `prometheus-client`
//! crate from a collector that reads the cameras at each scrape. Camera names (and stage names)
//! are the only labels; URIs (which may hold credentials) never appear.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::report::Stats;
use super::stages::Stages;

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
    /// Times its pipeline failed (or could not start) and was started again.
    pub restarts: AtomicU64,
    /// Its latency histograms.
    pub stages: Stages,
    /// Its counting rules' results on the last frame (`lines`, `zones`, `frame`, `pts_ns`), when
    /// it has lines or zones.
    pub counts: Mutex<Option<super::report::LastCounts>>,
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

/// A gauge or a counter read off a camera's numbers.
enum Read {
    Flag(fn(&CameraState) -> bool),
    Gauge(fn(&CameraState, Instant) -> f64),
    Counter(fn(&CameraState) -> u64),
}

/// The per-camera gauges and counters: name (a counter's without `_total`, which the encoder
/// adds), help, and how to read it.
const FAMILIES: [(&str, &str, Read); 8] = [
    (
        "up",
        "1 while frames arrive from the camera, 0 while it is away or not started.",
        Read::Flag(|c| c.up.load(Ordering::SeqCst)),
    ),
    (
        "frames",
        "Frames that left tritoninfer.",
        Read::Counter(|c| c.stats.lock().unwrap().frames),
    ),
    (
        "ok_frames",
        "Frames with an inference result.",
        Read::Counter(|c| c.stats.lock().unwrap().ok),
    ),
    (
        "error_frames",
        "Frames whose inference failed.",
        Read::Counter(|c| c.stats.lock().unwrap().errors),
    ),
    (
        "no_signal_frames",
        "Frames made while the camera was away (no request).",
        Read::Counter(|c| c.stats.lock().unwrap().no_signal),
    ),
    (
        "outages",
        "Times the camera went away.",
        Read::Counter(|c| c.outages.load(Ordering::SeqCst)),
    ),
    (
        "restarts",
        "Times the camera's pipeline failed or could not start and was started again.",
        Read::Counter(|c| c.restarts.load(Ordering::SeqCst)),
    ),
    (
        "fps",
        "Frames per second over the last 5 s.",
        Read::Gauge(|c, now| c.fps(now)),
    ),
];

/// The board as metrics, read at each scrape.
struct BoardCollector(Board);

impl std::fmt::Debug for BoardCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoardCollector")
    }
}

impl Collector for BoardCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let now = Instant::now();
        let cams: Vec<(String, Arc<CameraState>)> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ConstGauge::new(cams.len() as i64).encode(enc.encode_descriptor(
            "triton_video_cameras",
            "Cameras in the cameras file being run.",
            None,
            MetricType::Gauge,
        )?)?;
        for (name, help, read) in &FAMILIES {
            let kind = match read {
                Read::Flag(_) | Read::Gauge(_) => MetricType::Gauge,
                Read::Counter(_) => MetricType::Counter,
            };
            let name = format!("triton_video_camera_{name}");
            let mut fam = enc.encode_descriptor(&name, help, None, kind)?;
            for (cam, c) in &cams {
                let labels = [("camera", cam.as_str())];
                let m = fam.encode_family(&labels)?;
                match read {
                    Read::Flag(f) => ConstGauge::new(i64::from(f(c))).encode(m)?,
                    Read::Gauge(f) => ConstGauge::new(f(c, now)).encode(m)?,
                    Read::Counter(f) => ConstCounter::new(f(c)).encode(m)?,
                }
            }
        }
        let mut fam = enc.encode_descriptor(
            "triton_video_camera_inference_latency_seconds",
            "Request-to-answer time of the ok frames.",
            None,
            MetricType::Histogram,
        )?;
        for (cam, c) in &cams {
            c.stages
                .inference
                .encode(fam.encode_family(&[("camera", cam.as_str())])?)?;
        }
        let mut fam = enc.encode_descriptor(
            "triton_video_camera_stage_seconds",
            "Time a frame spends in each stage of its camera's pipeline (docs/pipelines.md).",
            None,
            MetricType::Histogram,
        )?;
        for (cam, c) in &cams {
            for (stage, h) in c.stages.each() {
                h.encode(fam.encode_family(&[("camera", cam.as_str()), ("stage", stage)])?)?;
            }
        }
        Ok(())
    }
}

/// The Prometheus text exposition (format 0.0.4) of the board.
pub fn render(board: &Board) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(BoardCollector(board.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg);
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
        door_latencies(&board);
        let t = render(&board);
        for want in [
            "triton_video_cameras 2\n",
            "triton_video_camera_up{camera=\"door\"} 1\n",
            "triton_video_camera_up{camera=\"yard\"} 0\n",
            "triton_video_camera_frames_total{camera=\"door\"} 12\n",
            "triton_video_camera_ok_frames_total{camera=\"door\"} 10\n",
            "triton_video_camera_error_frames_total{camera=\"door\"} 1\n",
            "triton_video_camera_no_signal_frames_total{camera=\"door\"} 1\n",
            "triton_video_camera_outages_total{camera=\"door\"} 2\n",
            "triton_video_camera_fps{camera=\"door\"} 2.0\n",
            "triton_video_camera_inference_latency_seconds_sum{camera=\"door\"} 1.25\n",
            "triton_video_camera_inference_latency_seconds_count{camera=\"door\"} 10\n",
            "triton_video_camera_stage_seconds_count{camera=\"door\",stage=\"overlay\"} 2\n",
            "triton_video_camera_stage_seconds_sum{camera=\"door\",stage=\"overlay\"} 0.75\n",
            "triton_video_camera_stage_seconds_count{camera=\"yard\",stage=\"letterbox\"} 0\n",
            "# TYPE triton_video_camera_frames_total counter\n",
            "# TYPE triton_video_camera_stage_seconds histogram\n",
        ] {
            assert!(t.contains(want), "{want:?} missing from\n{t}");
        }
        // door's ten 125-ms round trips: in every bucket from the first bound at or above 125 ms
        // on, in none below it.
        let buckets: Vec<(f64, f64)> = t
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(
                    "triton_video_camera_inference_latency_seconds_bucket{camera=\"door\",le=\"",
                )?;
                let (le, n) = rest.split_once("\"} ")?;
                Some((le.parse().unwrap_or(f64::INFINITY), n.parse().unwrap()))
            })
            .collect();
        assert_eq!(buckets.len(), 28, "27 bounds and +Inf: {buckets:?}");
        for (le, n) in buckets {
            assert_eq!(n, if le >= 0.125 { 10.0 } else { 0.0 }, "le {le}");
        }
    }

    /// Ten requests of 125 ms each for `door`, two overlay passes of 250 and 500 ms (sums
    /// exact in binary).
    fn door_latencies(board: &Board) {
        let b = board.lock().unwrap();
        let door = &b["door"];
        for _ in 0..10 {
            door.stages.inference.observe(0.125);
        }
        door.stages.observe("overlay", 0.25);
        door.stages.observe("overlay", 0.5);
    }
}

//! What `tritoncamerasrc` gives while its camera is away, for each way a camera goes away: killed
//! (power lost: SIGKILL), stalled (the connection open, no data: the camera process stopped with
//! SIGSTOP), and stopped gracefully (SIGTERM: the RTSP server ends the stream, RTCP BYE), each
//! followed by the camera's return; in-process, so that every frame's pixels, timestamp and result
//! are read. Inference goes through a proxy of the test's own, whose counter says how many
//! requests were made.
//!
//! What it proves, for each fault:
//! - `on-outage=black`: the outage's frames are black (every luma value at black), marked
//!   `no-signal` with no detections, at the camera's rate and spacing (100 ms apart at 10 f/s);
//!   timestamps never go back; the camera's frames before and after are its picture (the ball);
//! - not one inference request is made for an outage frame: the proxy answered exactly the
//!   frames that are not `no-signal`;
//! - the element counts one outage;
//! - `on-outage=pause`: no frame at all while the camera is away, the gap in the timestamps at
//!   least the time it was away.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_triton_tests::camera::{Camera, http_get};
use gst_triton_tests::pipeline::init;
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::triton::{free_port, shared_url};
use gsttriton::meta;

const MODEL: &str = "shapes_nms";
const MODE: (u32, u32, u32) = (320, 240, 10);

/// How a camera goes away.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Killed,
    Stalled,
    StoppedGracefully,
}

/// One frame out of the pipeline.
#[derive(Debug, Clone)]
struct Frame {
    pts: gst::ClockTime,
    status: String,
    detections: usize,
    /// The largest luma value of the picture.
    max_luma: u8,
}

/// The frames out so far.
type Frames = Arc<Mutex<Vec<Frame>>>;

fn count(frames: &Frames, pred: impl Fn(&Frame) -> bool) -> usize {
    frames.lock().unwrap().iter().filter(|f| pred(f)).count()
}

/// Waits until `pred` holds for `n` frames more than now.
fn wait_more(frames: &Frames, n: usize, what: &str, pred: impl Fn(&Frame) -> bool) {
    let from = count(frames, &pred);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(frames, &pred) < from + n {
        assert!(
            Instant::now() < deadline,
            "{what}: not {n} more frames within 60 s; last: {:?}",
            frames.lock().unwrap().last()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pipeline: the camera, I420 frames, the letterbox and tritoninfer through `proxy`, into an
/// appsink that records each frame.
fn pipeline(cam: &Camera, proxy: &ProxyProcess, on_outage: &str) -> (gst::Pipeline, Frames) {
    init();
    let desc = format!(
        "tritoncamerasrc name=cam uri={} timeout-ms=1000 on-outage={on_outage} \
         ! videoconvert ! video/x-raw,format=I420 ! tritonletterbox width=160 height=160 \
         ! tritoninfer url={} transport=proxy api-key=test-key model={MODEL} \
         ! appsink name=sink sync=false",
        cam.url(),
        proxy.url()
    );
    let p = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let frames: Frames = Default::default();
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let out = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let b = sample.buffer().ok_or(gst::FlowError::Error)?;
                let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                let map = b.map_readable().map_err(|_| gst::FlowError::Error)?;
                let stride = info.stride()[0] as usize;
                let (w, h) = (info.width() as usize, info.height() as usize);
                let max_luma = (0..h)
                    .flat_map(|y| map[y * stride..y * stride + w].iter().copied())
                    .max()
                    .unwrap_or(0);
                let res = meta::result_meta(b);
                out.lock().unwrap().push(Frame {
                    pts: b.pts().unwrap(),
                    status: res.map(|r| r.status).unwrap_or_default(),
                    detections: meta::detections(b, w as u32, h as u32).len(),
                    max_luma,
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    p.set_state(gst::State::Playing).unwrap();
    (p, frames)
}

/// Packets the proxy answered for the model, every status together.
fn proxy_answered(proxy: &ProxyProcess) -> f64 {
    let text = http_get(proxy.metrics_port, "/metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("proxy_requests_total{{model=\"{MODEL}\"")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A camera streaming, then `fault` for 4 s, then back: the frames out and the outages counted.
fn outage(fault: Fault, on_outage: &str) -> (Vec<Frame>, Duration, u64, f64) {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let mut cam = Camera::start_with(free_port(), MODE);
    let (p, frames) = pipeline(&cam, &proxy, on_outage);
    let is_ok = |f: &Frame| f.status == "ok";
    wait_more(&frames, 20, "before the fault", is_ok);
    let pid = cam.pid().unwrap() as i32;
    let gone = Instant::now();
    match fault {
        Fault::Killed => cam.kill(),
        // SAFETY: signals to our own child.
        Fault::Stalled => unsafe {
            libc::kill(pid, libc::SIGSTOP);
        },
        Fault::StoppedGracefully => {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let exit = cam.wait_exit(Duration::from_secs(10));
            assert_eq!(exit, Some(0), "rtsp_camera after SIGTERM");
        }
    }
    if on_outage == "black" {
        wait_more(&frames, 10, &format!("{fault:?}: no-signal"), |f| {
            f.status == "no-signal"
        });
    }
    // The outage itself: 4 s from the fault.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(gone.elapsed()));
    match fault {
        Fault::Stalled => unsafe {
            libc::kill(pid, libc::SIGCONT);
        },
        Fault::Killed | Fault::StoppedGracefully => cam.up(),
    }
    let away = gone.elapsed();
    wait_more(&frames, 20, &format!("{fault:?}: after the return"), is_ok);
    let outages = p.by_name("cam").unwrap().property::<u64>("outages");
    p.send_event(gst::event::Eos::new());
    let bus = p.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within 20 s");
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "{fault:?}: {msg:?}"
    );
    p.set_state(gst::State::Null).unwrap();
    let answered = proxy_answered(&proxy);
    let all = frames.lock().unwrap().clone();
    (all, away, outages, answered)
}

/// The checks common to every fault with `on-outage=black`.
fn check_black(fault: Fault) {
    let (frames, away, outages, answered) = outage(fault, "black");
    let what = format!("{fault:?}");
    assert_eq!(outages, 1, "{what}: outages counted");
    for w in frames.windows(2) {
        assert!(w[1].pts > w[0].pts, "{what}: timestamps went back: {w:?}");
    }
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut start = None;
        for (i, f) in frames.iter().enumerate() {
            match (f.status == "no-signal", start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    runs.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    };
    assert_eq!(
        runs.len(),
        1,
        "{what}: one run of no-signal frames: {runs:?}"
    );
    let (s, e) = runs[0];
    let outage = &frames[s..e];
    for f in outage {
        assert!(
            f.max_luma <= 20 && f.detections == 0,
            "{what}: an outage frame that is not black and empty: {f:?}"
        );
    }
    for w in outage.windows(2) {
        let gap = w[1].pts - w[0].pts;
        assert!(
            gap.nseconds().abs_diff(100_000_000) <= 2_000_000,
            "{what}: outage frames {gap} apart, not the camera's 100 ms"
        );
    }
    for f in frames[..s].iter().chain(&frames[e..]) {
        assert!(
            f.status == "ok" && f.max_luma >= 200,
            "{what}: a camera frame that is not the camera's picture: {f:?}"
        );
    }
    let inferred = frames.len() - outage.len();
    assert_eq!(
        answered,
        inferred as f64,
        "{what}: the proxy answered {answered} requests for {inferred} camera frames ({} outage frames)",
        outage.len()
    );
    eprintln!(
        "{what}: {} frames, {} no-signal over {:?} away, 1 outage, {answered} requests",
        frames.len(),
        outage.len(),
        away
    );
}

#[test]
fn a_killed_camera_gives_black_frames_at_its_rate_and_costs_no_inference() {
    check_black(Fault::Killed);
}

#[test]
fn a_stalled_camera_is_an_outage_after_timeout_ms() {
    check_black(Fault::Stalled);
}

#[test]
fn a_camera_that_ends_its_stream_gracefully_is_an_outage_too() {
    check_black(Fault::StoppedGracefully);
}

#[test]
fn on_outage_pause_gives_no_frame_while_the_camera_is_away() {
    let (frames, away, outages, answered) = outage(Fault::Killed, "pause");
    assert_eq!(outages, 1);
    assert!(
        frames.iter().all(|f| f.status == "ok" && f.max_luma >= 200),
        "{:?}",
        frames.iter().find(|f| f.status != "ok")
    );
    let widest = frames
        .windows(2)
        .map(|w| w[1].pts - w[0].pts)
        .max()
        .unwrap();
    // The camera was away `away` (the last frame before it may have come up to 1 timeout-ms
    // before the kill, the first after it some time after the return).
    assert!(
        widest
            >= gst::ClockTime::from_nseconds(away.as_nanos() as u64)
                - gst::ClockTime::from_mseconds(200),
        "the widest gap {widest} for {away:?} away"
    );
    assert_eq!(answered, frames.len() as f64, "requests vs frames");
}

//! `tritoninfer shared-memory=system` against the real Triton: the same detections as the
//! gRPC-bytes path on the ground-truth models, the regions Triton lists while a pipeline runs and
//! none after a stop, an error, or a killed process restarted; refusals explained at start
//! (transport=proxy, a server without the extension, a Triton that cannot open our regions).

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_triton_tests::artifacts::plugin_dir;
use gst_triton_tests::mock::{MockKserve, Script};
use gst_triton_tests::pipeline::{draw_rgb, init, run_frames};
use gst_triton_tests::triton::{Triton, shared_url};
use gst_triton_tests::{CLASS_NAMES, Rect, triton_client};
use gsttriton::meta;
use triton_proto::inference::SystemSharedMemoryStatusRequest;

/// The tests of this file look at the regions of processes, and every start of a shared-memory
/// tritoninfer removes the regions of dead ones: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const W: usize = 320;
const H: usize = 240;

/// Region names that Triton lists, with their sizes.
fn triton_regions(url: &str) -> Vec<(String, u64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = triton_client(url).await.unwrap();
        let st = c
            .system_shared_memory_status(SystemSharedMemoryStatusRequest::default())
            .await
            .unwrap()
            .into_inner();
        st.regions
            .into_values()
            .map(|r| (r.name, r.byte_size))
            .collect()
    })
}

/// The region-name prefix of process `pid`.
fn prefix(pid: u32) -> String {
    format!("gsttriton-{pid}-")
}

/// Names of `pid`'s regions in Triton and in /dev/shm.
fn regions_of(url: &str, pid: u32) -> (Vec<String>, Vec<String>) {
    let p = prefix(pid);
    let triton = triton_regions(url)
        .into_iter()
        .map(|r| r.0)
        .filter(|n| n.starts_with(&p))
        .collect();
    let local = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&p))
        .collect();
    (triton, local)
}

fn scene(i: u32) -> Vec<Rect> {
    vec![
        Rect::new(30 + 4 * i, 24, 64, 48, 0),
        Rect::new(160, 120 + 2 * i, 80, 60, 2),
        Rect::new(250, 30, 40, 36, 3),
    ]
}

fn infer(model: &str, shm: &str, extra: &str) -> String {
    format!(
        "tritonletterbox ! tritoninfer url={} transport=triton model={model} shared-memory={shm} max-in-flight=3 {extra}",
        shared_url()
    )
}

/// Runs `pipeline` over `frames` and lists Triton's regions of this process before the last frame
/// is pushed. The earlier frames may still be on their way to tritoninfer then (caps, the model's
/// metadata, the first registration happen on the way), so the listing is repeated until one of
/// our regions shows up or 20 s have passed: a pool that registers nothing still lists nothing.
fn run_listing(
    pipeline: &str,
    frames: &[Vec<u8>],
) -> (gst_triton_tests::pipeline::Run, Vec<(String, u64)>) {
    let (url, me) = (shared_url(), std::process::id());
    let mut during = Vec::new();
    let run = run_frames(
        pipeline,
        W,
        H,
        frames,
        |i| {
            if i == frames.len() - 1 {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    during = triton_regions(&url)
                        .into_iter()
                        .filter(|r| r.0.starts_with(&prefix(me)))
                        .collect();
                    if !during.is_empty() || Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        },
        Duration::from_secs(60),
    );
    (run, during)
}

/// (label, box, confidence) of every detection of every frame.
type Found = Vec<Vec<(String, [f64; 4], f64)>>;

fn detections(run: &gst_triton_tests::pipeline::Run) -> Found {
    run.buffers
        .iter()
        .map(|b| {
            let res = meta::result_meta(b).expect("result meta");
            assert_eq!(res.status, "ok", "{}", res.error);
            meta::detections(b, W as u32, H as u32)
                .into_iter()
                .map(|d| (d.label, d.bbox, d.confidence))
                .collect()
        })
        .collect()
}

#[test]
fn shared_memory_gives_the_same_detections_as_bytes_and_leaves_no_region() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = shared_url();
    let me = std::process::id();
    let n = 6;
    let frames: Vec<Vec<u8>> = (0..n).map(|i| draw_rgb(W, H, &scene(i))).collect();
    // Input 3×640×640 FP32; shapes_yolov8's output0 is [-1, 8, 8400] FP32, so a region holds both.
    let yolo_region = (3 * 640 * 640 * 4 + 8 * 8400 * 4) as u64;
    for model in ["shapes_yolov8", "shapes_nms", "shapes_effnms"] {
        let bytes = run_frames(
            &infer(model, "none", ""),
            W,
            H,
            &frames,
            |_| {},
            Duration::from_secs(60),
        );
        assert!(bytes.errors.is_empty(), "{model}: {:?}", bytes.errors);
        let (shm, during) = run_listing(&infer(model, "system", ""), &frames);
        assert!(shm.errors.is_empty(), "{model}: {:?}", shm.errors);
        assert!(
            !during.is_empty(),
            "{model}: Triton listed no region of ours while frames ran"
        );
        if model == "shapes_yolov8" {
            assert!(
                during.iter().any(|r| r.1 == yolo_region),
                "{model}: no region of {yolo_region} bytes (input + output0): {during:?}"
            );
        }
        let (a, b) = (detections(&bytes), detections(&shm));
        assert_eq!(a.len(), n as usize);
        assert_eq!(a, b, "{model}: shared memory answered differently");
        for (i, found) in b.iter().enumerate() {
            let drawn = scene(i as u32);
            assert_eq!(found.len(), drawn.len(), "{model} frame {i}: {found:?}");
            for d in &drawn {
                assert!(
                    found
                        .iter()
                        .any(|(label, bb, _)| label == CLASS_NAMES[d.class]
                            && (bb[0] - d.x1 as f64).abs() <= 1.0
                            && (bb[3] - d.y2 as f64).abs() <= 1.0),
                    "{model} frame {i}: {d:?} not in {found:?}"
                );
            }
        }
        let (t, l) = regions_of(&url, me);
        assert!(
            t.is_empty() && l.is_empty(),
            "{model}: left after stop: Triton {t:?}, /dev/shm {l:?}"
        );
    }
}

/// transport=kserve (unary ModelInfer) uses Triton's shared memory too: the same detections as
/// the streaming bytes path, our region listed by Triton while frames run, none after the stop.
#[test]
fn unary_kserve_calls_use_shared_memory_too() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = shared_url();
    let me = std::process::id();
    let frames: Vec<Vec<u8>> = (0..5).map(|i| draw_rgb(W, H, &scene(i))).collect();
    let bytes = run_frames(
        &infer("shapes_nms", "none", ""),
        W,
        H,
        &frames,
        |_| {},
        Duration::from_secs(60),
    );
    assert!(bytes.errors.is_empty(), "{:?}", bytes.errors);
    let (shm, during) = run_listing(&infer("shapes_nms", "system", "transport=kserve"), &frames);
    assert!(shm.errors.is_empty(), "{:?}", shm.errors);
    assert!(
        !during.is_empty(),
        "Triton listed no region of ours while frames ran"
    );
    assert_eq!(
        detections(&bytes),
        detections(&shm),
        "kserve + shared memory answered differently"
    );
    let (t, l) = regions_of(&url, me);
    assert!(
        t.is_empty() && l.is_empty(),
        "left after stop: Triton {t:?}, /dev/shm {l:?}"
    );
}

#[test]
fn an_error_stops_the_pipeline_and_leaves_no_region() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = shared_url();
    // shapes_nms takes FP32: UINT8 tensors are refused by Triton, on-error=fail stops.
    let middle = format!(
        "tritonletterbox dtype=UINT8 ! tritoninfer url={url} transport=triton model=shapes_nms shared-memory=system on-error=fail"
    );
    let frames = vec![draw_rgb(W, H, &scene(0)); 4];
    let run = run_frames(&middle, W, H, &frames, |_| {}, Duration::from_secs(60));
    assert!(
        run.errors
            .iter()
            .any(|e| e.contains("inference failed for frame 0")),
        "{:?}",
        run.errors
    );
    // The pipeline goes to NULL from another thread: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (t, l) = regions_of(&url, std::process::id());
        if t.is_empty() && l.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after an error: Triton {t:?}, /dev/shm {l:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Triton restarted under a running pipeline forgets our registrations: once it is back, frames
/// are answered again (new regions registered), every frame comes out, and none is left at stop.
#[test]
fn a_restarted_triton_gets_new_regions_and_frames_flow_again() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut triton = Triton::start().expect("start Triton");
    let url = triton.url();
    let n = 90;
    let frames: Vec<Vec<u8>> = (0..n).map(|i| draw_rgb(W, H, &scene(i % 8))).collect();
    let middle = format!(
        "tritonletterbox ! tritoninfer url={url} transport=triton model=shapes_nms shared-memory=system on-error=skip timeout-ms=5000 max-in-flight=2"
    );
    let run = run_frames(
        &middle,
        W,
        H,
        &frames,
        |i| {
            std::thread::sleep(Duration::from_millis(30));
            if i == 30 {
                triton.restart().expect("restart Triton");
            }
        },
        Duration::from_secs(120),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.buffers.len(), n as usize, "frames in != frames out");
    let status: Vec<String> = run
        .buffers
        .iter()
        .map(|b| meta::result_meta(b).expect("result meta").status)
        .collect();
    // Frames sent after the restart was complete are answered.
    let after: Vec<&String> = status[40..].iter().collect();
    assert!(
        after.iter().all(|s| *s == "ok"),
        "after the restart: {after:?} (errors: {:?})",
        run.buffers[40..]
            .iter()
            .filter_map(|b| meta::result_meta(b)
                .filter(|m| m.status != "ok")
                .map(|m| m.error))
            .take(3)
            .collect::<Vec<_>>()
    );
    let (t, l) = regions_of(&url, std::process::id());
    assert!(
        t.is_empty() && l.is_empty(),
        "left after stop: Triton {t:?}, /dev/shm {l:?}"
    );
}

fn gst_launch(pipeline: &str) -> Command {
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-q")
        .args(pipeline.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn camera(url: &str, buffers: u32) -> String {
    format!(
        "videotestsrc is-live=true num-buffers={buffers} ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! tritonletterbox width=320 height=320 ! tritoninfer url={url} transport=triton model=shapes_nms shared-memory=system ! fakesink"
    )
}

#[test]
fn a_killed_process_leaves_regions_that_the_next_start_removes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = shared_url();
    let mut child = gst_launch(&camera(&url, 100_000)).spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = loop {
        let (t, l) = regions_of(&url, pid);
        if !t.is_empty() && !l.is_empty() {
            break (t, l);
        }
        assert!(Instant::now() < deadline, "the camera registered no region");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed: nothing could clean up (it may have made more regions since).
    let (t, l) = regions_of(&url, pid);
    assert!(
        left.0.iter().all(|n| t.contains(n)) && left.1.iter().all(|n| l.contains(n)),
        "{left:?} vs Triton {t:?}, /dev/shm {l:?}"
    );
    // The next start of any tritoninfer with shared memory removes them.
    let out = gst_launch(&camera(&url, 3)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (t, l) = regions_of(&url, pid);
    assert!(
        t.is_empty() && l.is_empty(),
        "left by the killed process: Triton {t:?}, /dev/shm {l:?}"
    );
}

/// Sets `pipeline` to PLAYING, expects a refusal, and returns the error message.
fn refused_at_start(pipeline: &str) -> String {
    init();
    let p = gst::parse::launch(pipeline).unwrap();
    let failed = p.set_state(gst::State::Playing).is_err();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error]);
    p.set_state(gst::State::Null).unwrap();
    assert!(failed, "{pipeline}: started");
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => e.error().to_string(),
        _ => panic!("{pipeline}: no error message"),
    }
}

#[test]
fn refusals_are_explained_at_start() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let src = "videotestsrc num-buffers=1 ! tritonletterbox";
    let e = refused_at_start(&format!(
        "{src} ! tritoninfer url={} transport=proxy shared-memory=system ! fakesink",
        shared_url()
    ));
    assert!(
        e.contains("shared-memory=system needs transport=triton"),
        "{e}"
    );

    let mock = MockKserve::start(Script::default());
    let e = refused_at_start(&format!(
        "{src} ! tritoninfer url={} transport=triton model=m shared-memory=system ! fakesink",
        mock.url()
    ));
    assert!(e.contains("does not offer system shared memory"), "{e}");
    assert!(e.contains("set shared-memory=none"), "{e}");
}

/// A Triton that cannot open our regions, as on another host: the element runs with a /dev/shm
/// of its own (a mount namespace; needs root, as CI has).
#[test]
fn a_triton_that_cannot_open_our_regions_is_refused_at_start() {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        // CI runs as root: there this test must run.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root (a private /dev/shm needs a mount namespace)"
        );
        eprintln!("SKIPPED: not root: a private /dev/shm needs a mount namespace");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let inner = format!(
        "mount -t tmpfs -o size=64m tmpfs /dev/shm && exec gst-launch-1.0 {}",
        camera(&shared_url(), 3)
    );
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", &inner])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("could not open shared-memory region"), "{err}");
    assert!(
        err.contains("for a remote Triton set shared-memory=none"),
        "{err}"
    );
}

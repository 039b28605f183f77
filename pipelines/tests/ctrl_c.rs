//! Ctrl-C, as a user stops `gst-launch-1.0 -e`, on every pipelines/*.pipeline, ten times each, in
//! a C host: each run must exit 0 by itself, print no GLib/GStreamer critical or warning (with
//! `G_DEBUG=fatal-criticals` a critical also aborts the run), and leave finished files: every JSON
//! line whole, the recording decodable. The run is stopped while it still has frames to give (the
//! file inputs are longer than the run), and each run proves that: fewer lines than the input has
//! frames. The RTSP camera plays a 1.5-s clip, so that the camera pipelines are stopped after the
//! camera ended its stream, was restarted (`tritoncamerasrc` logs it) and gave frames again: the
//! path where fallbacksrc's EOS handling printed a critical on GStreamer 1.22. Its clip is H.264
//! 4:4:4 10-bit, so that the caps change after the first black frames (the path where an
//! allocation query overtook the caps in `tritoninfer`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::files::{files, lines, load, rtsp_server, vars};
use common::{decoded_frames, make_clip, tmpdir};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::shared_url;

const RUNS: usize = 10;
/// Frames of the file input (20 s at 30 f/s).
const FRAMES: u32 = 600;
/// Frames of the camera's clip (1.5 s): the camera ends and is restarted before the Ctrl-C.
const CAMERA_FRAMES: usize = 45;

/// What a run of a file must have made before the Ctrl-C, and what it leaves.
struct Outputs {
    /// JSON-lines files, each of which must have a line before the Ctrl-C.
    jsonl: Vec<&'static str>,
    /// The recording, which must have bytes before the Ctrl-C and decode after it.
    video: Option<&'static str>,
}

fn outputs(name: &str) -> Outputs {
    let (jsonl, video): (Vec<&str>, _) = match name {
        "design-card.pipeline" => (vec![], Some("annotated.mp4")),
        "two-cameras-one-proxy.pipeline" => (vec!["cam-001.jsonl", "cam-002.jsonl"], None),
        "rtsp-camera-people-count.pipeline" => (vec!["people_counts.jsonl"], None),
        "rtsp-camera-to-file.pipeline" => (vec!["frame_counts.jsonl"], Some("annotated.ts")),
        "rtsp-camera-to-rtsp.pipeline" => (vec![], Some("out.ts")),
        _ => (vec!["frame_counts.jsonl"], Some("annotated.mp4")),
    };
    Outputs { jsonl, video }
}

/// GStreamer 1.22's `rtspclientsink` (in rtsp-camera-to-rtsp.pipeline) has two faults of its own
/// on a stop, each in some runs on a loaded 2-core machine: it never passes the EOS on (the run
/// hangs with the EOS at its sink pad), or, once the EOS went through, it fails its teardown
/// with "Could not send message. (Received end-of-file)" because the server has closed the
/// session. Both are counted and said, only for that file and only in exactly that form; what
/// the server recorded must still decode, and a critical fails the run as anywhere.
const RTSPCLIENTSINK: &str = "rtsp-camera-to-rtsp.pipeline";

enum Outcome {
    Clean,
    Known(&'static str),
}

fn spawn(name: &str, desc: &str, log: &Path) -> Child {
    let debug = if name == RTSPCLIENTSINK {
        "2,tritoncamerasrc:4,GST_EVENT:5"
    } else {
        "2,tritoncamerasrc:4"
    };
    Command::new("gst-launch-1.0")
        .arg("-e")
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", gst_triton_tests::artifacts::plugin_dir())
        .env("G_DEBUG", "fatal-criticals")
        // The camera's restarts, and what went wrong, for the message of a hang.
        .env("GST_DEBUG", debug)
        .env("GST_DEBUG_FILE", log)
        .env("GST_DEBUG_NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0")
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// One run: start, wait until every output has begun, Ctrl-C, wait for the exit. `Ok(())` when
/// it ended by itself; `Err` says why not.
fn one_run(name: &str, desc: &str, dir: &Path, run: usize) -> Result<Outcome, String> {
    let out = outputs(name);
    for f in out.jsonl.iter().chain(&out.video) {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let log = dir.join(format!("{name}.{run}.gst.log"));
    let mut child = spawn(name, desc, &log);
    // The JSON lines show frames as they come (detjsonsink writes each line through); a
    // recording only in 64-KiB steps (filesink's buffer), so it is watched only where there is
    // nothing else.
    let progress = || match (out.jsonl.is_empty(), out.video) {
        (false, _) => out
            .jsonl
            .iter()
            .map(|f| lines(&dir.join(f)) as u64)
            .min()
            .unwrap_or(0),
        (true, Some(f)) => size(&dir.join(f)),
        (true, None) => unreachable!("{name}: no output to watch"),
    };
    let begun = || progress() > 0;
    // (rtsp-camera-to-rtsp, whose only output is what the server records, is stopped once that
    // has begun: its camera is the same element as the other two's.)
    let camera = name.starts_with("rtsp-camera") && !out.jsonl.is_empty();
    let mut restarted_at = None;
    let mut started = || {
        if !begun() {
            return false;
        }
        if !camera {
            return true;
        }
        // A camera pipeline is stopped only once the camera has ended its stream, been
        // restarted, and given frames again.
        match restarted_at {
            None => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("the camera ended its stream: restarting it") {
                    restarted_at = Some(progress());
                }
                false
            }
            Some(at) => progress() > at,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started() {
        if let Some(st) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            return Err(format!(
                "exited ({st}) before its outputs began: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("its outputs did not begin within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            gst_triton_tests::stderr::assert_clean(&format!("{name} run {run}"), &o.stderr);
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let eos_at_sink = text.lines().any(|l| {
                l.contains("have event type eos")
                    && l.contains("<rtspclientsink")
                    && l.contains(":sink")
            });
            if name == RTSPCLIENTSINK && eos_at_sink {
                return Ok(Outcome::Known(
                    "rtspclientsink kept the EOS (killed after 30 s)",
                ));
            }
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            return Err(format!(
                "still running 30 s after Ctrl-C: {}{}\nlast lines of its log:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    gst_triton_tests::stderr::assert_clean(&format!("{name} run {run}"), &o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    let teardown = name == RTSPCLIENTSINK
        && stdout.contains("EOS received - stopping pipeline")
        && err.contains("Could not send message. (Received end-of-file)")
        && errors
            .iter()
            .all(|l| l.contains("GstRTSPClientSink:rtspclientsink0: Could not write to resource."));
    if teardown {
        return Ok(Outcome::Known(
            "rtspclientsink failed its teardown after the EOS went through",
        ));
    }
    if !o.status.success() || !errors.is_empty() {
        return Err(format!("{:?}: {}{err}", o.status, stdout));
    }
    Ok(Outcome::Clean)
}

/// After a run: every line of every JSON file parses, there were fewer than the input's frames
/// (the Ctrl-C stopped it), and the recording decodes.
fn check_outputs(name: &str, dir: &Path, run: usize) {
    let out = outputs(name);
    for f in &out.jsonl {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        let n = text.lines().count();
        assert!(
            n >= 1 && n < FRAMES as usize,
            "{name} run {run}: {f} has {n} lines; the Ctrl-C came after the first and before the last of {FRAMES}"
        );
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{name} run {run}: {f}: a broken line ({e}): {l}"));
        }
    }
    if let Some(v) = out.video {
        let frames = decoded_frames(&dir.join(v));
        assert!(
            frames >= 1 && frames < FRAMES as usize,
            "{name} run {run}: {v} decodes to {frames} pictures"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pipeline_file_stops_cleanly_on_ctrl_c_ten_times() {
    let proxy = TestProxy::start(&shared_url(), &["--proxy-allow-unauthenticated"])
        .await
        .unwrap();
    let mm = proxy.url();
    tokio::task::spawn_blocking(move || {
        let dir = tmpdir("ctrl-c");
        let clip = make_clip(&dir, FRAMES, 320, 240).0;
        // The camera sends H.264 4:4:4 10-bit, which decodes to a format the pipeline converts
        // from: its caps change after the first black frames (an allocation query overtaking that
        // change failed the run with "Failed to configure the buffer pool").
        let short = dir.join("camera.mp4");
        let made = Command::new("gst-launch-1.0")
            .args(
                format!(
                    "-q videotestsrc num-buffers={CAMERA_FRAMES} pattern=ball ! \
                 video/x-raw,format=Y444_10LE,width=320,height=240,framerate=30/1 ! \
                 x264enc ! mp4mux ! filesink location={}",
                    short.display()
                )
                .split_whitespace(),
            )
            .output()
            .unwrap();
        assert!(made.status.success(), "the camera's clip: {made:?}");
        let out_ts = dir.join("out.ts");
        let (port, ml) = rtsp_server(&[("/short", &short)], &out_ts);
        let mut v = vars(&dir, &clip, &mm);
        v.insert("RTSP_URL", format!("rtsp://127.0.0.1:{port}/short"));
        v.insert("RTSP_OUT_URL", format!("rtsp://127.0.0.1:{port}/out"));
        std::fs::write(dir.join("rules.txt"), "line mid 160,0 160,240\n").unwrap();
        let names: Vec<String> = files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.len() >= 8, "{names:?}");
        // CTRL_C_ONLY=NAME,NAME: only these files (to see one fail with its mechanism broken).
        let only = std::env::var("CTRL_C_ONLY").unwrap_or_default();
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| only.is_empty() || only.split(',').any(|o| o == n))
            .collect();
        assert!(
            !names.is_empty(),
            "CTRL_C_ONLY={only} names no pipeline file"
        );
        let mut failures = vec![];
        for name in &names {
            let mut desc = load(name, &v);
            if name == "design-card.pipeline" {
                // The verbatim line uses tritoninfer's defaults; point them at the test proxy.
                desc = desc.replacen(
                    "tritoninfer",
                    &format!("tritoninfer url={mm} model=shapes_nms"),
                    1,
                );
            }
            let started = Instant::now();
            // CTRL_C_RUNS=N: another number of runs (to look into one).
            let runs = std::env::var("CTRL_C_RUNS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(RUNS);
            for run in 1..=runs {
                match one_run(name, &desc, &dir, run) {
                    Ok(Outcome::Clean) => check_outputs(name, &dir, run),
                    Ok(Outcome::Known(what)) => {
                        eprintln!("KNOWN GStreamer 1.22 fault in {name} run {run}: {what}");
                        check_outputs(name, &dir, run);
                    }
                    Err(e) => failures.push(format!("{name} run {run}: {e}")),
                }
            }
            eprintln!(
                "{name}: {runs} Ctrl-C runs in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        ml.quit();
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .unwrap();
}

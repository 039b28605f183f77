//! A real pretrained second stage end to end: `text_orientation` (PaddleOCR's text direction
//! classifier, the ONNX file PyPI rapidocr-onnxruntime ships, served by Triton's Python backend
//! with onnxruntime) on text panels drawn by `tests/python/text_orientation.py`, some upright and
//! some turned by 180 degrees. The panels' boxes come from a recording (`detjsonreplay`), as a
//! text detector would leave them; `tritonletterbox objects=true` crops them and `tritoninfer
//! decoder=classify` answers, in `gst-launch-1.0`, on both transports. Every panel must get its
//! drawn direction, and the same answer as the independent reference (OpenCV crop + onnxruntime
//! on the same file, no Triton, no gst-triton) with a confidence within 0.02 of it (measured: 0.003).

use std::path::{Path, PathBuf};
use std::process::Command;

use gst_triton_tests::artifacts;
use gst_triton_tests::stderr;
use gst_triton_tests::triton::{repo_root, shared_url};
use serde_json::Value;

const FRAMES: usize = 3;
const PANELS: usize = 8;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The scene, its truth and the reference's answers, made by the Python script.
fn scene() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("text-orientation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/python/text_orientation.py"))
        .arg(&dir)
        .args(["--frames", &FRAMES.to_string()])
        .status()
        .expect("run tests/python/text_orientation.py");
    assert!(status.success(), "the scene and reference script failed");
    dir
}

/// Runs the second stage in `gst-launch-1.0` over the drawn frames; returns detjsonsink's lines.
fn classify(dir: &Path, transport: &str) -> Vec<Value> {
    let out = dir.join(format!("{transport}.jsonl"));
    let desc = format!(
        "filesrc location={} ! rawvideoparse width=640 height=360 format=rgb framerate=30/1 \
         ! detjsonreplay location={} \
         ! tritonletterbox objects=true width=192 height=48 scale=0.003921569 mean=0.5 std=0.5 max-objects={PANELS} \
         ! tritoninfer url={} transport={transport} model=text_orientation decoder=classify on-error=fail \
         ! detjsonsink location={}",
        dir.join("frames.rgb").display(),
        dir.join("boxes.jsonl").display(),
        shared_url(),
        out.display()
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q")
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", artifacts::plugin_dir());
    let run = stderr::output("gst-launch-1.0 text_orientation", &mut cmd);
    assert!(
        run.status.success(),
        "{desc}: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    lines(&out)
}

#[test]
fn text_orientation_names_every_panels_direction_as_the_reference_does() {
    let dir = scene();
    let truth = lines(&dir.join("truth.jsonl"));
    let reference = lines(&dir.join("reference.jsonl"));
    assert_eq!((truth.len(), reference.len()), (FRAMES, FRAMES));
    for transport in ["triton", "kserve"] {
        let ours = classify(&dir, transport);
        assert_eq!(ours.len(), FRAMES, "{transport}: one line per frame");
        let (mut upside_down, mut worst) = (0, 0.0f64);
        for (k, f) in ours.iter().enumerate() {
            let what = format!("{transport} frame {k}");
            assert_eq!(f["status"], "ok", "{what}: {f}");
            assert_eq!(f["classifier"]["status"], "ok", "{what}: {f}");
            let dets = f["detections"].as_array().unwrap();
            assert_eq!(dets.len(), PANELS, "{what}: {f}");
            for (i, d) in dets.iter().enumerate() {
                let attr = &d["attributes"][0];
                assert_eq!(attr["model"], "text_orientation", "{what} panel {i}: {d}");
                let want = &truth[k]["directions"][i];
                assert_eq!(&attr["label"], want, "{what} panel {i}: drawn {want}, {d}");
                let r = &reference[k]["answers"][i];
                assert_eq!(attr["label"], r["label"], "{what} panel {i}: reference {r}");
                let gap = (attr["confidence"].as_f64().unwrap()
                    - r["confidence"].as_f64().unwrap())
                .abs();
                assert!(gap <= 0.02, "{what} panel {i}: ours {attr}, reference {r}");
                worst = worst.max(gap);
                upside_down += usize::from(want == "180");
            }
        }
        assert!(
            upside_down > 0 && upside_down < FRAMES * PANELS,
            "both directions drawn"
        );
        eprintln!(
            "{transport}: {} panels ({upside_down} upside down) all named right; confidence at most {worst:.4} from the reference's",
            FRAMES * PANELS
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

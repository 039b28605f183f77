//! The `onnx` model: a user's ONNX export runs inside Triton's Python backend (onnxruntime, CPU),
//! and tritoninfer decodes it with decoder=auto. The ONNX graph is built by the test.

use std::process::Command;
use std::time::Duration;

use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::triton::{Triton, repo_root, shared_url};
use gsttriton::meta;

#[test]
fn users_onnx_export_runs_and_decodes() {
    let root = repo_root();
    let repo = std::env::temp_dir().join(format!("onnx-repo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("onnx/1")).unwrap();
    std::fs::copy(
        root.join("models/onnx/config.pbtxt"),
        repo.join("onnx/config.pbtxt"),
    )
    .unwrap();
    std::fs::copy(
        root.join("models/onnx/1/model.py"),
        repo.join("onnx/1/model.py"),
    )
    .unwrap();
    // The shared code model.py imports from the repository's root (two levels up).
    for shared in ["onnx_backend.py", "onnx_common.py"] {
        std::fs::copy(root.join("models").join(shared), repo.join(shared)).unwrap();
    }
    // Two objects in tensor pixels (640×640): a "person" (0) and a "car" (2).
    let st = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/python/make_yolo_onnx.py"))
        .arg(repo.join("onnx/1/model.onnx"))
        .args(["100,200,300,400,0", "400,240,560,320,2"])
        .status()
        .unwrap();
    assert!(st.success());
    let triton = Triton::start_with(&repo).unwrap();

    // A 1280×720 frame: r = 0.5, image placed at row 140; tensor box → frame box = ((x)/0.5, (y-140)/0.5).
    let frames = vec![draw_rgb(1280, 720, &[]); 2];
    let run = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={} transport=triton model=onnx on-error=fail",
            triton.url()
        ),
        1280,
        720,
        &frames,
        |_| {},
        Duration::from_secs(60),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let mut dets = meta::detections(&run.buffers[1], 1280, 720);
    dets.sort_by(|a, b| a.label.cmp(&b.label));
    assert_eq!(dets.len(), 2, "NMS keeps one box per object: {dets:?}");
    assert_eq!(
        (dets[0].label.as_str(), dets[0].class_id),
        ("car", 2),
        "COCO-80 names by default"
    );
    assert_eq!(dets[1].label, "person");
    let want = [[800.0, 200.0, 1120.0, 360.0], [200.0, 120.0, 600.0, 520.0]];
    for (d, w) in dets.iter().zip(want) {
        for k in 0..4 {
            assert!((d.bbox[k] - w[k]).abs() < 1e-3, "{d:?} vs {w:?}");
        }
    }
}

#[test]
fn onnx_model_without_a_file_says_where_to_put_it() {
    // The shared test Triton serves models/onnx without a model.onnx: the model loads, and requests
    // fail with a message naming the path.
    let frames = vec![draw_rgb(64, 48, &[]); 1];
    let run = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={} transport=triton model=onnx decoder=yolov8 on-error=fail",
            shared_url()
        ),
        64,
        48,
        &frames,
        |_| {},
        Duration::from_secs(30),
    );
    let msg = run.errors.join("\n");
    assert!(
        msg.contains("no ONNX file at") && msg.contains("model.onnx"),
        "{msg}"
    );
}

//! The real pretrained detector: the whole `triton-video` run (decode, letterbox, inference through
//! `tritoninfer`, overlay, H.264 encode, JSON lines) on 200 frames of OpenCV's `vtest.avi` with
//! `yolov8_person`, against the model alone: a plain Rust client sending 200 `[1,3,640,640]` FP32
//! tensors with the same concurrency (4 in flight), same Triton, same run. A CNN's compute does
//! not depend on the pixel values, so the client sends one letterbox-grey tensor.
//! `cargo bench -p gst-triton-tests --bench real_model`

use std::time::Instant;

use gst_triton_tests::artifacts;
use gst_triton_tests::plain_client_rate;
use gst_triton_tests::triton::Triton;

const FRAMES: usize = 200;
const IN_FLIGHT: usize = 4;
const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

async fn model_only(url: &str, n: usize) -> f64 {
    let grey = (114.0f32 / 255.0).to_le_bytes();
    let data = bytes::Bytes::from(grey.repeat(3 * 640 * 640));
    plain_client_rate(url, "yolov8_person", [1, 3, 640, 640], data, n, IN_FLIGHT).await
}

fn whole_run(url: &str, n: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("bench-real-{}", std::process::id()));
    let t = Instant::now();
    let out = std::process::Command::new(artifacts::bin("triton-video"))
        .env("VIDEO_PATH", VTEST)
        .env("RESULTS_DIR", &dir)
        .env("MODEL_NAME", "yolov8_person")
        .env("MAX_FRAMES", n.to_string())
        .env("MAX_IN_FLIGHT", IN_FLIGHT.to_string())
        .args(["--direct", "--triton-url", url])
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only frames answered ok count; a run with a failed frame measures nothing.
    let statuses: Vec<String> = std::fs::read_to_string(dir.join("frame_counts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].to_string())
        .collect();
    let ok = statuses.iter().filter(|s| *s == "\"ok\"").count();
    assert_eq!(
        ok,
        n,
        "whole run: {} of {} frames not ok: {:?}",
        statuses.len() - ok,
        statuses.len(),
        statuses
            .iter()
            .filter(|s| *s != "\"ok\"")
            .take(5)
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
    ok as f64 / secs
}

fn main() {
    assert!(
        std::path::Path::new(VTEST).is_file(),
        "{VTEST} missing: scripts/setup.sh installs opencv-doc"
    );
    let triton = Triton::start().expect("start Triton");
    let url = triton.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(model_only(&url, 8)); // warm-up
    let model = rt.block_on(model_only(&url, FRAMES));
    let ours = whole_run(&url, FRAMES);
    println!("yolov8_person, 640x640 FP32, {IN_FLIGHT} in flight, {FRAMES} frames of vtest.avi");
    println!(
        "model only (plain client): {model:.2} f/s; whole triton-video run: {ours:.2} f/s (0 errors: every frame ok); ratio {:.2}",
        ours / model
    );
    drop(triton);
}

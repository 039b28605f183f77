//! Shared by the pipelines crate's integration tests.

use std::path::{Path, PathBuf};

#[allow(dead_code)] // used by the tests of the pipeline files only
pub mod files;

/// The demo clip generator of this crate.
pub const CLIP: &str = env!("CARGO_BIN_EXE_make-demo-clip");

/// A fresh, empty temporary directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `in.mp4` (the moving-shapes demo scene) and its ground truth `truth.jsonl` into `dir`.
#[allow(dead_code)] // not every test binary draws the demo scene
pub fn make_clip(dir: &Path, frames: u32, w: u32, h: u32) -> (PathBuf, PathBuf) {
    make_scene(dir, "demo", frames, w, h)
}

/// Writes `in.mp4` and `truth.jsonl` of a `make-demo-clip --scene` into `dir`.
pub fn make_scene(dir: &Path, scene: &str, frames: u32, w: u32, h: u32) -> (PathBuf, PathBuf) {
    let (clip, truth) = (dir.join("in.mp4"), dir.join("truth.jsonl"));
    let out = std::process::Command::new(CLIP)
        .args([
            "--out",
            clip.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
            "--scene",
            scene,
        ])
        .args([
            "--frames",
            &frames.to_string(),
            "--width",
            &w.to_string(),
            "--height",
            &h.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (clip, truth)
}

/// Decoded frame count of a video file; panics when it is not playable.
#[allow(unused_imports)] // nor decodes a video
pub use gst_triton_tests::camera::decoded_frames;

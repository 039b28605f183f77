//! Shared by the pipelines crate's integration tests.

use std::path::{Path, PathBuf};

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
pub fn make_clip(dir: &Path, frames: u32, w: u32, h: u32) -> (PathBuf, PathBuf) {
    let (clip, truth) = (dir.join("in.mp4"), dir.join("truth.jsonl"));
    let out = std::process::Command::new(CLIP)
        .args([
            "--out",
            clip.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
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
pub fn decoded_frames(path: &Path) -> usize {
    use gst::prelude::*;
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! fakesink name=s sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    p.by_name("s")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    p.set_state(gst::State::Playing).unwrap();
    let msg = p.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    p.set_state(gst::State::Null).unwrap();
    match msg {
        Some(m) if matches!(m.view(), gst::MessageView::Eos(_)) => {
            n.load(std::sync::atomic::Ordering::SeqCst)
        }
        other => panic!("{} is not playable: {other:?}", path.display()),
    }
}

//! Workspace binaries, examples and the plugin `.so` that tests run as separate processes, built
//! on first use in each test process (`cargo build`, a no-op when fresh), so that a test run
//! alone never picks up a stale artifact from an earlier build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::triton::repo_root;

/// `target/debug` (or `$CARGO_TARGET_DIR/debug`).
pub fn debug_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("debug")
}

/// Runs `cargo build --workspace --all-targets` (plus the `v1_24` feature when this crate has it)
/// once per process; panics when it fails. Always
/// exactly what `scripts/test.sh` builds (and what `cargo test` needs): another selection unifies
/// the dependencies' features differently and would rebuild, and replace, the shared artifacts.
fn build() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "--workspace", "--all-targets"]);
    if cfg!(feature = "v1_24") {
        // scripts/test-gst126.sh builds the workspace with the GStreamer >= 1.24 feature.
        cmd.arg("--features=gst-triton-tests/v1_24");
    }
    let st = cmd.status().expect("run cargo build");
    assert!(st.success(), "cargo build --workspace --all-targets failed");
    *done = true;
}

/// The directory holding a fresh `libgsttriton.so`, for `GST_PLUGIN_PATH`.
pub fn plugin_dir() -> PathBuf {
    build();
    debug_dir()
}

/// A fresh binary of the workspace (`make-demo-clip`, `triton-video`, `triton-proxy`).
pub fn bin(name: &str) -> PathBuf {
    build();
    debug_dir().join(name)
}

/// A fresh optimised binary of the workspace (`cargo build --release --bin NAME`), for benchmarks
/// that run it as a process of its own.
pub fn release_bin(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "--release", "--bin", name])
        .status()
        .expect("run cargo build --release");
    assert!(st.success(), "cargo build --release --bin {name} failed");
    debug_dir().with_file_name("release").join(name)
}

/// A fresh example of the plugin crate.
pub fn example(name: &str) -> PathBuf {
    build();
    debug_dir().join("examples").join(name)
}

/// `<tmp>/<name>-<pid>/in.mp4`: the moving-shapes demo clip (`make-demo-clip`), `frames` frames
/// of `w`×`h`, with its ground truth beside it (`truth.jsonl`).
pub fn demo_clip(name: &str, frames: u32, w: u32, h: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("in.mp4");
    let st = Command::new(bin("make-demo-clip"))
        .arg("--out")
        .arg(&clip)
        .arg("--truth")
        .arg(dir.join("truth.jsonl"))
        .args(["--frames", &frames.to_string()])
        .args(["--width", &w.to_string(), "--height", &h.to_string()])
        .status()
        .expect("run make-demo-clip");
    assert!(st.success(), "make-demo-clip failed");
    clip
}

/// OpenCV's sample video (Debian opencv-doc, installed by scripts/setup.sh; gunzipped when the
/// package ships it compressed).
pub fn vtest(dir: &Path) -> PathBuf {
    opencv_sample(dir, "vtest.avi")
}

/// One of the sample videos of Debian's opencv-doc (`vtest.avi`, `Megamind.avi`,
/// `Megamind_bugy.avi`, `tree.avi`), gunzipped into `dir` when the package ships it compressed.
pub fn opencv_sample(dir: &Path, name: &str) -> PathBuf {
    let v = Path::new("/usr/share/doc/opencv-doc/examples/data").join(name);
    if v.is_file() {
        return v;
    }
    let gz = v.with_extension("avi.gz");
    assert!(
        gz.is_file(),
        "{} is missing: install the Debian package opencv-doc (scripts/setup.sh does)",
        v.display()
    );
    let out = dir.join(name);
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gunzip -c '{}' > '{}'",
            gz.display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    out
}

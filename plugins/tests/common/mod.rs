//! Shared by the plugin's integration tests.

/// Initialises GStreamer and registers the `triton` plugin statically, once per test binary.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gsttriton::plugin_register_static().unwrap();
    });
}

/// The directory holding a fresh `libgsttriton.so` (for `GST_PLUGIN_PATH` in `gst-launch-1.0`
/// runs): `cargo build` first, once per test binary, so a test run alone never loads a stale one.
#[allow(dead_code)] // not every test binary runs gst-launch-1.0
pub fn plugin_dir() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        // Exactly what scripts/test.sh (or, with the feature, scripts/test-gst126.sh) builds:
        // another selection unifies features differently and would rebuild (and replace) the
        // shared artifacts.
        cmd.current_dir(&root)
            .args(["build", "--workspace", "--all-targets"]);
        if cfg!(feature = "v1_24") {
            cmd.arg("--features=gst-triton-tests/v1_24");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build --workspace --all-targets failed");
    });
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("debug")
}

/// RGB caps of `w`×`h` at 30 f/s (the metadata filters' tests).
#[allow(dead_code)] // not every test binary uses it
pub fn rgb_caps(w: u32, h: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

/// Every line of a `detjsonsink` file, parsed.
#[allow(dead_code)]
pub fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line parses"))
        .collect()
}

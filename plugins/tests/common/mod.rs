//! Shared by the plugin's integration tests.

/// Initialises GStreamer and registers the `triton` plugin statically, once per test binary.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gsttriton::plugin_register_static().unwrap();
    });
}

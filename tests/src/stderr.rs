//! What a run of `triton-video` or `gst-launch-1.0` must never print: GLib/GStreamer criticals and
//! warnings (`GStreamer-CRITICAL **`, `GLib-GObject-WARNING **`, ...). Every test that runs one of
//! them checks its stderr here.

/// Panics, quoting the lines, when `stderr` holds a GLib-style critical or warning.
pub fn assert_clean(what: &str, stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("-CRITICAL **") || l.contains("-WARNING **"))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: GLib/GStreamer criticals or warnings on stderr:\n{}",
        bad.join("\n")
    );
}

/// Runs `cmd` to completion (as `Command::output`) and checks its stderr with [`assert_clean`].
pub fn output(what: &str, cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert_clean(what, &out.stderr);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn criticals_and_warnings_are_caught_and_plain_lines_pass() {
        super::assert_clean(
            "ok",
            b"triton-video: warning: VIDEO_PATH: damaged\nframes: 3\n",
        );
        for line in [
            "(triton-video:1): GStreamer-CRITICAL **: 11:27:05.536: gst_mini_object_unref: assertion",
            "(gst-launch-1.0:2): GLib-GObject-WARNING **: 10:00:00.000: invalid cast",
        ] {
            let r = std::panic::catch_unwind(|| super::assert_clean("x", line.as_bytes()));
            assert!(r.is_err(), "{line}");
        }
    }
}

//! The cameras file (`--cameras FILE` / `CAMERAS_FILE`): which cameras one `triton-video` runs,
//! each as its own pipeline with its own outputs, read again whenever the file changes.
//!
//! ```toml
//! [[camera]]
//! name = "door"                      # required: letters, digits, '-', '_'; RESULTS_DIR/door/
//! uri = "rtsp://10.0.0.5/stream1"    # required: rtsp://, any URI, or a file
//! model = "yolov8n"                  # optional, default MODEL_NAME
//! conf_thres = 0.4                   # optional, default CONF_THRES
//! fps_cap = 5                        # optional, default FPS_CAP
//! give_up_secs = 0                   # optional, default CAMERA_GIVE_UP_SECS
//! timeout_ms = 2000                  # optional, default CAMERA_TIMEOUT_MS
//! encoder = "none"                   # optional, default ENCODER
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use triton_endpoint::redact;

use super::args::{Args, Encoder};

/// One `[[camera]]` table.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub name: String,
    pub uri: String,
    pub model: Option<String>,
    pub conf_thres: Option<f64>,
    pub fps_cap: Option<f64>,
    pub give_up_secs: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub encoder: Option<Encoder>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    camera: Vec<Camera>,
}

/// Reads a cameras file's text: the cameras by name, or an error naming the camera and field.
/// The credentials of every URI in the text are remembered first, so that an error that quotes a
/// line shows none of them.
pub fn parse(text: &str) -> Result<BTreeMap<String, Camera>, String> {
    redact::remember_in(text);
    let file: File = toml::from_str(text).map_err(|e| redact::scrub(e.to_string().trim_end()))?;
    let mut out = BTreeMap::new();
    for (i, c) in file.camera.into_iter().enumerate() {
        let at = format!("camera {} (name {:?})", i + 1, c.name);
        if c.name.is_empty()
            || c.name.len() > 64
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(format!(
                "{at}: name: expected 1 to 64 letters, digits, '-' or '_' (it names the folder RESULTS_DIR/<name>)"
            ));
        }
        if c.uri.trim().is_empty() {
            return Err(format!(
                "{at}: uri: expected an rtsp:// URL, another URI or a file"
            ));
        }
        if let Some(t) = c.conf_thres.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(format!("{at}: conf_thres: expected 0 to 1, got {t}"));
        }
        if let Some(f) = c.fps_cap.filter(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(format!("{at}: fps_cap: expected a number above 0, got {f}"));
        }
        if c.timeout_ms == Some(0) {
            return Err(format!("{at}: timeout_ms: expected at least 1"));
        }
        if out.contains_key(&c.name) {
            return Err(format!(
                "{at}: name: another camera already has it (names must be unique)"
            ));
        }
        out.insert(c.name.clone(), c);
    }
    Ok(out)
}

impl Camera {
    /// The runner's settings for this camera: the process's, with this camera's own on top.
    pub fn args(&self, base: &Args) -> Args {
        let mut a = base.clone();
        a.video_path = Some(self.uri.clone());
        a.cameras_file = None;
        a.results_dir = format!("{}/{}", base.results_dir.trim_end_matches('/'), self.name);
        a.stream_id = self.name.clone();
        if let Some(m) = &self.model {
            a.model_name = m.clone();
        }
        if let Some(t) = self.conf_thres {
            a.conf_thres = t;
        }
        if self.fps_cap.is_some() {
            a.fps_cap = self.fps_cap;
        }
        if let Some(g) = self.give_up_secs {
            a.camera_give_up_secs = g;
        }
        if let Some(t) = self.timeout_ms {
            a.camera_timeout_ms = t;
        }
        if let Some(e) = &self.encoder {
            a.encoder = e.clone();
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_parser_error_quoting_a_line_shows_no_credentials() {
        for text in [
            "[[camera]]\nname = \"a\"\nuri = \"rtsp://op:Toml-Pw-1@cam/s\" x\n",
            "[[camera]]\nname = \"a\"\nuri = \"rtsp://cam/s?password=Toml-Pw-2\nx = 1\n",
            "[[camera]]\nname = \"a\"\nuri = \"rtsp://op:Toml-Pw-3@cam/s\"\nno_such = 1\n",
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("line"), "{e}");
            assert!(!e.contains("Toml-Pw"), "{e}");
        }
    }

    #[test]
    fn a_file_of_cameras_with_defaults_and_overrides() {
        let cams = parse(
            r#"
            [[camera]]
            name = "door"
            uri = "rtsp://cam-1/stream"

            [[camera]]
            name = "yard_2"
            uri = "rtsp://user:pw@cam-2/s"
            model = "shapes_nms"
            conf_thres = 0.5
            fps_cap = 5
            give_up_secs = 30
            timeout_ms = 1500
            encoder = "none"
            "#,
        )
        .unwrap();
        assert_eq!(cams.keys().collect::<Vec<_>>(), ["door", "yard_2"]);
        let base = Args::parse_from(["triton-video", "--results-dir", "out/", "--fps-cap", "9"]);
        let door = cams["door"].args(&base);
        assert_eq!(door.video_path.as_deref(), Some("rtsp://cam-1/stream"));
        assert_eq!(door.results_dir, "out/door");
        assert_eq!(door.stream_id, "door");
        assert_eq!(door.model_name, "yolov8n");
        assert_eq!(door.fps_cap, Some(9.0));
        assert_eq!(door.encoder, Encoder::Auto);
        let yard = cams["yard_2"].args(&base);
        assert_eq!(yard.model_name, "shapes_nms");
        assert_eq!(yard.conf_thres, 0.5);
        assert_eq!(yard.fps_cap, Some(5.0));
        assert_eq!(yard.camera_give_up_secs, 30);
        assert_eq!(yard.camera_timeout_ms, 1500);
        assert_eq!(yard.encoder, Encoder::None);
        assert!(parse("").unwrap().is_empty(), "no camera is a valid file");
    }

    #[test]
    fn bad_files_name_the_camera_and_the_field() {
        let cases = [
            (
                "[[camera]]\nname = \"a/b\"\nuri = \"rtsp://x\"",
                "camera 1 (name \"a/b\"): name: expected 1 to 64 letters",
            ),
            (
                "[[camera]]\nname = \"a\"\nuri = \" \"",
                "camera 1 (name \"a\"): uri: expected",
            ),
            (
                "[[camera]]\nname = \"a\"\nuri = \"x\"\n[[camera]]\nname = \"a\"\nuri = \"y\"",
                "camera 2 (name \"a\"): name: another camera already has it",
            ),
            (
                "[[camera]]\nname = \"a\"\nuri = \"x\"\nconf_thres = 2.0",
                "conf_thres: expected 0 to 1, got 2",
            ),
            (
                "[[camera]]\nname = \"a\"\nuri = \"x\"\nfps_cap = 0",
                "fps_cap: expected a number above 0",
            ),
            (
                "[[camera]]\nname = \"a\"\nuri = \"x\"\ntimeout_ms = 0",
                "timeout_ms: expected at least 1",
            ),
            ("[[camera]]\nname = \"a\"\nuri = \"x\"\nurl = \"y\"", "url"),
            ("[[camera]]\nname = \"a\"", "uri"),
            (
                "[[camera]]\nname = \"a\"\nuri = \"x\"\nencoder = \"x264enc bitrate=9\"",
                "encoder",
            ),
            ("[[camera]\n", "TOML parse error"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}

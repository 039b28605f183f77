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

use serde::{Deserialize, Serialize};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};
use triton_endpoint::redact;

use super::args::{Args, Encoder};

/// One `[[camera]]` table (and the JSON body of `POST /api/cameras`).
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub name: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_thres: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps_cap: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Encoder>,
    /// Counting lines, as `LINES`: `NAME X1,Y1 X2,Y2 [classes=a,b]`, `;` between (implies
    /// tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<String>,
    /// Counting zones, as `ZONES`: `NAME X1,Y1 X2,Y2 X3,Y3 ... [classes=a,b]`, `;` between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<String>,
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
        c.check().map_err(|e| format!("{at}: {e}"))?;
        if out.contains_key(&c.name) {
            return Err(format!(
                "{at}: name: another camera already has it (names must be unique)"
            ));
        }
        out.insert(c.name.clone(), c);
    }
    Ok(out)
}

/// `lines` and `zones` as detcount reads them; an error names the field.
pub fn counting_rules(lines: &str, zones: &str) -> Result<gsttriton::count::rules::Rules, String> {
    let mut rules = gsttriton::count::rules::Rules::default();
    rules.add(lines, "lines", Some("line"))?;
    rules.add(zones, "zones", Some("zone"))?;
    Ok(rules)
}

impl Camera {
    /// The fields' own rules (the file's and the API's): an error naming the field and the
    /// value expected.
    pub fn check(&self) -> Result<(), String> {
        let c = self;
        if c.name.is_empty()
            || c.name.len() > 64
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(
                "name: expected 1 to 64 letters, digits, '-' or '_' (it names the folder RESULTS_DIR/<name>)"
                    .into(),
            );
        }
        if c.uri.trim().is_empty() {
            return Err("uri: expected an rtsp:// URL, another URI or a file".into());
        }
        if let Some(t) = c.conf_thres.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(format!("conf_thres: expected 0 to 1, got {t}"));
        }
        if let Some(f) = c.fps_cap.filter(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(format!("fps_cap: expected a number above 0, got {f}"));
        }
        if c.timeout_ms == Some(0) {
            return Err("timeout_ms: expected at least 1".into());
        }
        counting_rules(
            c.lines.as_deref().unwrap_or(""),
            c.zones.as_deref().unwrap_or(""),
        )?;
        Ok(())
    }

    /// Whether `new` differs from this entry only in what changes on the running pipeline:
    /// `conf_thres`, `fps_cap` where both have one (the pipeline then has its `videorate`), and
    /// `lines`/`zones` where both have some (the pipeline then has its `detcount`).
    pub fn changes_live_to(&self, new: &Camera) -> bool {
        let mut same = new.clone();
        same.conf_thres = self.conf_thres;
        if self.fps_cap.is_some() && new.fps_cap.is_some() {
            same.fps_cap = self.fps_cap;
        }
        if self.counts() && new.counts() {
            same.lines = self.lines.clone();
            same.zones = self.zones.clone();
        }
        same == *self
    }

    /// Whether the entry has lines or zones of its own (its pipeline then has `detcount`).
    pub fn counts(&self) -> bool {
        [&self.lines, &self.zones]
            .iter()
            .any(|v| v.as_deref().is_some_and(|t| !t.trim().is_empty()))
    }

    /// This camera as a `[[camera]]` table.
    fn table(&self) -> Table {
        let mut t = Table::new();
        t.insert("name", value(self.name.as_str()));
        t.insert("uri", value(self.uri.as_str()));
        if let Some(v) = &self.model {
            t.insert("model", value(v.as_str()));
        }
        if let Some(v) = self.conf_thres {
            t.insert("conf_thres", value(v));
        }
        if let Some(v) = self.fps_cap {
            t.insert("fps_cap", value(v));
        }
        if let Some(v) = self.give_up_secs {
            t.insert("give_up_secs", value(i64::from(v)));
        }
        if let Some(v) = self.timeout_ms {
            t.insert("timeout_ms", value(i64::from(v)));
        }
        if let Some(v) = &self.encoder {
            t.insert("encoder", value(v.to_string()));
        }
        if let Some(v) = &self.lines {
            t.insert("lines", value(v.as_str()));
        }
        if let Some(v) = &self.zones {
            t.insert("zones", value(v.as_str()));
        }
        t
    }

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
        if self.lines.is_some() {
            a.lines = self.lines.clone();
        }
        if self.zones.is_some() {
            a.zones = self.zones.clone();
        }
        a
    }
}

/// The `[[camera]]` tables of a file's text, for an edit that keeps its comments and layout.
fn tables(text: &str) -> Result<(DocumentMut, usize), String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| redact::scrub(e.to_string().trim_end()))?;
    let n = match doc
        .entry("camera")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
    {
        Item::ArrayOfTables(a) => a.len(),
        _ => return Err("camera: expected [[camera]] tables".into()),
    };
    Ok((doc, n))
}

fn cameras_mut(doc: &mut DocumentMut) -> &mut ArrayOfTables {
    doc["camera"]
        .as_array_of_tables_mut()
        .expect("checked by tables()")
}

fn position(list: &ArrayOfTables, name: &str) -> Option<usize> {
    list.iter()
        .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// `text` with `cam` in place of the camera of the same name (its comments kept), or added at
/// the end; the other cameras and every comment as they were.
pub fn with_camera(text: &str, cam: &Camera) -> Result<String, String> {
    let (mut doc, _) = tables(text)?;
    let list = cameras_mut(&mut doc);
    let mut table = cam.table();
    match position(list, &cam.name) {
        Some(i) => {
            let old = list.get_mut(i).expect("found");
            *table.decor_mut() = old.decor().clone();
            *old = table;
        }
        None => list.push(table),
    }
    Ok(doc.to_string())
}

/// `text` without the camera `name`; `None` when it has none of that name.
pub fn without_camera(text: &str, name: &str) -> Result<Option<String>, String> {
    let (mut doc, _) = tables(text)?;
    let list = cameras_mut(&mut doc);
    let Some(i) = position(list, name) else {
        return Ok(None);
    };
    list.remove(i);
    Ok(Some(doc.to_string()))
}

/// Replaces `path` with `text` at once (written beside it, then renamed): a reader sees the old
/// file or the new one, never half of one.
pub fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn edits_keep_comments_and_the_other_cameras() {
        let text = "# fleet\n\n# the door\n[[camera]]\nname = \"door\" # front\nuri = \"rtsp://d/s\"\n\n[[camera]]\nname = \"yard\"\nuri = \"rtsp://y/s\"\n";
        let cam = |name: &str, uri: &str| Camera {
            name: name.into(),
            uri: uri.into(),
            model: None,
            conf_thres: Some(0.5),
            fps_cap: None,
            give_up_secs: Some(30),
            timeout_ms: None,
            encoder: Some(Encoder::None),
            lines: Some("door 0,10 20,10".into()),
            zones: None,
        };
        let added = with_camera(text, &cam("gate", "rtsp://g/s")).unwrap();
        assert!(added.starts_with(text), "{added}");
        let cams = parse(&added).unwrap();
        assert_eq!(cams.keys().collect::<Vec<_>>(), ["door", "gate", "yard"]);
        assert_eq!(cams["gate"], cam("gate", "rtsp://g/s"));

        let replaced = with_camera(&added, &cam("door", "rtsp://d2/s")).unwrap();
        assert!(
            replaced.starts_with("# fleet\n\n# the door\n[[camera]]\n"),
            "{replaced}"
        );
        let cams = parse(&replaced).unwrap();
        assert_eq!(cams["door"], cam("door", "rtsp://d2/s"));
        assert_eq!(cams["yard"].uri, "rtsp://y/s");

        let removed = without_camera(&replaced, "yard").unwrap().unwrap();
        assert_eq!(
            parse(&removed).unwrap().keys().collect::<Vec<_>>(),
            ["door", "gate"]
        );
        assert!(removed.starts_with("# fleet\n"));
        assert_eq!(without_camera(&removed, "yard").unwrap(), None);

        // An empty file takes a first camera.
        let first = with_camera("", &cam("door", "rtsp://d/s")).unwrap();
        assert_eq!(parse(&first).unwrap().len(), 1);
        assert!(with_camera("camera = 1\n", &cam("door", "rtsp://d/s")).is_err());
    }

    #[test]
    fn what_changes_without_a_restart() {
        let base = parse("[[camera]]\nname = \"a\"\nuri = \"rtsp://a/s\"\nfps_cap = 5\n").unwrap()
            ["a"]
            .clone();
        let with = |f: &dyn Fn(&mut Camera)| {
            let mut c = base.clone();
            f(&mut c);
            c
        };
        assert!(base.changes_live_to(&base));
        assert!(base.changes_live_to(&with(&|c| c.conf_thres = Some(0.9))));
        assert!(base.changes_live_to(&with(&|c| c.fps_cap = Some(2.0))));
        assert!(!base.changes_live_to(&with(&|c| c.fps_cap = None)));
        assert!(!base.changes_live_to(&with(&|c| c.uri = "rtsp://b/s".into())));
        assert!(!base.changes_live_to(&with(&|c| c.model = Some("m".into()))));
        assert!(!base.changes_live_to(&with(&|c| c.encoder = Some(Encoder::None))));
        let counting = with(&|c| c.lines = Some("door 0,1 2,3".into()));
        assert!(counting.changes_live_to(&with(&|c| {
            c.lines = None;
            c.zones = Some("hall 0,0 9,0 9,9".into())
        })));
        assert!(
            !base.changes_live_to(&counting),
            "a first line needs detcount"
        );
        assert!(
            !counting.changes_live_to(&base),
            "no line left: detcount goes"
        );
        let no_cap = with(&|c| c.fps_cap = None);
        assert!(
            !no_cap.changes_live_to(&base),
            "a first fps cap needs its videorate"
        );
    }

    #[test]
    fn a_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("cameras-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("cameras.toml");
        std::fs::write(&f, "old").unwrap();
        write_atomically(&f, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

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

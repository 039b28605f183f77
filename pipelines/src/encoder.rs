//! `ENCODER`: which element encodes the annotated video, chosen once at start.
//!
//! * `auto` (default): a hardware H.264 encoder when GStreamer has one that opens here
//!   ([`HARDWARE`], in that order), else x264 at `veryfast` (about 18 ms per 1080p frame on one
//!   core: real time at 30 f/s);
//! * `none`: no video at all, the JSON lines only (the counting deployments);
//! * `x264`: x264 at `veryfast`, whatever else the machine has;
//! * any other value: a GStreamer video encoder element, used as it is (`avenc_mpeg4`,
//!   `x264enc`, `vah264enc`, ...), with a parser after it for H.264 and H.265. An element
//!   that does not exist, is not a video encoder, or whose output the container cannot hold is
//!   an error naming `ENCODER` and what was expected.

use std::fmt;
use std::str::FromStr;

use gst::prelude::*;

/// What becomes of the annotated video.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Encoder {
    /// A hardware H.264 encoder when there is one, else x264.
    #[default]
    Auto,
    /// No video out: the JSON lines only (no overlay, no encoder, no recording).
    None,
    /// x264 (`veryfast`, `zerolatency`).
    X264,
    /// A GStreamer encoder element by name.
    Element(String),
}

/// Hardware H.264 encoders `auto` tries, in order: VA-API (Intel, AMD), NVIDIA NVENC, Intel
/// Quick Sync, V4L2 (Raspberry Pi and other SoCs), and the older VA-API and OpenMAX plugins.
pub const HARDWARE: [&str; 9] = [
    "vah264enc",
    "vah264lpenc",
    "nvh264enc",
    "nvautogpuh264enc",
    "qsvh264enc",
    "msdkh264enc",
    "v4l2h264enc",
    "vaapih264enc",
    "omxh264enc",
];

const X264: &str = "x264enc speed-preset=veryfast tune=zerolatency";

const EXPECTED: &str = "expected auto, none, x264 or a GStreamer video encoder element (x264enc, avenc_mpeg4, vah264enc, ...)";

impl FromStr for Encoder {
    type Err = String;

    fn from_str(s: &str) -> Result<Encoder, String> {
        Ok(match s.trim() {
            "auto" | "" => Encoder::Auto,
            "none" => Encoder::None,
            "x264" => Encoder::X264,
            name if name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                Encoder::Element(name.to_string())
            }
            other => {
                return Err(format!(
                    "ENCODER: '{other}' is not an element name; {EXPECTED}"
                ));
            }
        })
    }
}

impl TryFrom<String> for Encoder {
    type Error = String;

    fn try_from(s: String) -> Result<Encoder, String> {
        s.parse()
    }
}

impl From<Encoder> for String {
    fn from(e: Encoder) -> String {
        e.to_string()
    }
}

impl fmt::Display for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoder::Auto => f.write_str("auto"),
            Encoder::None => f.write_str("none"),
            Encoder::X264 => f.write_str("x264"),
            Encoder::Element(e) => f.write_str(e),
        }
    }
}

/// The container the annotated video goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Mp4,
    MpegTs,
}

impl Container {
    fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::MpegTs => "mpegtsmux",
        }
    }
}

/// The encoder chosen: its part of the pipeline description, its element name, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// `encoder [props] [! parser]`, ready to go before the muxer.
    pub desc: String,
    pub element: String,
    pub why: String,
}

impl Chosen {
    /// `x264enc (auto: no hardware H.264 encoder here)`, for the summary.
    pub fn summary(&self) -> String {
        format!("{} ({})", self.element, self.why)
    }
}

/// A hardware encoder that exists and opens (its device is there): set to READY and back.
fn opens(name: &str) -> bool {
    let Ok(e) = gst::ElementFactory::make(name).build() else {
        return false;
    };
    let ok = e.set_state(gst::State::Ready).is_ok();
    let _ = e.set_state(gst::State::Null);
    ok
}

/// The caps an element factory's source pads can make.
fn src_caps(f: &gst::ElementFactory) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    for t in f.static_pad_templates() {
        if t.direction() == gst::PadDirection::Src {
            caps.merge(t.caps());
        }
    }
    caps
}

/// The parser that goes after an encoder of these caps (H.264 and H.265: the stream format each
/// muxer wants), if any.
fn parser(caps: &gst::Caps) -> Option<&'static str> {
    let s = caps.structure(0)?;
    match s.name().as_str() {
        "video/x-h264" => Some("h264parse"),
        "video/x-h265" => Some("h265parse"),
        // mpeg4videoparse in front of mp4mux loses the first buffer's PTS (GStreamer 1.22).
        _ => None,
    }
}

/// Chooses the encoder for `container` (GStreamer initialised here if it is not yet).
/// `Ok(None)`: `ENCODER=none`.
pub fn choose(e: &Encoder, container: Container) -> Result<Option<Chosen>, String> {
    gst::init().map_err(|err| format!("GStreamer: {err}"))?;
    let (name, why) = match e {
        Encoder::None => return Ok(None),
        Encoder::Auto => match HARDWARE.iter().find(|n| opens(n)) {
            Some(hw) => (hw.to_string(), "auto: hardware H.264".to_string()),
            None => {
                return Ok(Some(Chosen {
                    desc: format!("{X264} ! h264parse"),
                    element: "x264enc".into(),
                    why: "auto: no hardware H.264 encoder here".into(),
                }));
            }
        },
        Encoder::X264 => {
            return Ok(Some(Chosen {
                desc: format!("{X264} ! h264parse"),
                element: "x264enc".into(),
                why: "ENCODER=x264".into(),
            }));
        }
        Encoder::Element(n) => (n.clone(), format!("ENCODER={n}")),
    };
    let f = gst::ElementFactory::find(&name)
        .ok_or_else(|| format!("ENCODER: no GStreamer element named '{name}' here; {EXPECTED}"))?;
    let klass = f.metadata("klass").unwrap_or_default();
    if !(klass.contains("Encoder") && klass.contains("Video")) {
        return Err(format!(
            "ENCODER: '{name}' is not a video encoder (its class is {klass}); {EXPECTED}"
        ));
    }
    let caps = src_caps(&f);
    let mux = gst::ElementFactory::find(container.muxer())
        .ok_or_else(|| format!("no {} in this GStreamer", container.muxer()))?;
    let fits = mux
        .static_pad_templates()
        .iter()
        .any(|t| t.direction() == gst::PadDirection::Sink && t.caps().can_intersect(&caps));
    if !fits {
        return Err(format!(
            "ENCODER: {name} makes {caps}, which {} cannot hold (the recording is {}); expected an encoder of H.264, H.265 or MPEG-4 video",
            container.muxer(),
            if container == Container::Mp4 {
                "annotated.mp4"
            } else {
                "annotated.ts"
            }
        ));
    }
    let mut desc = match parser(&caps) {
        Some(p) => format!("{name} ! {p}"),
        None => name.clone(),
    };
    if name.starts_with("avenc_") {
        // GStreamer 1.22's libav encoders output nothing for frames of a segment that does not
        // start at 0 (an MP4 with B-frames has one): they get the frames in running time.
        desc = format!("identity single-segment=true ! {desc}");
    }
    Ok(Some(Chosen {
        desc,
        element: name,
        why,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_are_refused() {
        assert_eq!("auto".parse::<Encoder>().unwrap(), Encoder::Auto);
        assert_eq!("none".parse::<Encoder>().unwrap(), Encoder::None);
        assert_eq!("x264".parse::<Encoder>().unwrap(), Encoder::X264);
        assert_eq!(
            "avenc_mpeg4".parse::<Encoder>().unwrap(),
            Encoder::Element("avenc_mpeg4".into())
        );
        let e = "x264enc bitrate=1".parse::<Encoder>().unwrap_err();
        assert!(
            e.contains("ENCODER") && e.contains("expected auto, none"),
            "{e}"
        );
    }

    #[test]
    fn auto_finds_a_hardware_encoder_or_x264_and_named_ones_are_checked() {
        let auto = choose(&Encoder::Auto, Container::Mp4).unwrap().unwrap();
        match HARDWARE.iter().find(|n| opens(n)) {
            Some(hw) => assert_eq!(&auto.element, hw),
            None => {
                assert_eq!(auto.element, "x264enc");
                assert!(
                    auto.desc.starts_with("x264enc speed-preset=veryfast"),
                    "{auto:?}"
                );
                assert_eq!(
                    auto.summary(),
                    "x264enc (auto: no hardware H.264 encoder here)"
                );
            }
        }
        assert_eq!(choose(&Encoder::None, Container::Mp4).unwrap(), None);
        let m = choose(&Encoder::Element("avenc_mpeg4".into()), Container::Mp4)
            .unwrap()
            .unwrap();
        assert_eq!(m.desc, "identity single-segment=true ! avenc_mpeg4");
        let h = choose(&Encoder::Element("x264enc".into()), Container::MpegTs)
            .unwrap()
            .unwrap();
        assert_eq!(h.desc, "x264enc ! h264parse");
        let cases = [
            (
                "no_such_encoder",
                "no GStreamer element named 'no_such_encoder'",
            ),
            ("identity", "'identity' is not a video encoder"),
            ("vp8enc", "which mp4mux cannot hold"),
        ];
        for (name, want) in cases {
            let e = choose(&Encoder::Element(name.into()), Container::Mp4).unwrap_err();
            assert!(
                e.starts_with("ENCODER: ") && e.contains(want),
                "{name}: {e}"
            );
        }
    }
}

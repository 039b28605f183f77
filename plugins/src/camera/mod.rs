//! `tritoncamerasrc`: a live camera (`rtsp://`, `rtsps://`, `http(s)://`, `srt://`, `udp://`, any
//! URI GStreamer can decode) that keeps the pipeline running while the camera is away.
//!
//! Inside: `fallbacksrc` (gst-plugins-rs, MPL-2.0, used unmodified) decodes the URI, restarts the
//! source `restart-ms` after it fails or ends, and counts a stream that brings no data for
//! `timeout-ms` as failed; meanwhile it makes black frames. Then `videoconvert ! videoscale !
//! videorate drop-only=true ! capsfilter`, whose caps are fixed to the camera's first size and frame rate, so the
//! output never changes caps: the black frames, and a camera that comes back at another size or
//! frame rate, are scaled and timed to what the encoder and muxer were set up for.
//!
//! Frames made while the camera is away carry a `TritonNoSignalMeta` ([`crate::meta::no_signal`]);
//! `tritoninfer` sends no request for them and marks them `status: "no-signal"`. With
//! `on-outage=pause` they are dropped instead. The element posts `triton-camera` element messages
//! (`state` = `up` (first frame) | `lost` | `back`, `outages`, `outage-ms`) and, when
//! `give-up-secs` pass without the camera, an error (`camera ... did not come back within N s`).
//! No frame goes out before the camera's first (`give-up-secs` counts from the start then); the
//! caps may change once before that first frame (from the black frames' to the camera's), which
//! encoders and MPEG-TS take, but `mp4mux` does not: record cameras as MPEG-TS.

mod imp;
mod scrub;
mod uri;

use gst::glib;
use gst::prelude::*;

pub use uri::{is_live, redacted};

glib::wrapper! {
    pub struct CameraSrc(ObjectSubclass<imp::CameraSrc>) @extends gst::Bin, gst::Element, gst::Object;
}

/// What the output shows while the camera is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "TritonCameraOutage")]
pub enum Outage {
    /// Black frames at the camera's frame rate, marked no-signal.
    #[default]
    #[enum_value(
        name = "Black frames marked no-signal, at the camera's rate",
        nick = "black"
    )]
    Black,
    /// No frames until the camera is back.
    #[enum_value(name = "No frames until the camera is back", nick = "pause")]
    Pause,
}

/// The name of the element messages `tritoncamerasrc` posts.
pub const MESSAGE: &str = "triton-camera";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "tritoncamerasrc",
        gst::Rank::NONE,
        CameraSrc::static_type(),
    )
}

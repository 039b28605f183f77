//! `triton` GStreamer plugin: Triton Inference Server object detection elements.
//!
//! * `tritonletterbox`: frame → model tensor (letterbox, colour conversion, normalisation) as a meta.
//! * `tritoninfer`: tensor → Triton (directly or through `triton-proxy`) → detections as
//!   `GstVideoRegionOfInterestMeta` plus a `TritonResultMeta` (and, with the `v1_24` feature, a
//!   `GstAnalyticsRelationMeta`: see [`meta::analytics`]).
//! * `dettrack`: gives each detection a track id that stays with the object (ByteTrack, [`track`]).
//! * `detcount`: counts tracked objects crossing lines and inside zones ([`count`]).
//! * `detoverlay`: draws the detections on the frames.
//! * `detjsonsink`: one JSON line per frame with counts and boxes.
//! * `detjsonreplay`: attaches the detections a `detjsonsink` file recorded again (no inference).
//! * `tritoncamerasrc`: a live camera that keeps the pipeline running while it is away.
//! * `ptsrepair`: every buffer gets a PTS later than the one before (what encoders and muxers
//!   need of the frames real files decode to).
//!
//! The maths lives in plain modules ([`letterbox::geometry`], [`letterbox::tensor`], [`pixel`],
//! [`decode`], [`infer::decoding`], [`overlay::draw`]) with no GStreamer types; the network is the
//! [`triton_client`] crate; [`meta`] reads and writes the metas the elements exchange; [`video`]
//! holds the format helpers the filters share; [`model_query`] is how `tritonletterbox` learns the
//! model's input datatype from `tritoninfer`.

pub mod camera;
pub mod count;
pub mod decode;
pub mod detcount;
pub mod dettrack;
pub mod infer;
pub mod jsonreplay;
pub mod jsonsink;
pub mod letterbox;
pub mod meta;
pub mod model_query;
pub mod overlay;
pub mod pixel;
pub mod ptsrepair;
pub mod track;
pub mod video;

gst::plugin_define!(
    triton,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "Apache-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    meta::register();
    camera::register(plugin)?;
    letterbox::register(plugin)?;
    infer::register(plugin)?;
    jsonsink::register(plugin)?;
    jsonreplay::register(plugin)?;
    dettrack::register(plugin)?;
    detcount::register(plugin)?;
    overlay::register(plugin)?;
    ptsrepair::register(plugin)?;
    Ok(())
}

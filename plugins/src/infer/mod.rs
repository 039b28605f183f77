//! `tritoninfer`: sends each frame's tensor (from `tritonletterbox`) to Triton, through
//! `triton-proxy` or directly, and attaches the decoded detections as
//! `GstVideoRegionOfInterestMeta`s plus a per-frame `TritonResultMeta`.
//!
//! The network side is the [`triton_client`] crate; this directory is the element and its glue:
//!
//! * [`settings`]: the properties and their defaults, and the client configuration they make.
//! * [`decoding`]: the decoding policy of a run (labels, classes, decoder choice, answer →
//!   detections); pure, no GStreamer.
//! * `bridge`: the shared tokio runtime (its threads block SIGPIPE: a C host must not die of a
//!   write on a closed socket) and blocking calls that are bounded and cancellable.
//! * `queue`: the ordered, bounded hand-over from the chain function to the src task.
//! * `imp`: the GStreamer element only (pads, queue, src task, flush, EOS).

mod answers;
mod bridge;
pub mod decoding;
mod imp;
mod places;
mod queue;
pub mod settings;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct TritonInfer(ObjectSubclass<imp::TritonInfer>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "tritoninfer",
        gst::Rank::NONE,
        TritonInfer::static_type(),
    )
}

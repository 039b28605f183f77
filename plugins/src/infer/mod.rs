//! `tritoninfer`: sends each frame's tensor (from `tritonletterbox`) to Triton, through
//! `triton-proxy` or directly, and attaches the decoded detections as
//! `GstVideoRegionOfInterestMeta`s plus a per-frame `TritonResultMeta`.

pub mod client;
mod imp;

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

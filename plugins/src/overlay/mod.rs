//! `detoverlay`: draws detection boxes, labels and confidences on the frame, in place.

pub mod draw;
mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct DetOverlay(ObjectSubclass<imp::DetOverlay>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "detoverlay",
        gst::Rank::NONE,
        DetOverlay::static_type(),
    )
}

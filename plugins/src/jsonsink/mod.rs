//! `detjsonsink`: one JSON object per frame, one line each (detections, counts per label, status).

mod counts;
mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct DetJsonSink(ObjectSubclass<imp::DetJsonSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "detjsonsink",
        gst::Rank::NONE,
        DetJsonSink::static_type(),
    )
}

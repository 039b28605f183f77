//! `dettrack`: gives each detection on a frame a track id that stays with the object (ByteTrack,
//! [`crate::track`]), and carries the tracks' predicted boxes through frames without inference
//! (`tritoninfer interval=N`). Frames pass through untouched; only metadata is added.

mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct DetTrack(ObjectSubclass<imp::DetTrack>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "dettrack",
        gst::Rank::NONE,
        DetTrack::static_type(),
    )
}

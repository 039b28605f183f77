//! `detcount`: counting rules on tracked detections (after `dettrack`): directed lines and
//! polygon zones ([`crate::count`]). A separate element from the tracker so that the rules can
//! count any tracker's ids (a ROI `tracking` param) and change without touching the tracks; its
//! results go into a `TritonCountMeta` per frame (read by `detjsonsink`) and element messages on
//! the bus.

mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct DetCount(ObjectSubclass<imp::DetCount>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "detcount",
        gst::Rank::NONE,
        DetCount::static_type(),
    )
}

//! `detjsonreplay`: attaches to the k-th frame the detections recorded on the k-th frame line of
//! a `detjsonsink` file, so tracking and counting run again on recorded detections without
//! inference ([`record`] reads the file).

mod imp;
pub mod record;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct DetJsonReplay(ObjectSubclass<imp::DetJsonReplay>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "detjsonreplay",
        gst::Rank::NONE,
        DetJsonReplay::static_type(),
    )
}

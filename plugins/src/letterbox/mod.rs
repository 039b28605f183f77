//! `tritonletterbox`: attaches the model input tensor (letterboxed, converted, normalised) to each
//! frame as a [`crate::meta`] custom meta, leaving the video untouched.

mod convert;
mod gather;
pub use triton_geometry as geometry;
mod objects;
pub mod region;
mod resize;
mod settings;
mod store;
mod taps;
pub mod tensor;

pub use resize::Resizer;

mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct TritonLetterbox(ObjectSubclass<imp::TritonLetterbox>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "tritonletterbox",
        gst::Rank::NONE,
        TritonLetterbox::static_type(),
    )
}

//! `ptsrepair`: gives every buffer a presentation timestamp later than the one before it, so
//! that an encoder and a muxer downstream accept whatever the decoder produced.
//!
//! Real files decode to frames without a PTS (raw elementary streams, damaged files), with the
//! same PTS twice (MPEG-4 "packed B-frames" in AVI), or with a PTS that goes back (a muxer's
//! bug, a joined recording). `x264enc` then hands out buffers without a PTS and `mp4mux` stops
//! the pipeline ("Buffer has no PTS"). This element changes only such timestamps: a frame whose
//! PTS is missing or not after the last one is placed one frame interval after it (the buffer's
//! duration, else the caps' frame rate, else 1/30 s). Every frame passes; none is dropped or
//! duplicated, and a frame with a good PTS keeps it. Its read-only `repaired` property counts
//! the frames it changed.

mod imp;
mod retime;

pub use retime::Retimer;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct PtsRepair(ObjectSubclass<imp::PtsRepair>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "ptsrepair",
        gst::Rank::NONE,
        PtsRepair::static_type(),
    )
}

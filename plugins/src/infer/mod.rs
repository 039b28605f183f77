//! `tritoninfer`: sends each frame's tensor (from `tritonletterbox`) to Triton, through
//! `triton-proxy` or directly, and attaches the decoded detections as
//! `GstVideoRegionOfInterestMeta`s plus a per-frame `TritonResultMeta`.
//!
//! * [`settings`]: the properties and their defaults.
//! * [`session`]: pure per-run logic (labels, classes, decoder choice, answer → detections).
//! * [`client`]: the gRPC side (three transports, reconnect); `error`: why a request failed;
//!   `answer` reads what the servers send back; `kserve`: unary KServe v2 calls on a
//!   configurable service name.
//! * `shm`, `shm_pool`: `shared-memory=system` (POSIX regions registered with Triton).
//! * `runtime`: the shared tokio runtime, whose threads block SIGPIPE (a C host must not die
//!   of a write on a closed socket).
//! * `queue`: the ordered, bounded hand-over from the chain function to the src task.
//! * `imp`: the GStreamer element only (pads, queue, src task, flush, EOS).

mod answer;
pub mod client;
mod error;
mod imp;
mod kserve;
mod queue;
mod runtime;
pub mod session;
pub mod settings;
mod shm;
mod shm_pool;

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

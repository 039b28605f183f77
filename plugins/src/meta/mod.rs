//! Metas shared by the elements, as `GstCustomMeta`s (GStreamer ≥ 1.20) so C and Python can read
//! them with `gst_buffer_get_custom_meta()` / `Gst.Buffer.get_custom_meta()` and
//! `gst_custom_meta_get_structure()`.
//!
//! * [`TENSOR_META`] (`TritonTensorMeta`), added by `tritonletterbox`: fields `tensor` (GstBuffer),
//!   `dtype` ("FP32" | "FP16" | "UINT8"), `layout` ("NCHW" | "NHWC"), `shape` (array of int64),
//!   `scale` (double, r), `scale-x`, `scale-y` (exact per-axis scales), `pad-x`, `pad-y` (double:
//!   column/row where the resized image starts in the tensor), `src-width`, `src-height`,
//!   `tensor-width`, `tensor-height`, `resized-width`, `resized-height` (int).
//!   Frame → tensor: `x_t = x·scale-x + pad-x`; tensor → frame: `x = (x_t − pad-x)/scale-x`.
//! * [`SKIPPED_META`] (`TritonSkippedMeta`), added by `tritonletterbox interval=N` instead of a
//!   tensor meta to the frames between: `interval` (uint). `tritoninfer` passes them as
//!   `status: "skipped"` without a request.
//! * [`RESULT_META`] (`TritonResultMeta`), added by `tritoninfer` to every frame it passes:
//!   `status` ("ok" | "skipped" | "error"), `error`, `latency-ms` (double), `model`, `model-version`,
//!   `request-id`, `frame` (uint64), `detections` (uint), `labels` (array of strings, one per
//!   detection) and `counts` (a structure `counts, <label>=(uint)n, ...`), so bindings that cannot
//!   iterate ROI metas (PyGObject) still get per-class counts. `dettrack` adds `track-ids` (array
//!   of int64, the track of each ROI meta of the frame in order, -1 for none) and `predicted`
//!   (uint, how many of them are predicted boxes).
//! * [`NO_SIGNAL_META`] (`TritonNoSignalMeta`), added by `tritoncamerasrc` to the frames it makes
//!   while its camera is away: `uri` (credentials removed) and `outage-ms` (uint64, how long the
//!   camera has been away). `tritoninfer` sends no request for them and marks them
//!   `status: "no-signal"`.
//! * [`COUNT_META`] (`TritonCountMeta`), added by `detcount`: the frame's crossing and zone
//!   events, each zone's occupancy and the crossings so far (see [`count`]).

//!
//! Files: [`detection`] (the shared [`Detection`] leaf), [`tensor`], [`result`], [`roi`] (ROI
//! metas) and, with `v1_24`, [`analytics`] (`GstAnalyticsRelationMeta`); the ROI and analytics
//! writers both depend on [`Detection`] only.

use std::sync::Once;

use gst::meta::CustomMeta;

#[cfg(feature = "v1_24")]
pub mod analytics;
pub mod count;
pub mod detection;
pub mod result;
pub mod roi;
pub mod tensor;

pub use count::{Counts, add_count_meta, count_meta};
pub use detection::{Detection, TrackTag};
pub use result::{
    Classified, NoSignal, ResultMeta, add_no_signal, add_result_meta, no_signal, result_meta,
    set_classified, set_tracks,
};
pub use roi::{Attribute, add_detection, attributes, track_ids};
pub use tensor::{Items, TensorMeta, add_skipped, add_tensor_meta, skipped, tensor_meta};

/// Name of the tensor + transform meta.
pub const TENSOR_META: &str = "TritonTensorMeta";
/// Name of the per-frame inference result meta.
pub const RESULT_META: &str = "TritonResultMeta";
/// Name of the marker of frames `tritonletterbox interval=N` made no tensor for.
pub const SKIPPED_META: &str = "TritonSkippedMeta";
/// Name of the counting rules' per-frame meta (`detcount`).
pub const COUNT_META: &str = "TritonCountMeta";
/// Name of the marker of frames made while a camera was away.
pub const NO_SIGNAL_META: &str = "TritonNoSignalMeta";

/// Registers both metas (idempotent).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !CustomMeta::is_registered(TENSOR_META) {
            CustomMeta::register(TENSOR_META, &[]);
        }
        if !CustomMeta::is_registered(RESULT_META) {
            CustomMeta::register(RESULT_META, &[]);
        }
        if !CustomMeta::is_registered(NO_SIGNAL_META) {
            CustomMeta::register(NO_SIGNAL_META, &[]);
        }
        if !CustomMeta::is_registered(SKIPPED_META) {
            CustomMeta::register(SKIPPED_META, &[]);
        }
        if !CustomMeta::is_registered(COUNT_META) {
            CustomMeta::register(COUNT_META, &[]);
        }
    });
}

/// Attaches an analysed frame's detections: one ROI meta each ([`add_detection`]) and, with the
/// `v1_24` feature, one `GstAnalyticsRelationMeta` holding them all, empty when there are none
/// ([`analytics`]). An error names the metadata that could not be added (the ROI metas are
/// there either way).
pub fn add_detections(
    buffer: &mut gst::BufferRef,
    dets: &[Detection],
    frame_w: u32,
    frame_h: u32,
) -> Result<(), String> {
    for d in dets {
        add_detection(buffer, d, frame_w, frame_h);
    }
    #[cfg(feature = "v1_24")]
    analytics::add_detections(buffer, dets)
        .map_err(|e| format!("GstAnalyticsRelationMeta: {e}"))?;
    Ok(())
}

/// Attaches a classifier's answers to the frame's objects: each `(i, attribute)` as a
/// `classification` param on the `i`-th ROI meta ([`roi::add_attributes`]) and, with the `v1_24`
/// feature, as a classification mtd related to the `i`-th object-detection mtd
/// ([`analytics::add_attributes`]). An error names the metadata that could not be added (the ROI
/// params are there either way).
pub fn add_attributes(
    buffer: &mut gst::BufferRef,
    attrs: &[(usize, Attribute)],
) -> Result<(), String> {
    roi::add_attributes(buffer, attrs);
    #[cfg(feature = "v1_24")]
    analytics::add_attributes(buffer, attrs)
        .map_err(|e| format!("GstAnalyticsRelationMeta: {e}"))?;
    Ok(())
}

/// Reads every detection of a buffer: its ROI metas (frame size needed to turn the normalised
/// coordinates back into sub-pixel boxes; ROIs without a `detection` param use their integer box)
/// or, with the `v1_24` feature and where the frame has no ROI meta, the object-detection mtds of
/// its `GstAnalyticsRelationMeta` (made by another element; ours carry both, read once).
pub fn detections(buffer: &gst::BufferRef, frame_w: u32, frame_h: u32) -> Vec<Detection> {
    let rois = roi::detections(buffer, frame_w, frame_h);
    #[cfg(feature = "v1_24")]
    if rois.is_empty() {
        return analytics::detections(buffer);
    }
    rois
}

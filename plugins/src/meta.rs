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
//! * [`RESULT_META`] (`TritonResultMeta`), added by `tritoninfer` to every frame it passes:
//!   `status` ("ok" | "skipped" | "error"), `error`, `latency-ms` (double), `model`, `model-version`,
//!   `request-id`, `frame` (uint64), `detections` (uint), `labels` (array of strings, one per
//!   detection) and `counts` (a structure `counts, <label>=(uint)n, ...`), so bindings that cannot
//!   iterate ROI metas (PyGObject) still get per-class counts.
//! * [`NO_SIGNAL_META`] (`TritonNoSignalMeta`), added by `tritoncamerasrc` to the frames it makes
//!   while its camera is away: `uri` (credentials removed) and `outage-ms` (uint64, how long the
//!   camera has been away). `tritoninfer` sends no request for them and marks them
//!   `status: "no-signal"`.

use std::sync::Once;

use gst::meta::CustomMeta;

use crate::letterbox::geometry::Letterbox;
use crate::letterbox::kernel::{Layout, TensorSpec};

/// Name of the tensor + transform meta.
pub const TENSOR_META: &str = "TritonTensorMeta";
/// Name of the per-frame inference result meta.
pub const RESULT_META: &str = "TritonResultMeta";
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
    });
}

/// The tensor meta, read back.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    pub tensor: gst::Buffer,
    pub dtype: String,
    pub layout: String,
    pub shape: Vec<i64>,
    pub geometry: Letterbox,
}

/// Attaches (or replaces) the tensor meta.
pub fn add_tensor_meta(
    buffer: &mut gst::BufferRef,
    tensor: gst::Buffer,
    spec: &TensorSpec,
    g: &Letterbox,
) {
    register();
    if let Ok(old) = CustomMeta::from_mut_buffer(buffer, TENSOR_META) {
        let _ = old.remove();
    }
    let mut meta = CustomMeta::add(buffer, TENSOR_META).expect("TritonTensorMeta is registered");
    let s = meta.mut_structure();
    s.set("tensor", tensor);
    s.set("dtype", spec.dtype.triton_name());
    s.set(
        "layout",
        if spec.layout == Layout::Nchw {
            "NCHW"
        } else {
            "NHWC"
        },
    );
    s.set("shape", gst::Array::new(spec.shape()));
    s.set("scale", g.scale);
    s.set("scale-x", g.scale_x());
    s.set("scale-y", g.scale_y());
    s.set("pad-x", g.left as f64);
    s.set("pad-y", g.top as f64);
    s.set("src-width", g.src_w as i32);
    s.set("src-height", g.src_h as i32);
    s.set("tensor-width", g.dst_w as i32);
    s.set("tensor-height", g.dst_h as i32);
    s.set("resized-width", g.new_w as i32);
    s.set("resized-height", g.new_h as i32);
}

/// Reads the tensor meta, `None` when absent or malformed.
pub fn tensor_meta(buffer: &gst::BufferRef) -> Option<TensorMeta> {
    let meta = CustomMeta::from_buffer(buffer, TENSOR_META).ok()?;
    let s = meta.structure();
    let int = |k: &str| s.get::<i32>(k).ok().and_then(|v| u32::try_from(v).ok());
    let (src_w, src_h, dst_w, dst_h) = (
        int("src-width")?,
        int("src-height")?,
        int("tensor-width")?,
        int("tensor-height")?,
    );
    let (new_w, new_h) = (int("resized-width")?, int("resized-height")?);
    let geometry = Letterbox {
        src_w,
        src_h,
        dst_w,
        dst_h,
        scale: s.get("scale").ok()?,
        new_w,
        new_h,
        pad_x: (dst_w.saturating_sub(new_w)) as f64 / 2.0,
        pad_y: (dst_h.saturating_sub(new_h)) as f64 / 2.0,
        left: s.get::<f64>("pad-x").ok()? as u32,
        top: s.get::<f64>("pad-y").ok()? as u32,
    };
    let shape = s
        .get::<gst::Array>("shape")
        .ok()?
        .iter()
        .filter_map(|v| v.get::<i64>().ok())
        .collect();
    Some(TensorMeta {
        tensor: s.get("tensor").ok()?,
        dtype: s.get("dtype").ok()?,
        layout: s.get("layout").ok()?,
        shape,
        geometry,
    })
}

/// Per-frame result of `tritoninfer`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultMeta {
    pub status: String,
    pub error: String,
    pub latency_ms: f64,
    pub model: String,
    pub model_version: String,
    pub request_id: String,
    pub frame: u64,
    pub detections: u32,
    pub labels: Vec<String>,
}

/// Attaches the result meta.
pub fn add_result_meta(buffer: &mut gst::BufferRef, r: &ResultMeta) {
    register();
    let mut meta = CustomMeta::add(buffer, RESULT_META).expect("TritonResultMeta is registered");
    let s = meta.mut_structure();
    s.set("status", r.status.as_str());
    s.set("error", r.error.as_str());
    s.set("latency-ms", r.latency_ms);
    s.set("model", r.model.as_str());
    s.set("model-version", r.model_version.as_str());
    s.set("request-id", r.request_id.as_str());
    s.set("frame", r.frame);
    s.set("detections", r.detections);
    s.set(
        "labels",
        gst::Array::new(r.labels.iter().map(String::as_str)),
    );
    let mut counts = gst::Structure::new_empty("counts");
    for l in &r.labels {
        let n = counts.get::<u32>(l.as_str()).unwrap_or(0);
        counts.set(l.as_str(), n + 1);
    }
    s.set("counts", counts);
}

/// Reads the result meta.
pub fn result_meta(buffer: &gst::BufferRef) -> Option<ResultMeta> {
    let meta = CustomMeta::from_buffer(buffer, RESULT_META).ok()?;
    let s = meta.structure();
    Some(ResultMeta {
        status: s.get("status").ok()?,
        error: s.get("error").unwrap_or_default(),
        latency_ms: s.get("latency-ms").unwrap_or_default(),
        model: s.get("model").unwrap_or_default(),
        model_version: s.get("model-version").unwrap_or_default(),
        request_id: s.get("request-id").unwrap_or_default(),
        frame: s.get("frame").unwrap_or_default(),
        detections: s.get("detections").unwrap_or_default(),
        labels: s
            .get::<gst::Array>("labels")
            .map(|a| a.iter().filter_map(|v| v.get::<String>().ok()).collect())
            .unwrap_or_default(),
    })
}

/// A frame made while the camera was away (`tritoncamerasrc`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NoSignal {
    /// The camera's URI, without credentials.
    pub uri: String,
    /// How long the camera had been away when the frame was made.
    pub outage_ms: u64,
}

/// Marks a frame as made while the camera was away.
pub fn add_no_signal(buffer: &mut gst::BufferRef, n: &NoSignal) {
    register();
    let mut meta =
        CustomMeta::add(buffer, NO_SIGNAL_META).expect("TritonNoSignalMeta is registered");
    let s = meta.mut_structure();
    s.set("uri", n.uri.as_str());
    s.set("outage-ms", n.outage_ms);
}

/// The no-signal marker, if the frame has one.
pub fn no_signal(buffer: &gst::BufferRef) -> Option<NoSignal> {
    let meta = CustomMeta::from_buffer(buffer, NO_SIGNAL_META).ok()?;
    let s = meta.structure();
    Some(NoSignal {
        uri: s.get("uri").unwrap_or_default(),
        outage_ms: s.get("outage-ms").unwrap_or_default(),
    })
}

/// One detection as carried by a `GstVideoRegionOfInterestMeta` with a `detection` param.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub label: String,
    pub class_id: i32,
    pub confidence: f64,
    /// Frame pixels x1, y1, x2, y2.
    pub bbox: [f64; 4],
}

/// Adds one ROI meta per detection (`roi_type` = label; a `detection` param with `label-id`,
/// `label`, `confidence` and normalised `x-min`, `y-min`, `x-max`, `y-max`).
pub fn add_detection(buffer: &mut gst::BufferRef, d: &Detection, frame_w: u32, frame_h: u32) {
    let [x1, y1, x2, y2] = d.bbox;
    let (x, y) = (x1.round().max(0.0) as u32, y1.round().max(0.0) as u32);
    let w = (x2.round() as u32).saturating_sub(x);
    let h = (y2.round() as u32).saturating_sub(y);
    let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, &d.label, (x, y, w, h));
    let (fw, fh) = (frame_w.max(1) as f64, frame_h.max(1) as f64);
    roi.add_param(
        gst::Structure::builder("detection")
            .field("label-id", d.class_id)
            .field("label", d.label.as_str())
            .field("confidence", d.confidence)
            .field("x-min", x1 / fw)
            .field("y-min", y1 / fh)
            .field("x-max", x2 / fw)
            .field("y-max", y2 / fh)
            .build(),
    );
}

/// Attaches an analysed frame's detections: one ROI meta each ([`add_detection`]) and, with the
/// `v1_24` feature, one `GstAnalyticsRelationMeta` holding them all, empty when there are none
/// ([`crate::analytics`]). An error names the metadata that could not be added (the ROI metas are
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
    crate::analytics::add_detections(buffer, dets)
        .map_err(|e| format!("GstAnalyticsRelationMeta: {e}"))?;
    Ok(())
}

/// Reads every detection of a buffer: its ROI metas (frame size needed to turn the normalised
/// coordinates back into sub-pixel boxes; ROIs without a `detection` param use their integer box)
/// or, with the `v1_24` feature and where the frame has no ROI meta, the object-detection mtds of
/// its `GstAnalyticsRelationMeta` (made by another element; ours carry both, read once).
pub fn detections(buffer: &gst::BufferRef, frame_w: u32, frame_h: u32) -> Vec<Detection> {
    let rois = roi_detections(buffer, frame_w, frame_h);
    #[cfg(feature = "v1_24")]
    if rois.is_empty() {
        return crate::analytics::detections(buffer);
    }
    rois
}

fn roi_detections(buffer: &gst::BufferRef, frame_w: u32, frame_h: u32) -> Vec<Detection> {
    let (fw, fh) = (frame_w as f64, frame_h as f64);
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| {
            let (x, y, w, h) = roi.rect();
            let mut d = Detection {
                label: roi.roi_type().to_string(),
                class_id: -1,
                confidence: 0.0,
                bbox: [x as f64, y as f64, (x + w) as f64, (y + h) as f64],
            };
            if let Some(p) = roi.param("detection") {
                d.class_id = p.get("label-id").unwrap_or(-1);
                d.confidence = p.get("confidence").unwrap_or(0.0);
                if let (Ok(a), Ok(b), Ok(c), Ok(e)) = (
                    p.get::<f64>("x-min"),
                    p.get::<f64>("y-min"),
                    p.get::<f64>("x-max"),
                    p.get::<f64>("y-max"),
                ) {
                    d.bbox = [a * fw, b * fh, c * fw, e * fh];
                }
            }
            d
        })
        .collect()
}

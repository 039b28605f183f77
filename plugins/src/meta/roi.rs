//! Detections as `GstVideoRegionOfInterestMeta`s, each with a `detection` param (label, class id,
//! confidence, normalised sub-pixel box) and, once `dettrack` followed it, a `tracking` param
//! (`id`: uint64, the track; `predicted`: boolean, the box is the tracker's prediction on a frame
//! without inference): what every GStreamer version and binding can read.

use super::{Detection, TrackTag};

/// Name of the ROI param a classifier's answer adds (`tritoninfer decoder=classify`).
pub const CLASSIFICATION_PARAM: &str = "classification";

/// A second model's answer about one object: which model, its class and how sure it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub model: String,
    pub label: String,
    pub class_id: i32,
    pub confidence: f64,
    /// The answer was given on an earlier frame to the same track (`reclassify-interval`), not
    /// asked for this one.
    pub cached: bool,
}

/// Adds each `(i, attribute)` to the frame's `i`-th ROI meta (in the order [`detections`] reads
/// them), as a `classification` param: `model`, `label`, `label-id`, `confidence`, and `cached`
/// (true) for an answer kept from an earlier frame. An object can carry the answers of several
/// models.
pub fn add_attributes(buffer: &mut gst::BufferRef, attrs: &[(usize, Attribute)]) {
    for (i, mut roi) in buffer
        .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
        .enumerate()
    {
        for (_, a) in attrs.iter().filter(|(k, _)| *k == i) {
            let mut p = gst::Structure::builder(CLASSIFICATION_PARAM)
                .field("model", a.model.as_str())
                .field("label", a.label.as_str())
                .field("label-id", a.class_id)
                .field("confidence", a.confidence);
            if a.cached {
                p = p.field("cached", true);
            }
            roi.add_param(p.build());
        }
    }
}

/// The classifiers' answers on each of the frame's ROI metas, in [`detections`] order.
pub fn attributes(buffer: &gst::BufferRef) -> Vec<Vec<Attribute>> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| {
            roi.params()
                .filter(|p| p.name() == CLASSIFICATION_PARAM)
                .map(|p| Attribute {
                    model: p.get("model").unwrap_or_default(),
                    label: p.get("label").unwrap_or_default(),
                    class_id: p.get("label-id").unwrap_or(-1),
                    confidence: p.get("confidence").unwrap_or(0.0),
                    cached: p.get("cached").unwrap_or(false),
                })
                .collect()
        })
        .collect()
}

/// Name of the ROI param `dettrack` adds.
pub const TRACKING_PARAM: &str = "tracking";

fn tracking_param(t: TrackTag) -> gst::Structure {
    gst::Structure::builder(TRACKING_PARAM)
        .field("id", t.id)
        .field("predicted", t.predicted)
        .build()
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
    if let Some(t) = d.track {
        roi.add_param(tracking_param(t));
    }
}

/// Gives the frame's ROI metas their tracks, in the order [`detections`] reads them (`None`:
/// left as it is). A ROI that has a `tracking` param already keeps it.
pub fn tag(buffer: &mut gst::BufferRef, tags: &[Option<TrackTag>]) {
    for (mut roi, t) in buffer
        .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
        .zip(tags)
    {
        if let Some(t) = t
            && roi.param(TRACKING_PARAM).is_none()
        {
            roi.add_param(tracking_param(*t));
        }
    }
}

/// The track of each of the frame's ROI metas (its `tracking` param's id), in [`detections`]
/// order.
pub fn track_ids(buffer: &gst::BufferRef) -> Vec<Option<u64>> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| {
            roi.param(TRACKING_PARAM)
                .and_then(|p| p.get::<u64>("id").ok())
        })
        .collect()
}

/// The detections of a frame's ROI metas (frame size needed to turn the normalised coordinates
/// back into sub-pixel boxes; ROIs without a `detection` param use their integer box).
pub fn detections(buffer: &gst::BufferRef, frame_w: u32, frame_h: u32) -> Vec<Detection> {
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
                track: None,
            };
            if let Some(p) = roi.param(TRACKING_PARAM)
                && let Ok(id) = p.get::<u64>("id")
            {
                d.track = Some(TrackTag {
                    id,
                    predicted: p.get("predicted").unwrap_or(false),
                });
            }
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

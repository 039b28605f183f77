//! `TritonResultMeta` (what `tritoninfer` made of a frame) and `TritonNoSignalMeta` (a frame
//! `tritoncamerasrc` made while its camera was away).

use gst::meta::CustomMeta;

use super::{NO_SIGNAL_META, RESULT_META, register};

/// Per-frame result of `tritoninfer`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultMeta {
    pub status: String,
    pub error: String,
    pub latency_ms: f64,
    /// Time spent decoding the answer into detections (`decode-ms`).
    pub decode_ms: f64,
    pub model: String,
    pub model_version: String,
    pub request_id: String,
    pub frame: u64,
    pub detections: u32,
    pub labels: Vec<String>,
    /// Set by `dettrack`: the track of each of the frame's ROI metas, in order (-1: none).
    pub track_ids: Vec<i64>,
    /// Set by `dettrack`: how many of them are predicted boxes (a frame without inference).
    pub predicted: u32,
    /// Set by a `tritoninfer decoder=classify` after it.
    pub classifier: Option<Classified>,
}

/// What a classifier stage made of a frame's objects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classified {
    pub model: String,
    /// "ok", "error", or "no-objects" (nothing to classify, no request).
    pub status: String,
    pub error: String,
    /// Objects sent, and objects that got a class (over `conf-threshold`).
    pub sent: u32,
    pub classified: u32,
    /// Objects that carry an earlier frame's answer for their track (`reclassify-interval`).
    pub cached: u32,
}

/// Attaches the result meta.
pub fn add_result_meta(buffer: &mut gst::BufferRef, r: &ResultMeta) {
    register();
    let mut meta = CustomMeta::add(buffer, RESULT_META).expect("TritonResultMeta is registered");
    let s = meta.mut_structure();
    s.set("status", r.status.as_str());
    s.set("error", r.error.as_str());
    s.set("latency-ms", r.latency_ms);
    s.set("decode-ms", r.decode_ms);
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
        decode_ms: s.get("decode-ms").unwrap_or_default(),
        model: s.get("model").unwrap_or_default(),
        model_version: s.get("model-version").unwrap_or_default(),
        request_id: s.get("request-id").unwrap_or_default(),
        frame: s.get("frame").unwrap_or_default(),
        detections: s.get("detections").unwrap_or_default(),
        labels: s
            .get::<gst::Array>("labels")
            .map(|a| a.iter().filter_map(|v| v.get::<String>().ok()).collect())
            .unwrap_or_default(),
        track_ids: s
            .get::<gst::Array>("track-ids")
            .map(|a| a.iter().filter_map(|v| v.get::<i64>().ok()).collect())
            .unwrap_or_default(),
        predicted: s.get("predicted").unwrap_or_default(),
        classifier: s
            .get::<String>("classifier-status")
            .ok()
            .map(|status| Classified {
                model: s.get("classifier-model").unwrap_or_default(),
                status,
                error: s.get("classifier-error").unwrap_or_default(),
                sent: s.get("classifier-sent").unwrap_or_default(),
                classified: s.get("classified").unwrap_or_default(),
                cached: s.get("classifier-cached").unwrap_or_default(),
            }),
    })
}

/// Records a classifier stage's work in the frame's result meta (`classifier-model`,
/// `classifier-status`, `classifier-error`, `classifier-sent`, `classified`, `classifier-cached`),
/// adding a result
/// meta with that status where the frame has none (no detector before the classifier).
pub fn set_classified(buffer: &mut gst::BufferRef, c: &Classified, frame: u64) {
    if CustomMeta::from_buffer(buffer, RESULT_META).is_err() {
        add_result_meta(
            buffer,
            &ResultMeta {
                status: c.status.clone(),
                error: c.error.clone(),
                model: c.model.clone(),
                frame,
                ..Default::default()
            },
        );
    }
    let mut meta = CustomMeta::from_mut_buffer(buffer, RESULT_META).expect("added above");
    let s = meta.mut_structure();
    s.set("classifier-model", c.model.as_str());
    s.set("classifier-status", c.status.as_str());
    s.set("classifier-error", c.error.as_str());
    s.set("classifier-sent", c.sent);
    s.set("classified", c.classified);
    s.set("classifier-cached", c.cached);
}

/// Records `dettrack`'s work in the frame's result meta (`track-ids`: int64 per ROI meta, -1
/// where none; `predicted`: uint). False when the frame has no result meta.
pub fn set_tracks(buffer: &mut gst::BufferRef, ids: &[Option<u64>], predicted: u32) -> bool {
    let Ok(mut meta) = CustomMeta::from_mut_buffer(buffer, RESULT_META) else {
        return false;
    };
    let s = meta.mut_structure();
    s.set(
        "track-ids",
        gst::Array::new(ids.iter().map(|i| i.map_or(-1, |i| i as i64))),
    );
    s.set("predicted", predicted);
    true
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

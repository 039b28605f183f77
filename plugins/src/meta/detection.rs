//! The one detection type every metadata writer and reader shares: a leaf with no GStreamer
//! metadata API in it.

/// One detection in frame pixels, as the ROI metas and the analytics metas carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub label: String,
    pub class_id: i32,
    pub confidence: f64,
    /// Frame pixels x1, y1, x2, y2.
    pub bbox: [f64; 4],
    /// The object's track, once `dettrack` gave it one.
    pub track: Option<TrackTag>,
}

/// What `dettrack` says about a detection: the track's id (the same on every frame while the
/// object is followed) and whether the box is the tracker's prediction (a frame without
/// inference) rather than a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackTag {
    pub id: u64,
    pub predicted: bool,
}

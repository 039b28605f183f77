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
}

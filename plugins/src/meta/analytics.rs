//! GStreamer ≥ 1.24 analytics metadata (cargo feature `v1_24`): the `GstAnalyticsRelationMeta`
//! that upstream `objectdetectionoverlay`, the gst-plugins-rs analytics elements and DL Streamer
//! read. One relation meta per frame holds, per detection, an object-detection mtd (box in frame
//! pixels, confidence, class quark = label) and a classification mtd (label, confidence) that the
//! object-detection mtd `RELATE_TO`s. Written alongside the ROI metas, never instead of them.
//! `dettrack` adds a tracking mtd per tracked detection ([`add_tracks`]), and one marked lost,
//! related to no object, for each track lost on that frame ([`add_lost`]); a classifier
//! (`tritoninfer decoder=classify`) a second classification mtd per object it answered for
//! ([`add_attributes`]).

use gst::glib;
use gst_analytics::prelude::*;
use gst_analytics::{
    AnalyticsClassificationMtd, AnalyticsODMtd, AnalyticsRelationMeta,
    AnalyticsRelationMetaInitParams, AnalyticsTrackingMtd, RelTypes,
};

use super::{Attribute, Detection, TrackTag};

/// One detection's track for [`add_tracks`]: id, and the stream times it was first and last
/// seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub id: u64,
    pub first: gst::ClockTime,
    pub last: gst::ClockTime,
}

/// Adds a tracking mtd (`GstAnalyticsTrackingMtd`: id, first seen, last seen, not lost) for each
/// tracked detection to the frame's relation meta, which its object-detection mtd `RELATE_TO`s
/// (as upstream's trackers relate them). `tracks` follows the object-detection mtds in order (the
/// order they were written in, the ROI metas' order). A frame without a relation meta gets none.
pub fn add_tracks(
    buffer: &mut gst::BufferRef,
    tracks: &[Option<Seen>],
) -> Result<(), glib::BoolError> {
    let ods: Vec<u32> = match buffer.meta::<AnalyticsRelationMeta>() {
        Some(meta) => meta.iter::<AnalyticsODMtd>().map(|od| od.id()).collect(),
        None => return Ok(()),
    };
    for (od, t) in ods.into_iter().zip(tracks) {
        let Some(t) = t else { continue };
        let Some(mut meta) = buffer.meta_mut::<AnalyticsRelationMeta>() else {
            return Ok(());
        };
        let trk = meta.add_tracking_mtd(t.id, t.first)?.id();
        meta.set_relation(RelTypes::RELATE_TO, od, trk)?;
        if let Some(mut m) = meta.mtd_mut::<AnalyticsTrackingMtd>(trk) {
            m.update_last_seen(t.last)?;
        }
    }
    Ok(())
}

/// Adds a tracking mtd marked lost (`gst_analytics_tracking_mtd_set_lost`) for each track that
/// was followed until the previous analysed frame and is not matched on this one: its id, first
/// and last seen; related to no object-detection mtd (its object is not in the frame). Told once,
/// on the frame it was lost; a frame without a relation meta gets one.
pub fn add_lost(buffer: &mut gst::BufferRef, lost: &[Seen]) -> Result<(), glib::BoolError> {
    if lost.is_empty() {
        return Ok(());
    }
    if buffer.meta::<AnalyticsRelationMeta>().is_none() {
        let params = AnalyticsRelationMetaInitParams::new(lost.len(), 64 * lost.len());
        AnalyticsRelationMeta::add_full(buffer, &params);
    }
    for t in lost {
        let Some(mut meta) = buffer.meta_mut::<AnalyticsRelationMeta>() else {
            return Ok(());
        };
        let trk = meta.add_tracking_mtd(t.id, t.first)?.id();
        if let Some(mut m) = meta.mtd_mut::<AnalyticsTrackingMtd>(trk) {
            m.update_last_seen(t.last)?;
            m.set_lost()?;
        }
    }
    Ok(())
}

/// Adds a classification mtd (the second model's label as the class quark, its confidence) for
/// each `(i, attribute)`, which the frame's `i`-th object-detection mtd `RELATE_TO`s, next to the
/// detector's own. Only where the object-detection mtds are the objects the indices count: the
/// frame's ROI metas in the same number (both written by `tritoninfer`), or no ROI metas at all
/// (a relation meta from another producer, read in its order). A frame without a relation meta
/// gets none.
pub fn add_attributes(
    buffer: &mut gst::BufferRef,
    attrs: &[(usize, Attribute)],
) -> Result<(), glib::BoolError> {
    let rois = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .count();
    let ods: Vec<u32> = match buffer.meta::<AnalyticsRelationMeta>() {
        Some(meta) => meta.iter::<AnalyticsODMtd>().map(|od| od.id()).collect(),
        None => return Ok(()),
    };
    if rois != 0 && rois != ods.len() {
        return Ok(());
    }
    let Some(mut meta) = buffer.meta_mut::<AnalyticsRelationMeta>() else {
        return Ok(());
    };
    for (i, a) in attrs {
        let Some(&od) = ods.get(*i) else { continue };
        let label = glib::Quark::from_str(a.label.as_str());
        let cls = meta.add_one_cls_mtd(a.confidence as f32, label)?.id();
        meta.set_relation(RelTypes::RELATE_TO, od, cls)?;
    }
    Ok(())
}

/// Adds one relation meta holding `dets` (frame pixels), also when `dets` is empty: a frame that
/// was analysed says so, and overlays that keep drawing the last boxes until a new relation meta
/// arrives (upstream `objectdetectionoverlay` does) clear them.
pub fn add_detections(
    buffer: &mut gst::BufferRef,
    dets: &[Detection],
) -> Result<(), glib::BoolError> {
    // Two mtds per detection; the relation matrix grows by itself, but sizing it avoids regrowth.
    let n = dets.len().max(1);
    let params = AnalyticsRelationMetaInitParams::new(2 * n, 64 * n);
    let mut meta = AnalyticsRelationMeta::add_full(buffer, &params);
    for d in dets {
        let label = glib::Quark::from_str(d.label.as_str());
        let [x1, y1, x2, y2] = d.bbox;
        let (x, y) = (x1.round(), y1.round());
        let (w, h) = ((x2.round() - x).max(0.0), (y2.round() - y).max(0.0));
        let conf = d.confidence as f32;
        let od = meta
            .add_od_mtd(label, x as i32, y as i32, w as i32, h as i32, conf)?
            .id();
        let cls = meta.add_one_cls_mtd(conf, label)?.id();
        meta.set_relation(RelTypes::RELATE_TO, od, cls)?;
    }
    Ok(())
}

/// Reads the object-detection mtds of every relation meta of a buffer. The label is the object
/// type's quark (or, where that is unset, the first class of a related classification mtd); the
/// class id is unknown to this metadata and reported as -1.
pub fn detections(buffer: &gst::BufferRef) -> Vec<Detection> {
    let mut out = Vec::new();
    for meta in buffer.iter_meta::<AnalyticsRelationMeta>() {
        for od in meta.iter::<AnalyticsODMtd>() {
            let Ok(loc) = od.location() else { continue };
            let label = od
                .obj_type()
                .or_else(|| {
                    meta.iter_direct_related::<AnalyticsClassificationMtd>(
                        od.id(),
                        RelTypes::RELATE_TO,
                    )
                    .find(|c| !c.is_empty())
                    .map(|c| c.quark(0))
                })
                .map(|q| q.as_str().to_string())
                .unwrap_or_default();
            let (x, y) = (loc.x as f64, loc.y as f64);
            // A tracker's id (ours, or upstream's ioutracker), where one relates to the box.
            let track = meta
                .iter_direct_related::<AnalyticsTrackingMtd>(od.id(), RelTypes::RELATE_TO)
                .next()
                .map(|t| TrackTag {
                    id: t.info().0,
                    predicted: false,
                });
            out.push(Detection {
                label,
                class_id: -1,
                confidence: od.confidence_level() as f64,
                bbox: [x, y, x + loc.w as f64, y + loc.h as f64],
                track,
            });
        }
    }
    out
}

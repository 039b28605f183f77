//! GStreamer ≥ 1.24 analytics metadata (feature `v1_24`; run by scripts/test-gst126.sh on
//! GStreamer 1.26): what we write is read back through the `gstreamer-analytics` API itself, and
//! frames that carry only a relation meta (made here as another element would) are drawn by
//! detoverlay and counted by detjsonsink.

mod common;

use common::init;
use gst::prelude::*;
use gst_analytics::prelude::*;
use gst_analytics::{AnalyticsClassificationMtd, AnalyticsODMtd, AnalyticsRelationMeta, RelTypes};
use gsttriton::meta::{self, Detection};
use gsttriton::overlay::draw::class_colour;

fn det(label: &str, class_id: i32, confidence: f64, bbox: [f64; 4]) -> Detection {
    Detection {
        label: label.into(),
        class_id,
        confidence,
        bbox,
        track: None,
    }
}

fn rgb_caps(w: i32, h: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", w)
        .field("height", h)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

/// A grey RGB frame (every byte 128), `w` a multiple of 4 so rows are not padded.
fn grey(w: usize, h: usize) -> gst::Buffer {
    let mut b = gst::Buffer::with_size(w * h * 3).unwrap();
    b.get_mut().unwrap().map_writable().unwrap().fill(128);
    b
}

#[test]
fn add_detections_writes_one_od_mtd_and_a_related_cls_mtd_per_detection() {
    init();
    let dets = [
        det("red", 0, 0.91, [10.4, 20.6, 50.2, 80.5]),
        det("blue", 2, 0.55, [100.0, 5.0, 140.0, 30.0]),
        det("person", 0, 0.3, [0.0, 0.0, 7.0, 9.0]),
    ];
    let mut buf = gst::Buffer::with_size(16).unwrap();
    meta::add_detections(buf.get_mut().unwrap(), &dets, 640, 480).unwrap();

    // The ROI metas are still there, one per detection.
    assert_eq!(
        buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .count(),
        3
    );
    let metas: Vec<_> = buf.iter_meta::<AnalyticsRelationMeta>().collect();
    assert_eq!(metas.len(), 1, "one relation meta per frame");
    let rmeta = &metas[0];
    let ods: Vec<_> = rmeta.iter::<AnalyticsODMtd>().collect();
    assert_eq!(ods.len(), dets.len());
    for (od, d) in ods.iter().zip(&dets) {
        let loc = od.location().unwrap();
        let [x1, y1, x2, y2] = d.bbox.map(|v| v.round() as i32);
        assert_eq!(
            (loc.x, loc.y, loc.w, loc.h),
            (x1, y1, x2 - x1, y2 - y1),
            "{}",
            d.label
        );
        assert_eq!(od.obj_type().unwrap().as_str(), d.label.as_str());
        assert!((od.confidence_level() - d.confidence as f32).abs() < 1e-6);
        let cls: Vec<_> = rmeta
            .iter_direct_related::<AnalyticsClassificationMtd>(od.id(), RelTypes::RELATE_TO)
            .collect();
        assert_eq!(cls.len(), 1, "{}: one related classification", d.label);
        assert_eq!(cls[0].len(), 1);
        assert_eq!(cls[0].quark(0).as_str(), d.label.as_str());
        assert!((cls[0].level(0) - d.confidence as f32).abs() < 1e-6);
        assert!(
            rmeta
                .relation(od.id(), cls[0].id())
                .contains(RelTypes::RELATE_TO)
        );
    }
    // Our reader prefers the sub-pixel ROI boxes when both are present (no double count).
    let read = meta::detections(&buf, 640, 480);
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].bbox, dets[0].bbox);
    assert_eq!(read[0].class_id, 0);

    // An analysed frame without detections still gets its (empty) relation meta.
    let mut empty = gst::Buffer::with_size(16).unwrap();
    meta::add_detections(empty.get_mut().unwrap(), &[], 640, 480).unwrap();
    let metas: Vec<_> = empty.iter_meta::<AnalyticsRelationMeta>().collect();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].iter::<AnalyticsODMtd>().count(), 0);
    assert!(meta::detections(&empty, 640, 480).is_empty());
}

/// Adds a relation meta the way another producer would (no ROI metas, no class ids).
fn add_foreign(buf: &mut gst::BufferRef, boxes: &[(&str, f32, [i32; 4])]) {
    let mut m = AnalyticsRelationMeta::add(buf);
    for &(label, conf, [x, y, w, h]) in boxes {
        m.add_od_mtd(gst::glib::Quark::from_str(label), x, y, w, h, conf)
            .unwrap();
    }
}

#[test]
fn detoverlay_and_detjsonsink_read_frames_that_carry_only_analytics_meta() {
    init();
    let (w, h) = (160usize, 120usize);
    let boxes = [
        ("car", 0.8f32, [20, 30, 60, 50]),
        ("dog", 0.6, [100, 10, 40, 30]),
    ];

    // The reader: labels, confidences and boxes come back; class ids are unknown (-1).
    let mut buf = grey(w, h);
    add_foreign(buf.get_mut().unwrap(), &boxes);
    let read = meta::detections(&buf, w as u32, h as u32);
    assert_eq!(read.len(), 2);
    for (d, (label, conf, [x, y, bw, bh])) in read.iter().zip(boxes) {
        assert_eq!(d.label, label);
        assert_eq!(d.class_id, -1);
        assert!((d.confidence - conf as f64).abs() < 1e-6);
        assert_eq!(
            d.bbox,
            [x as f64, y as f64, (x + bw) as f64, (y + bh) as f64]
        );
    }

    // detoverlay draws each box's edges (colour chosen from the label) and leaves the rest.
    let mut hns = gst_check::Harness::new("detoverlay");
    hns.element().unwrap().set_property("show-labels", false);
    hns.element().unwrap().set_property("thickness", 2u32);
    hns.set_src_caps(rgb_caps(w as i32, h as i32));
    let out = hns.push_and_pull(buf).unwrap();
    let map = out.map_readable().unwrap();
    let px = |x: i32, y: i32| {
        let i = (y as usize * w + x as usize) * 3;
        [map[i], map[i + 1], map[i + 2]]
    };
    for (label, _, [x, y, bw, bh]) in boxes {
        let c = class_colour(label.bytes().map(|b| b as i64).sum());
        for (ex, ey) in [
            (x + bw / 2, y),
            (x + bw / 2, y + bh - 1),
            (x, y + bh / 2),
            (x + bw - 1, y + bh / 2),
        ] {
            assert_eq!(px(ex, ey), c, "{label}: edge ({ex},{ey})");
        }
        assert_eq!(px(x + bw / 2, y + bh / 2), [128; 3], "{label}: centre");
        assert_eq!(px(x + bw + 4, y + bh / 2), [128; 3], "{label}: outside");
    }

    // detjsonsink counts them per label.
    let dir = std::env::temp_dir().join(format!("analytics-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("counts.jsonl");
    let mut sink =
        gst_check::Harness::new_parse(&format!("detjsonsink location={}", path.display()));
    sink.set_src_caps(rgb_caps(w as i32, h as i32));
    let mut buf = grey(w, h);
    add_foreign(buf.get_mut().unwrap(), &boxes);
    assert_eq!(sink.push(buf), Ok(gst::FlowSuccess::Ok));
    assert!(sink.push_event(gst::event::Eos::new()));
    let text = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["counts"]["car"], 1, "{line}");
    assert_eq!(line["counts"]["dog"], 1, "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// dettrack adds a `GstAnalyticsTrackingMtd` per tracked detection, related from its
/// object-detection mtd: the same id on every frame, first seen at the first frame's time, last
/// seen now, not lost; our readers take the id from it on frames that carry only analytics
/// metadata.
#[test]
fn dettrack_relates_a_tracking_mtd_to_each_tracked_object() {
    use gst_analytics::AnalyticsTrackingMtd;
    init();
    let mut h = gst_check::Harness::new("dettrack");
    h.set_src_caps(rgb_caps(320, 240));
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let x = 10.0 + 8.0 * i as f64;
        let dets = [
            det("red", 0, 0.9, [x, 20.0, x + 40.0, 80.0]),
            det("blue", 2, 0.9, [200.0, 100.0 + x, 240.0, 160.0 + x]),
        ];
        let mut buf = grey(320, 240);
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(100 * i));
        meta::add_detections(buf.get_mut().unwrap(), &dets, 320, 240).unwrap();
        let out = h.push_and_pull(buf).unwrap();
        let rmeta = out.meta::<AnalyticsRelationMeta>().unwrap();
        let mut frame_ids = Vec::new();
        for od in rmeta.iter::<AnalyticsODMtd>() {
            let trk: Vec<_> = rmeta
                .iter_direct_related::<AnalyticsTrackingMtd>(od.id(), RelTypes::RELATE_TO)
                .collect();
            assert_eq!(trk.len(), 1, "frame {i}: one tracking mtd per object");
            let (id, first, last, lost) = trk[0].info();
            assert_eq!(first, gst::ClockTime::ZERO, "frame {i}");
            assert_eq!(last, gst::ClockTime::from_mseconds(100 * i), "frame {i}");
            assert!(!lost);
            frame_ids.push(id);
        }
        assert_ne!(frame_ids[0], frame_ids[1]);
        ids.push(frame_ids);
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");

    // Blue is not detected on the next frame: its track is lost now, told once by a tracking
    // mtd marked lost (its id, first and last seen), related to no object; red goes on.
    let mut lost_on = |i: u64, dets: &[Detection]| {
        let mut buf = grey(320, 240);
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(100 * i));
        meta::add_detections(buf.get_mut().unwrap(), dets, 320, 240).unwrap();
        let out = h.push_and_pull(buf).unwrap();
        let rmeta = out.meta::<AnalyticsRelationMeta>().unwrap();
        let ods: Vec<u32> = rmeta.iter::<AnalyticsODMtd>().map(|od| od.id()).collect();
        rmeta
            .iter::<AnalyticsTrackingMtd>()
            .filter(|t| t.info().3)
            .map(|t| {
                let related = ods.iter().any(|&od| {
                    rmeta
                        .iter_direct_related::<AnalyticsTrackingMtd>(od, RelTypes::ANY)
                        .any(|r| r.id() == t.id())
                });
                (t.info(), related)
            })
            .collect::<Vec<_>>()
    };
    let red = |i: u64| {
        det(
            "red",
            0,
            0.9,
            [10.0 + 8.0 * i as f64, 20.0, 50.0 + 8.0 * i as f64, 80.0],
        )
    };
    let lost = lost_on(5, &[red(5)]);
    assert_eq!(
        lost,
        [(
            (
                ids[0][1],
                gst::ClockTime::ZERO,
                gst::ClockTime::from_mseconds(400),
                true
            ),
            false
        )],
        "blue lost on frame 5"
    );
    assert!(lost_on(6, &[red(6)]).is_empty(), "a loss is told once");

    // A frame with only the relation meta (no ROI meta): the readers take the tracking mtd's id.
    let mut buf = gst::Buffer::with_size(16).unwrap();
    {
        let b = buf.get_mut().unwrap();
        let mut m = AnalyticsRelationMeta::add(b);
        let od = m
            .add_od_mtd(gst::glib::Quark::from_str("car"), 1, 2, 30, 40, 0.8)
            .unwrap()
            .id();
        let trk = m.add_tracking_mtd(42, gst::ClockTime::ZERO).unwrap().id();
        m.set_relation(RelTypes::RELATE_TO, od, trk).unwrap();
    }
    let read = meta::detections(&buf, 320, 240);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].track.map(|t| t.id), Some(42));
}

/// The classification mtds related to an object-detection mtd: (class quark, level) each.
fn related_classes(rmeta: &gst::MetaRef<'_, AnalyticsRelationMeta>, od: u32) -> Vec<(String, f32)> {
    rmeta
        .iter_direct_related::<AnalyticsClassificationMtd>(od, RelTypes::RELATE_TO)
        .map(|c| (c.quark(0).as_str().to_string(), c.level(0)))
        .collect()
}

fn colour(label: &str, confidence: f64) -> meta::Attribute {
    meta::Attribute {
        model: "shapes_color".into(),
        label: label.into(),
        class_id: 0,
        confidence,
        cached: false,
    }
}

#[test]
fn a_classifier_answer_is_a_second_cls_mtd_related_to_its_objects_od_mtd() {
    init();
    let dets = [
        det("circle", 0, 0.9, [10.0, 20.0, 50.0, 80.0]),
        det("square", 1, 0.8, [100.0, 5.0, 140.0, 30.0]),
        det("circle", 0, 0.7, [200.0, 5.0, 240.0, 30.0]),
    ];
    let mut buf = gst::Buffer::with_size(16).unwrap();
    let b = buf.get_mut().unwrap();
    meta::add_detections(b, &dets, 640, 480).unwrap();
    // The second model answered for objects 0 and 2 (object 1 was of a filtered class).
    meta::add_attributes(b, &[(2, colour("blue", 0.75)), (0, colour("red", 0.5))]).unwrap();

    let rmeta = buf.meta::<AnalyticsRelationMeta>().unwrap();
    let ods: Vec<_> = rmeta.iter::<AnalyticsODMtd>().collect();
    assert_eq!(
        related_classes(&rmeta, ods[0].id()),
        [("circle".to_string(), 0.9), ("red".to_string(), 0.5)]
    );
    assert_eq!(
        related_classes(&rmeta, ods[1].id()),
        [("square".to_string(), 0.8)]
    );
    assert_eq!(
        related_classes(&rmeta, ods[2].id()),
        [("circle".to_string(), 0.7), ("blue".to_string(), 0.75)]
    );
    // The ROI metas carry the same answers as params.
    let attrs = meta::attributes(&buf);
    assert_eq!(attrs[0][0].label, "red");
    assert!(attrs[1].is_empty());
    assert_eq!(attrs[2][0].label, "blue");
    // The objects' own class is still the detector's.
    let read = meta::detections(&buf, 640, 480);
    assert_eq!(read[0].label, "circle");

    // A frame whose relation meta came from another producer (no ROI metas): related in its order.
    let mut foreign = gst::Buffer::with_size(16).unwrap();
    let f = foreign.get_mut().unwrap();
    add_foreign(
        f,
        &[
            ("person", 0.6, [1, 2, 30, 40]),
            ("person", 0.5, [50, 2, 30, 40]),
        ],
    );
    meta::add_attributes(f, &[(1, colour("green", 0.25))]).unwrap();
    let rmeta = foreign.meta::<AnalyticsRelationMeta>().unwrap();
    let ods: Vec<_> = rmeta.iter::<AnalyticsODMtd>().collect();
    assert!(related_classes(&rmeta, ods[0].id()).is_empty());
    assert_eq!(
        related_classes(&rmeta, ods[1].id()),
        [("green".to_string(), 0.25)]
    );

    // ROI metas that are not the relation meta's objects (counts differ): nothing related.
    let mut mixed = gst::Buffer::with_size(16).unwrap();
    let m = mixed.get_mut().unwrap();
    add_foreign(m, &[("person", 0.6, [1, 2, 30, 40])]);
    meta::add_detection(m, &dets[0], 640, 480);
    meta::add_detection(m, &dets[1], 640, 480);
    meta::add_attributes(m, &[(0, colour("red", 0.5))]).unwrap();
    let rmeta = mixed.meta::<AnalyticsRelationMeta>().unwrap();
    let od = rmeta.iter::<AnalyticsODMtd>().next().unwrap();
    assert!(related_classes(&rmeta, od.id()).is_empty());
    assert_eq!(meta::attributes(&mixed)[0][0].label, "red");
}

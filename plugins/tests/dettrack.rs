//! dettrack on frames carrying detections made by the test: ids stay with their objects, frames
//! without inference carry predicted boxes, failed frames draw nothing, a flush starts again,
//! bad settings are refused by name; detjsonsink and detoverlay show the tracks.

mod common;

use common::init;
use gst::prelude::*;
use gsttriton::meta::{self, Detection, TrackTag};
use gsttriton::overlay::draw::class_colour;

const W: u32 = 320;
const H: u32 = 240;

fn caps() -> gst::Caps {
    common::rgb_caps(W, H)
}

fn det(label: &str, class_id: i32, bbox: [f64; 4]) -> Detection {
    Detection {
        label: label.into(),
        class_id,
        confidence: 0.9,
        bbox,
        track: None,
    }
}

/// Frame `i` as tritoninfer leaves it: a result meta with `status` and the detections.
fn frame(i: u64, status: &str, dets: &[Detection]) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size((W * H * 3) as usize).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.map_writable().unwrap().fill(128);
        b.set_pts(gst::ClockTime::from_mseconds(33 * i));
        meta::add_result_meta(
            b,
            &meta::ResultMeta {
                status: status.into(),
                frame: i,
                detections: dets.len() as u32,
                labels: dets.iter().map(|d| d.label.clone()).collect(),
                ..Default::default()
            },
        );
        for d in dets {
            meta::add_detection(b, d, W, H);
        }
    }
    buf
}

fn harness() -> gst_check::Harness {
    init();
    let mut h = gst_check::Harness::new("dettrack");
    h.set_src_caps(caps());
    h
}

/// Person A walks right in the top half, person B left in the bottom half, 6 px a frame.
fn walkers(i: u64) -> Vec<Detection> {
    let x = 6.0 * i as f64;
    vec![
        det("person", 0, [10.0 + x, 20.0, 50.0 + x, 100.0]),
        det("person", 0, [260.0 - x, 130.0, 300.0 - x, 210.0]),
    ]
}

fn ids(out: &gst::BufferRef) -> Vec<Option<TrackTag>> {
    meta::detections(out, W, H)
        .into_iter()
        .map(|d| d.track)
        .collect()
}

#[test]
fn each_object_keeps_its_track_id_from_frame_to_frame() {
    let mut h = harness();
    let mut first: Option<Vec<u64>> = None;
    for i in 0..30 {
        let out = h.push_and_pull(frame(i, "ok", &walkers(i))).unwrap();
        let tags = ids(&out);
        assert!(
            tags.iter().all(|t| t.is_some_and(|t| !t.predicted)),
            "frame {i}: {tags:?}"
        );
        let now: Vec<u64> = tags.iter().map(|t| t.unwrap().id).collect();
        assert_ne!(now[0], now[1], "frame {i}: two objects, one id");
        let r = meta::result_meta(&out).unwrap();
        assert_eq!(
            r.track_ids,
            now.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            "frame {i}: the result meta lists the ROI metas' tracks in order"
        );
        assert_eq!(r.predicted, 0);
        match &first {
            None => first = Some(now),
            Some(f) => assert_eq!(&now, f, "frame {i}: ids changed"),
        }
    }
}

#[test]
fn frames_without_inference_carry_each_track_predicted_box() {
    let mut h = harness();
    let mut id = None;
    for i in 0..36u64 {
        let truth = walkers(i);
        let inferred = i % 3 == 0;
        let buf = if inferred {
            frame(i, "ok", &truth)
        } else {
            frame(i, "skipped", &[])
        };
        let out = h.push_and_pull(buf).unwrap();
        let dets = meta::detections(&out, W, H);
        assert_eq!(dets.len(), 2, "frame {i}: {dets:?}");
        let a = dets
            .iter()
            .min_by(|p, q| p.bbox[1].total_cmp(&q.bbox[1]))
            .unwrap();
        let t = a.track.expect("a track");
        assert_eq!(t.predicted, !inferred, "frame {i}");
        assert_eq!(*id.get_or_insert(t.id), t.id, "frame {i}: id changed");
        assert_eq!(a.label, "person");
        assert_eq!(
            meta::result_meta(&out).unwrap().predicted,
            u32::from(!inferred) * 2
        );
        // Once the filter has seen the motion, the prediction follows the object.
        if i >= 12 {
            let off = a
                .bbox
                .iter()
                .zip(truth[0].bbox)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(
                off <= 3.0,
                "frame {i}: predicted box off by {off} px: {a:?}"
            );
        }
    }
}

#[test]
fn failed_frames_draw_nothing_and_the_tracks_survive_them() {
    let mut h = harness();
    let first = ids(&h.push_and_pull(frame(0, "ok", &walkers(0))).unwrap());
    for (i, status) in [(1, "error"), (2, "no-signal")] {
        let out = h.push_and_pull(frame(i, status, &[])).unwrap();
        assert!(meta::detections(&out, W, H).is_empty(), "{status}");
    }
    let after = ids(&h.push_and_pull(frame(3, "ok", &walkers(3))).unwrap());
    assert_eq!(after, first);
}

#[test]
fn a_flush_starts_new_tracks() {
    let mut h = harness();
    let before = ids(&h.push_and_pull(frame(0, "ok", &walkers(0))).unwrap());
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    let after = ids(&h.push_and_pull(frame(1, "ok", &walkers(1))).unwrap());
    let (b, a): (Vec<u64>, Vec<u64>) = (
        before.iter().map(|t| t.unwrap().id).collect(),
        after.iter().map(|t| t.unwrap().id).collect(),
    );
    assert!(
        a.iter().all(|x| !b.contains(x)),
        "ids kept across a flush: {b:?} then {a:?}"
    );
}

#[test]
fn per_class_keeps_classes_apart_and_can_be_turned_off() {
    for per_class in [true, false] {
        init();
        let mut h = gst_check::Harness::new_parse(&format!("dettrack per-class={per_class}"));
        h.set_src_caps(caps());
        let b = [40.0, 40.0, 100.0, 120.0];
        let one = ids(&h
            .push_and_pull(frame(0, "ok", &[det("cat", 1, b)]))
            .unwrap());
        // The same place, another class: a new object, unless classes are mixed.
        let two = ids(&h
            .push_and_pull(frame(1, "ok", &[det("dog", 2, b)]))
            .unwrap());
        assert_eq!(
            two[0].is_some_and(|t| Some(t) == one[0]),
            !per_class,
            "per-class={per_class}: {one:?} {two:?}"
        );
    }
}

#[test]
fn settings_that_cannot_work_together_are_refused_by_name() {
    init();
    for (name, value, other) in [
        ("low-threshold", 0.7f32, "high-threshold"),
        ("new-track-threshold", 0.3f32, "high-threshold"),
    ] {
        let e = gst::ElementFactory::make("dettrack")
            .property(name, value)
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        e.set_bus(Some(&bus));
        assert!(e.set_state(gst::State::Paused).is_err(), "{name}={value}");
        let msg = bus
            .iter()
            .find_map(|m| match m.view() {
                gst::MessageView::Error(err) => Some(err.error().to_string()),
                _ => None,
            })
            .expect("an error message");
        assert!(msg.contains(name) && msg.contains(other), "{msg}");
        e.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn detjsonsink_writes_track_ids_and_marks_predicted_boxes() {
    init();
    let dir = std::env::temp_dir().join(format!("dettrack-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame_counts.jsonl");
    let mut h = gst_check::Harness::new_parse(&format!(
        "dettrack ! detjsonsink location={}",
        path.display()
    ));
    h.set_src_caps(caps());
    for i in 0..6u64 {
        let buf = if i % 2 == 0 {
            frame(i, "ok", &walkers(i))
        } else {
            frame(i, "skipped", &[])
        };
        assert_eq!(h.push(buf), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let lines = common::json_lines(&path);
    assert_eq!(lines.len(), 6);
    let mut seen = std::collections::BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        let dets = l["detections"].as_array().unwrap();
        assert_eq!(dets.len(), 2, "{l}");
        for d in dets {
            seen.insert(d["track_id"].as_u64().expect("track_id"));
            assert_eq!(d.get("predicted").is_some(), i % 2 == 1, "{l}");
        }
        assert_eq!(l["counts"]["person"], 2, "{l}");
    }
    assert_eq!(seen.len(), 2, "two objects, two ids: {seen:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn detoverlay_gives_each_track_its_own_colour() {
    init();
    let mut h = gst_check::Harness::new_parse("detoverlay show-labels=false thickness=2");
    h.set_src_caps(caps());
    let mut dets = walkers(0);
    dets[0].track = Some(TrackTag {
        id: 4,
        predicted: false,
    });
    dets[1].track = Some(TrackTag {
        id: 7,
        predicted: false,
    });
    let out = h.push_and_pull(frame(0, "ok", &dets)).unwrap();
    let map = out.map_readable().unwrap();
    let px = |x: usize, y: usize| {
        let i = (y * W as usize + x) * 3;
        [map[i], map[i + 1], map[i + 2]]
    };
    // The left edge of each box, half way down: one class, two tracks, two colours.
    assert_eq!(px(10, 60), class_colour(4));
    assert_eq!(px(260, 170), class_colour(7));
    assert_ne!(class_colour(4), class_colour(7));
}

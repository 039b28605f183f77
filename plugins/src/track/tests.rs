//! The tracker on scripted scenes: ids that hold while objects move, cross and hide, low-score
//! boxes that keep a track alive, classes kept apart, and tracks forgotten after the buffer.

use super::*;

fn det(x: f32, y: f32, score: f32, class_id: i32) -> Detection {
    Detection {
        bbox: [x, y, x + 40.0, y + 80.0],
        score,
        class_id,
    }
}

#[test]
fn two_objects_crossing_keep_their_ids() {
    // A walks right, B walks left on a slightly lower line; they overlap in the middle frames.
    let mut t = Tracker::new(Params::default());
    let mut first = None;
    for f in 0..60 {
        let a = det(10.0 + 5.0 * f as f32, 100.0, 0.9, 0);
        let b = det(310.0 - 5.0 * f as f32, 110.0, 0.9, 0);
        let out = t.update(&[a, b]);
        let ids = (out.ids[0].unwrap(), out.ids[1].unwrap());
        assert_ne!(ids.0, ids.1, "frame {f}");
        match first {
            None => first = Some(ids),
            Some(want) => assert_eq!(ids, want, "frame {f}: an id switched"),
        }
    }
}

#[test]
fn a_low_score_box_keeps_a_track_and_a_short_gap_keeps_its_id() {
    let mut t = Tracker::new(Params::default());
    let id = t.update(&[det(100.0, 100.0, 0.9, 0)]).ids[0].unwrap();
    // Partly occluded: the detector is unsure (0.3), the second stage keeps the id.
    for f in 1..5 {
        let out = t.update(&[det(100.0 + 3.0 * f as f32, 100.0, 0.3, 0)]);
        assert_eq!(out.ids[0], Some(id), "frame {f}");
    }
    // Gone for 10 frames (lost, kept for 30), then back where it was heading.
    for _ in 0..10 {
        let out = t.update(&[]);
        assert!(
            out.tracks
                .iter()
                .any(|v| v.id == id && v.state == State::Lost)
        );
    }
    let out = t.update(&[det(100.0 + 3.0 * 15.0, 100.0, 0.9, 0)]);
    assert_eq!(out.ids[0], Some(id), "found again after the gap");
}

#[test]
fn a_low_score_box_alone_starts_no_track_and_a_new_one_waits_a_frame() {
    let mut t = Tracker::new(Params::default());
    t.update(&[det(0.0, 0.0, 0.9, 0)]);
    let out = t.update(&[det(0.0, 0.0, 0.9, 0), det(300.0, 0.0, 0.3, 0)]);
    assert_eq!(out.ids[1], None, "0.3 is below new-track");
    // A newcomer after the first frame is unconfirmed: no id until it is seen again.
    let out = t.update(&[det(0.0, 0.0, 0.9, 0), det(300.0, 200.0, 0.9, 0)]);
    assert_eq!(out.ids[1], None);
    let out = t.update(&[det(0.0, 0.0, 0.9, 0), det(302.0, 200.0, 0.9, 0)]);
    assert!(out.ids[1].is_some(), "confirmed on its second frame");
    assert_ne!(out.ids[1], out.ids[0]);
}

#[test]
fn classes_are_kept_apart_unless_told_otherwise() {
    for per_class in [true, false] {
        let mut t = Tracker::new(Params {
            per_class,
            ..Default::default()
        });
        let id = t.update(&[det(50.0, 50.0, 0.9, 0)]).ids[0];
        let out = t.update(&[det(51.0, 50.0, 0.9, 1)]);
        assert_eq!(out.ids[0] == id, !per_class, "per_class {per_class}");
    }
}

#[test]
fn a_lost_track_is_forgotten_after_the_buffer_scaled_by_the_frame_rate() {
    let params = Params {
        buffer: 30,
        frame_rate: 15.0,
        ..Default::default()
    };
    assert_eq!(params.max_lost(), 15);
    let mut t = Tracker::new(params);
    t.update(&[det(0.0, 0.0, 0.9, 0)]);
    for f in 1..=16 {
        let out = t.update(&[]);
        assert_eq!(out.tracks.len(), usize::from(f <= 15), "frame {f}");
    }
}

#[test]
fn frames_without_inference_carry_the_prediction() {
    let mut t = Tracker::new(Params::default());
    for f in 0..10 {
        t.update(&[det(100.0 + 4.0 * f as f32, 50.0, 0.9, 0)]);
    }
    let v = t.predict();
    assert_eq!(v.len(), 1);
    assert!((v[0].bbox[0] - 140.0).abs() < 1.5, "{:?}", v[0].bbox);
    assert_eq!(v[0].state, State::Tracked);
}

/// After a reset the tracks are gone, the first frame confirms new ones at once, and no id is
/// given twice.
#[test]
fn a_reset_forgets_the_tracks_but_not_the_ids_given() {
    let mut t = Tracker::new(Params::default());
    let d = |x: f32| Detection {
        bbox: [x, 10.0, x + 40.0, 90.0],
        score: 0.9,
        class_id: 0,
    };
    let before = t.update(&[d(10.0), d(200.0)]).ids;
    t.reset();
    let after = t.update(&[d(10.0), d(200.0)]).ids;
    assert!(after.iter().all(Option::is_some), "{after:?}");
    assert!(
        after.iter().all(|a| !before.contains(a)),
        "{before:?} {after:?}"
    );
    assert_eq!(t.update(&[d(12.0), d(202.0)]).ids, after);
}

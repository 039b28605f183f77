//! detcount on tracked detections made by the test: crossings with their direction and zone
//! entries reach the frame's meta, the bus and detjsonsink; bad rules are refused by name.

mod common;

use common::init;
use gst::prelude::*;
use gsttriton::count::{Direction, Event};
use gsttriton::meta::{self, Detection, TrackTag};

const W: u32 = 320;
const H: u32 = 240;

fn caps() -> gst::Caps {
    common::rgb_caps(W, H)
}

/// A tracked person whose box's bottom centre is at (`x`, `y`).
fn person(id: u64, x: f64, y: f64) -> Detection {
    Detection {
        label: "person".into(),
        class_id: 0,
        confidence: 0.9,
        bbox: [x - 10.0, y - 50.0, x + 10.0, y],
        track: Some(TrackTag {
            id,
            predicted: false,
        }),
    }
}

fn frame(i: u64, dets: &[Detection]) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size((W * H * 3) as usize).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(33 * i));
        for d in dets {
            meta::add_detection(b, d, W, H);
        }
    }
    buf
}

/// Person 1 walks down across the line at y = 120 and stays in the left half; person 2 walks up
/// across it in the right half, then moves into the left half.
fn scene(i: u64) -> Vec<Detection> {
    let y = 100.0 + 10.0 * i as f64;
    let x2 = if i < 4 { 240.0 } else { 100.0 };
    vec![person(1, 80.0, y), person(2, x2, 160.0 - 10.0 * i as f64)]
}

const RULES: &str = "detcount lines=\"door 0,120 320,120\" zones=\"left 0,0 160,0 160,240 0,240\"";

fn harness(desc: &str) -> (gst_check::Harness, gst::Bus) {
    init();
    let mut h = gst_check::Harness::new_parse(desc);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps(caps());
    (h, bus)
}

#[test]
fn crossings_and_zone_changes_reach_the_meta_and_the_bus() {
    let (mut h, bus) = harness(RULES);
    let mut events = Vec::new();
    let mut occupancy = Vec::new();
    for i in 0..6 {
        let out = h.push_and_pull(frame(i, &scene(i))).unwrap();
        let c = meta::count_meta(&out).expect("a count meta on every frame");
        events.extend(c.frame.events);
        occupancy.push(c.frame.occupancy[0].1);
        if i == 5 {
            assert_eq!(c.totals["door"][&Direction::In]["person"], 1);
            assert_eq!(c.totals["door"][&Direction::Out]["person"], 1);
        }
    }
    assert_eq!(occupancy, vec![1, 1, 1, 1, 2, 2]);
    let crossed: Vec<(u64, Direction)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Crossed {
                track_id,
                direction,
                ..
            } => Some((*track_id, *direction)),
            _ => None,
        })
        .collect();
    // Person 1 reaches the line on frame 2 (a point on the line is on its right: crossed); person 2
    // is on it on frame 4 and leaves it upwards on frame 5.
    assert_eq!(crossed, vec![(1, Direction::In), (2, Direction::Out)]);
    let entered: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Entered { track_id, .. } => Some(*track_id),
            _ => None,
        })
        .collect();
    assert_eq!(entered, vec![1, 2]);
    // The same events as element messages, in order.
    let posted: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e.structure().map(|s| {
                assert_eq!(s.name(), "triton-count");
                let what = s.get::<String>("event").unwrap();
                let id = s.get::<u64>("track-id").unwrap();
                match what.as_str() {
                    "crossed" => format!("{id} crossed {}", s.get::<String>("direction").unwrap()),
                    _ => format!("{id} {what} {}", s.get::<String>("zone").unwrap()),
                }
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        posted,
        vec![
            "1 entered left",
            "1 crossed in",
            "2 entered left",
            "2 crossed out"
        ]
    );
}

#[test]
fn untracked_detections_are_not_counted() {
    let (mut h, _bus) = harness(RULES);
    for i in 0..6 {
        let mut dets = scene(i);
        dets.iter_mut().for_each(|d| d.track = None);
        let out = h.push_and_pull(frame(i, &dets)).unwrap();
        let c = meta::count_meta(&out).unwrap();
        assert!(c.frame.events.is_empty() && c.frame.occupancy[0].1 == 0);
    }
}

#[test]
fn detjsonsink_writes_events_zones_and_line_totals() {
    let dir = std::env::temp_dir().join(format!("detcount-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame_counts.jsonl");
    let (mut h, _bus) = harness(&format!(
        "{RULES} ! detjsonsink location={}",
        path.display()
    ));
    for i in 0..6 {
        assert_eq!(h.push(frame(i, &scene(i))), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let lines = common::json_lines(&path);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["zones"]["left"], 1);
    assert_eq!(
        lines[0]["events"][0],
        serde_json::json!({"event": "entered", "zone": "left", "track_id": 1, "label": "person"})
    );
    let last = &lines[5];
    assert_eq!(last["lines"]["door"]["in"]["person"], 1, "{last}");
    assert_eq!(last["lines"]["door"]["out"]["person"], 1, "{last}");
    assert_eq!(last["zones"]["left"], 2, "{last}");
    let crossings: Vec<&serde_json::Value> = lines
        .iter()
        .flat_map(|l| l["events"].as_array().unwrap())
        .filter(|e| e["event"] == "crossed")
        .collect();
    assert_eq!(crossings.len(), 2);
    assert_eq!(crossings[0]["direction"], "in");
    assert_eq!(crossings[1]["direction"], "out");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The error message of a pipeline that failed to start with `desc`.
fn start_error(desc: &str) -> String {
    init();
    let p = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width={W},height={H} ! {desc} ! fakesink"
    ))
    .unwrap();
    let bus = p.bus().unwrap();
    let _ = p.set_state(gst::State::Playing);
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("an error or EOS");
    p.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => panic!("{desc}: ran to EOS"),
    }
}

#[test]
fn bad_rules_are_refused_naming_the_property_and_the_fault() {
    let e = start_error("detcount lines=\"door 10,10 10,10\"");
    assert!(e.contains("lines: line 'door': zero length"), "{e}");
    let e = start_error("detcount zones=\"q 0,0 100,100 100,0 0,100\"");
    assert!(e.contains("zones: zone 'q': self-intersecting"), "{e}");
    let e = start_error("detcount");
    assert!(e.contains("no rules"), "{e}");
    // Pixels outside the frame are known at caps time.
    let e = start_error("detcount lines=\"l 0,0 700,10\"");
    assert!(
        e.contains("line 'l'") && e.contains("outside the 320x240 frame"),
        "{e}"
    );
    let e = start_error("detcount rules-file=/nonexistent/rules.txt");
    assert!(e.contains("rules-file /nonexistent/rules.txt"), "{e}");
}

#[test]
fn a_rules_file_holds_lines_and_zones_in_normalized_coordinates() {
    let dir = std::env::temp_dir().join(format!("detcount-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.txt");
    std::fs::write(
        &rules,
        "# the door and the left half\nline door 0,0.5 1,0.5\nzone left 0,0 0.5,0 0.5,1 0,1  # half\n",
    )
    .unwrap();
    let (mut h, _bus) = harness(&format!(
        "detcount rules-file={} normalized=true",
        rules.display()
    ));
    let mut last = None;
    for i in 0..6 {
        last = meta::count_meta(&h.push_and_pull(frame(i, &scene(i))).unwrap());
    }
    let c = last.unwrap();
    assert_eq!(c.totals["door"][&Direction::In]["person"], 1);
    assert_eq!(c.frame.occupancy, vec![("left".to_string(), 2)]);
    std::fs::write(&rules, "line door 0,0.5 1,0.5\nzone left 0,0 0.5,0\n").unwrap();
    let e = start_error(&format!(
        "detcount rules-file={} normalized=true",
        rules.display()
    ));
    assert!(
        e.contains("line 2: zone 'left': a zone has three or more corners"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `report-interval=1` with frames 100 ms apart: a summary line after each second of stream time
/// with that second's crossings (not the running total), and a partial one at EOS.
#[test]
fn detjsonsink_sums_up_each_report_interval() {
    let dir = std::env::temp_dir().join(format!("detcount-summary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame_counts.jsonl");
    let (mut h, _bus) = harness(&format!(
        "{RULES} ! detjsonsink location={} report-interval=1 stream-id=door-cam",
        path.display()
    ));
    for i in 0..25u64 {
        // The scene of the other tests, then (from frame 12) person 1 walks back up.
        let mut dets = if i < 12 { scene(i.min(5)) } else { scene(5) };
        if i >= 12 {
            dets[0] = person(1, 80.0, 150.0 - 10.0 * (i - 12) as f64);
        }
        let mut b = frame(i, &dets);
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(100 * i));
        assert_eq!(h.push(b), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let lines = common::json_lines(&path);
    let summaries: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("summary").is_some())
        .collect();
    assert_eq!(lines.len(), 25 + 3, "25 frames and 3 summaries");
    assert_eq!(summaries.len(), 3);
    let s: Vec<&serde_json::Value> = summaries.iter().map(|l| &l["summary"]).collect();
    assert_eq!(summaries[0]["stream_id"], "door-cam");
    assert_eq!(
        (s[0]["from_pts_ns"].as_u64(), s[0]["to_pts_ns"].as_u64()),
        (Some(0), Some(1_000_000_000))
    );
    assert_eq!(s[0]["frames"], 10);
    assert_eq!(s[0]["tracks"], 2);
    assert_eq!(s[0]["counts_max"]["person"], 2);
    assert_eq!(s[0]["crossings"]["door"]["in"]["person"], 1, "{}", s[0]);
    assert_eq!(s[0]["crossings"]["door"]["out"]["person"], 1, "{}", s[0]);
    assert_eq!(s[0]["zones_peak"]["left"], 2);
    // Second 1: person 1 walks back up across the door (frames 12..15): one "out" in this
    // interval, none "in" (the running total would say 1).
    assert_eq!(s[1]["frames"], 10);
    assert_eq!(s[1]["crossings"]["door"]["in"]["person"], 0, "{}", s[1]);
    assert_eq!(s[1]["crossings"]["door"]["out"]["person"], 1, "{}", s[1]);
    assert!(s[1].get("partial").is_none());
    // The last half second, at EOS.
    assert_eq!(s[2]["frames"], 5);
    assert_eq!(s[2]["partial"], true);
    // Summaries come right before the first frame of the next interval.
    let at = lines
        .iter()
        .position(|l| l.get("summary").is_some())
        .unwrap();
    assert_eq!(lines[at + 1]["pts_ns"], 1_000_000_000u64);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rules changed while playing apply from the next frame: the line kept by name keeps its count,
/// a new zone counts who is in it, and a change that does not parse is a warning naming the
/// property, the rules in force kept.
#[test]
fn rules_changed_while_playing_apply_from_the_next_frame_and_keep_kept_counts() {
    let (mut h, bus) = harness(&format!("{RULES} name=count"));
    for i in 0..3 {
        h.push_and_pull(frame(i, &scene(i))).unwrap();
    }
    let count = h
        .element()
        .unwrap()
        .downcast::<gst::Bin>()
        .unwrap()
        .by_name("count")
        .unwrap();
    count.set_property("zones", "right 160,0 320,0 320,240 160,240");
    let out = h.push_and_pull(frame(3, &scene(3))).unwrap();
    let c = meta::count_meta(&out).unwrap();
    assert_eq!(
        c.frame.occupancy,
        vec![("right".to_string(), 1)],
        "person 2 is in the new zone"
    );
    assert_eq!(
        c.totals["door"][&Direction::In]["person"],
        1,
        "door kept its count"
    );
    count.set_property("lines", "door 0,120 320,120 ; door 1,1 2,2");
    let warning = std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .expect("a warning for the refused change");
    assert!(
        warning.contains("lines") && warning.contains("twice"),
        "{warning}"
    );
    assert_eq!(
        count.property::<Option<String>>("lines").as_deref(),
        Some("door 0,120 320,120"),
        "the refused text is not what the element reports"
    );
    for i in 4..6 {
        h.push_and_pull(frame(i, &scene(i))).unwrap();
    }
    let out = h.push_and_pull(frame(6, &scene(6))).unwrap();
    let c = meta::count_meta(&out).unwrap();
    assert_eq!(
        c.totals["door"][&Direction::Out]["person"],
        1,
        "the door counts on"
    );
    assert_eq!(c.frame.occupancy, vec![("right".to_string(), 0)]);
}

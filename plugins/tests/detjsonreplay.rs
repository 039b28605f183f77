//! detjsonreplay: the k-th frame gets the detections of the k-th frame line (summary lines and
//! a tracker's predicted boxes left out), scaled to the stream's size; frames past the end pass
//! without detections; after a flush the place is found again by the frames' times; a malformed
//! file stops the element at start with the line and the field named.

mod common;

use common::init;
use gst::prelude::*;
use gsttriton::meta;

const W: u32 = 320;
const H: u32 = 240;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("detjsonreplay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Three frames recorded at 640×480 (twice this stream's size), 33 ms apart, then a summary.
const RECORDED: &str = r#"{"frame":10,"pts_ns":0,"status":"ok","model":"m","width":640,"height":480,"detections":[{"label":"person","class_id":0,"confidence":0.9,"box":[100,40,200,240]}]}
{"frame":11,"pts_ns":33000000,"status":"skipped","width":640,"height":480,"detections":[{"label":"person","class_id":0,"confidence":0.9,"box":[104,40,204,240],"track_id":1,"predicted":true}]}
{"stream_id":"cam","summary":{"frames":2}}
{"frame":12,"pts_ns":66000000,"status":"ok","width":640,"height":480,"detections":[{"label":"person","class_id":0,"confidence":0.8,"box":[108,40,208,240],"track_id":1},{"label":"car","class_id":2,"confidence":0.7,"box":[400,300,600,400]}]}
"#;

fn harness(path: &std::path::Path) -> gst_check::Harness {
    init();
    let e = gst::ElementFactory::make("detjsonreplay")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(common::rgb_caps(W, H));
    h
}

fn push(h: &mut gst_check::Harness, ms: u64) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size((W * H * 3) as usize).unwrap();
    buf.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(ms));
    h.push(buf).unwrap();
    h.pull().unwrap()
}

#[test]
fn frames_get_their_lines_detections_scaled_to_the_stream() {
    let mut h = harness(&write("rec.jsonl", RECORDED));
    let a = push(&mut h, 0);
    let r = meta::result_meta(&a).expect("a result meta");
    assert_eq!(
        (r.status.as_str(), r.frame, r.model.as_str()),
        ("ok", 10, "m")
    );
    let d = meta::detections(&a, W, H);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].bbox,
        [50.0, 20.0, 100.0, 120.0],
        "halved: recorded at 640×480"
    );
    assert_eq!(
        (d[0].label.as_str(), d[0].class_id, d[0].track),
        ("person", 0, None)
    );

    // A frame without inference: its predicted box was the tracker's, not the detector's.
    let b = push(&mut h, 33);
    assert_eq!(meta::result_meta(&b).unwrap().status, "skipped");
    assert!(meta::detections(&b, W, H).is_empty());

    // The summary line is not a frame; track ids recorded are dropped (tracking runs again).
    let c = push(&mut h, 66);
    let d = meta::detections(&c, W, H);
    assert_eq!(meta::result_meta(&c).unwrap().frame, 12);
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.track.is_none()), "{d:?}");
    assert_eq!(d[1].bbox, [200.0, 150.0, 300.0, 200.0]);

    // Past the end: the frame passes, with nothing on it.
    let e = push(&mut h, 100);
    assert!(meta::result_meta(&e).is_none());
    assert!(meta::detections(&e, W, H).is_empty());
}

#[test]
fn after_a_flush_the_next_frame_is_found_by_its_time() {
    let mut h = harness(&write("seek.jsonl", RECORDED));
    assert_eq!(meta::result_meta(&push(&mut h, 0)).unwrap().frame, 10);
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    // A seek to 66 ms: the third frame line, not the second.
    let b = push(&mut h, 66);
    assert_eq!(meta::result_meta(&b).unwrap().frame, 12);
    // And back to the start.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert_eq!(meta::result_meta(&push(&mut h, 0)).unwrap().frame, 10);
}

#[test]
fn a_malformed_file_is_refused_at_start_naming_the_line_and_the_field() {
    init();
    let cases = [
        (
            "{\"frame\":0,\"detections\":[]}\n{\"frame\":1,\"detections\":[{\"box\":[1,2]}]}\n",
            "line 2: detections[0].box: expected [x1, y1, x2, y2]",
        ),
        ("{\"frame\":0,\"counts\":{}}\n", "include-detections=false"),
        (
            "{\"frame\":0,\"detections\":[]}\nnot json\n",
            "line 2: not JSON",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = write(&format!("bad{i}.jsonl"), text);
        let e = gst::ElementFactory::make("detjsonreplay")
            .property("location", p.to_str().unwrap())
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        e.set_bus(Some(&bus));
        assert!(e.set_state(gst::State::Paused).is_err());
        let msg = bus
            .iter()
            .find_map(|m| match m.view() {
                gst::MessageView::Error(err) => Some(format!("{} {:?}", err.error(), err.debug())),
                _ => None,
            })
            .expect("an error message");
        assert!(
            msg.contains(want) && msg.contains(p.to_str().unwrap()),
            "{msg}"
        );
        e.set_state(gst::State::Null).unwrap();
    }
    let e = gst::ElementFactory::make("detjsonreplay").build().unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    assert!(e.set_state(gst::State::Paused).is_err());
    let msg = bus
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Error(err) => Some(err.error().to_string()),
            _ => None,
        })
        .unwrap();
    assert!(msg.contains("location"), "{msg}");
}

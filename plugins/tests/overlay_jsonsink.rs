//! detoverlay and detjsonsink on frames carrying ROI metas made by the test.

mod common;

use common::init;
use gst::prelude::*;
use gst_video::prelude::*;
use gsttriton::meta::{self, Detection};
use gsttriton::overlay::draw::class_colour;
use gsttriton::pixel::{YuvMatrix, YuvToRgb};

fn caps(format: &str, w: i32, h: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", w)
        .field("height", h)
        .field("framerate", gst::Fraction::new(30, 1))
        .field("colorimetry", "bt601")
        .build()
}

/// A frame of mid-grey (RGB 128 or Y=U=V=128).
fn grey(info: &gst_video::VideoInfo) -> gst::Buffer {
    let mut b = gst::Buffer::with_size(info.size()).unwrap();
    b.get_mut().unwrap().map_writable().unwrap().fill(128);
    b
}

/// RGB of pixel (x, y) of a frame.
fn pixel(info: &gst_video::VideoInfo, buf: &gst::BufferRef, x: usize, y: usize) -> [f32; 3] {
    let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info).unwrap();
    let s = f.plane_stride();
    let conv = YuvToRgb::new(YuvMatrix::Bt601, false);
    let p0 = f.plane_data(0).unwrap();
    match info.format() {
        gst_video::VideoFormat::I420 => conv.convert(
            p0[y * s[0] as usize + x],
            f.plane_data(1).unwrap()[(y / 2) * s[1] as usize + x / 2],
            f.plane_data(2).unwrap()[(y / 2) * s[2] as usize + x / 2],
        ),
        gst_video::VideoFormat::Nv12 => {
            let uv = f.plane_data(1).unwrap();
            let i = (y / 2) * s[1] as usize + 2 * (x / 2);
            conv.convert(p0[y * s[0] as usize + x], uv[i], uv[i + 1])
        }
        fmt => {
            let (bpp, o) = match fmt {
                gst_video::VideoFormat::Rgb => (3, [0, 1, 2]),
                gst_video::VideoFormat::Bgr => (3, [2, 1, 0]),
                gst_video::VideoFormat::Rgba | gst_video::VideoFormat::Rgbx => (4, [0, 1, 2]),
                _ => (4, [2, 1, 0]),
            };
            let i = y * s[0] as usize + x * bpp;
            [
                p0[i + o[0]] as f32,
                p0[i + o[1]] as f32,
                p0[i + o[2]] as f32,
            ]
        }
    }
}

fn close(a: [f32; 3], b: [u8; 3], tol: f32) -> bool {
    (0..3).all(|c| (a[c] - b[c] as f32).abs() <= tol)
}

#[test]
fn box_edges_take_the_class_colour_in_every_format() {
    init();
    let (w, h) = (160usize, 120usize);
    for format in ["I420", "NV12", "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx"] {
        let mut hns = gst_check::Harness::new("detoverlay");
        hns.element().unwrap().set_property("show-labels", false);
        hns.element().unwrap().set_property("thickness", 2u32);
        hns.set_src_caps(caps(format, w as i32, h as i32));
        let info = gst_video::VideoInfo::from_caps(&caps(format, w as i32, h as i32)).unwrap();
        let mut buf = grey(&info);
        let boxes = [
            ([20.0, 30.0, 80.0, 90.0], 0),
            ([100.0, 10.0, 150.0, 50.0], 2),
            ([-20.0, 100.0, 30.0, 140.0], 5),
        ];
        for (b, cls) in boxes {
            meta::add_detection(
                buf.get_mut().unwrap(),
                &Detection {
                    label: format!("c{cls}"),
                    class_id: cls,
                    confidence: 0.9,
                    bbox: b,
                    track: None,
                },
                w as u32,
                h as u32,
            );
        }
        let out = hns.push_and_pull(buf).unwrap();
        // YUV: 8-bit YUV rounding plus conversion back; RGB formats: exact.
        let tol = if format == "I420" || format == "NV12" {
            6.0
        } else {
            0.0
        };
        for (b, cls) in boxes {
            let c = class_colour(cls as i64);
            let [x1, y1, x2, y2] = b.map(|v| v as i64);
            let inside = |x: i64, y: i64| x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h;
            // Every edge: the middle of each side, on the line.
            for (x, y) in [
                ((x1 + x2) / 2, y1),
                ((x1 + x2) / 2, y2 - 1),
                (x1, (y1 + y2) / 2),
                (x2 - 1, (y1 + y2) / 2),
                (x1 + 1, y1 + 1),
            ] {
                if inside(x, y) {
                    let p = pixel(&info, &out, x as usize, y as usize);
                    assert!(
                        close(p, c, tol),
                        "{format} class {cls}: edge ({x},{y}) is {p:?}, expected {c:?}"
                    );
                }
            }
            // Well inside and well outside: untouched grey.
            for (x, y) in [
                ((x1 + x2) / 2, (y1 + y2) / 2),
                (x1 + 5, y1 + 5),
                (x2 + 4, (y1 + y2) / 2),
                ((x1 + x2) / 2, y2 + 4),
            ] {
                if inside(x, y) {
                    let p = pixel(&info, &out, x as usize, y as usize);
                    assert!(
                        close(p, [128, 128, 128], tol.max(2.0) + 1.0),
                        "{format}: ({x},{y}) changed to {p:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn labels_are_drawn_and_boxes_fully_outside_are_ignored() {
    init();
    let (w, h) = (200usize, 150usize);
    let mut hns = gst_check::Harness::new("detoverlay");
    hns.set_src_caps(caps("RGB", w as i32, h as i32));
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", w as i32, h as i32)).unwrap();
    let mut buf = grey(&info);
    meta::add_detection(
        buf.get_mut().unwrap(),
        &Detection {
            label: "person".into(),
            class_id: 0,
            confidence: 0.87,
            bbox: [50.0, 60.0, 150.0, 140.0],
            track: None,
        },
        w as u32,
        h as u32,
    );
    // Fully outside the frame: must not crash or draw.
    meta::add_detection(
        buf.get_mut().unwrap(),
        &Detection {
            label: "car".into(),
            class_id: 2,
            confidence: 0.5,
            bbox: [500.0, 500.0, 600.0, 600.0],
            track: None,
        },
        w as u32,
        h as u32,
    );
    let out = hns.push_and_pull(buf).unwrap();
    // The label sits above the box (rows ~45..60): some pixels there are no longer grey.
    let changed = (45..60)
        .flat_map(|y| (50..120).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(&info, &out, x, y) != [128.0; 3])
        .count();
    assert!(changed > 100, "label area barely changed ({changed} px)");
    // White text pixels exist in the label.
    let white = (45..60)
        .flat_map(|y| (50..120).map(move |x| (x, y)))
        .filter(|&(x, y)| close(pixel(&info, &out, x, y), [255, 255, 255], 30.0))
        .count();
    assert!(white > 10, "no text pixels ({white})");
}

/// Two detections, the second with a classifier's answer, and the classifier's status.
fn classified_frame(info: &gst_video::VideoInfo, with_attribute: bool) -> gst::Buffer {
    let mut buf = grey(info);
    let b = buf.get_mut().unwrap();
    for (k, bbox) in [[5.0, 5.0, 40.0, 40.0], [50.0, 60.0, 150.0, 140.0]]
        .into_iter()
        .enumerate()
    {
        meta::add_detection(
            b,
            &Detection {
                label: ["red", "blue"][k].into(),
                class_id: k as i32,
                confidence: 0.9,
                bbox,
                track: None,
            },
            info.width(),
            info.height(),
        );
    }
    meta::add_result_meta(
        b,
        &meta::ResultMeta {
            status: "ok".into(),
            model: "shapes_yolov8".into(),
            ..Default::default()
        },
    );
    if with_attribute {
        let a = meta::Attribute {
            model: "shapes_color".into(),
            label: "navy".into(),
            class_id: 2,
            confidence: 0.97,
            cached: false,
        };
        meta::add_attributes(b, &[(1, a)]).unwrap();
        let c = meta::Classified {
            model: "shapes_color".into(),
            status: "ok".into(),
            sent: 1,
            classified: 1,
            ..Default::default()
        };
        meta::set_classified(b, &c, 0);
    }
    buf
}

#[test]
fn a_classifiers_answer_is_drawn_under_the_label_and_written_with_its_object() {
    init();
    let (w, h) = (200i32, 150i32);
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", w, h)).unwrap();
    let draw = |with: bool| {
        let mut hns = gst_check::Harness::new("detoverlay");
        hns.set_src_caps(caps("RGB", w, h));
        hns.push_and_pull(classified_frame(&info, with)).unwrap()
    };
    let (without, with) = (draw(false), draw(true));
    // The answer changes pixels only in the top rows inside the second box (its label is above
    // the box), and a label's worth of them.
    let mut changed = 0;
    for y in 0..h as usize {
        for x in 0..w as usize {
            if pixel(&info, &without, x, y) != pixel(&info, &with, x, y) {
                assert!(
                    (50..150).contains(&x) && (60..90).contains(&y),
                    "({x}, {y}) changed outside the place under the label"
                );
                changed += 1;
            }
        }
    }
    assert!(
        changed > 200,
        "the answer was not drawn ({changed} px changed)"
    );

    let dir = std::env::temp_dir().join(format!("detjson-attr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame_counts.jsonl");
    let mut hns =
        gst_check::Harness::new_parse(&format!("detjsonsink location={}", path.display()));
    hns.set_src_caps(caps("RGB", w, h));
    // The first object carries an answer kept from an earlier frame (reclassify-interval).
    let mut frame = classified_frame(&info, true);
    {
        let b = frame.get_mut().unwrap();
        let old = meta::Attribute {
            model: "shapes_color".into(),
            label: "crimson".into(),
            class_id: 0,
            confidence: 0.8,
            cached: true,
        };
        meta::add_attributes(b, &[(0, old)]).unwrap();
        let c = meta::Classified {
            model: "shapes_color".into(),
            status: "ok".into(),
            sent: 1,
            classified: 1,
            cached: 1,
            ..Default::default()
        };
        meta::set_classified(b, &c, 0);
    }
    assert_eq!(hns.push(frame), Ok(gst::FlowSuccess::Ok));
    assert!(hns.push_event(gst::event::Eos::new()));
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    let dets = line["detections"].as_array().unwrap();
    assert_eq!(
        dets[0]["attributes"],
        serde_json::json!([{"model": "shapes_color", "label": "crimson", "confidence": 0.8, "cached": true}]),
        "{line}"
    );
    assert_eq!(
        dets[1]["attributes"],
        serde_json::json!([{"model": "shapes_color", "label": "navy", "confidence": 0.97}]),
        "{line}"
    );
    assert_eq!(line["model"], "shapes_yolov8");
    assert_eq!(
        line["classifier"],
        serde_json::json!({"model": "shapes_color", "status": "ok", "sent": 1, "classified": 1, "cached": 1}),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn jsonsink_lines_parse_frames_contiguous_counts_match_and_eos_flushes() {
    init();
    let dir = std::env::temp_dir().join(format!("detjson-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame_counts.jsonl");
    let mut hns = gst_check::Harness::new_parse(&format!(
        "detjsonsink location={} stream-id=cam-042",
        path.display()
    ));
    hns.set_src_caps(caps("RGB", 64, 48));
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", 64, 48)).unwrap();
    for i in 0..20u64 {
        let mut buf = grey(&info);
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(40 * i));
            let status = if i % 7 == 3 { "error" } else { "ok" };
            meta::add_result_meta(
                b,
                &meta::ResultMeta {
                    status: status.into(),
                    error: if status == "error" {
                        "boom".into()
                    } else {
                        String::new()
                    },
                    latency_ms: 3.5,
                    model: "m".into(),
                    model_version: "1".into(),
                    request_id: format!("cam-042:{i}"),
                    frame: i,
                    detections: 0,
                    labels: vec![],
                    ..Default::default()
                },
            );
            if status == "ok" {
                for k in 0..(i % 3) {
                    meta::add_detection(
                        b,
                        &Detection {
                            label: if k == 0 { "red".into() } else { "blue".into() },
                            class_id: k as i32,
                            confidence: 0.8,
                            bbox: [1.0, 2.0, 10.0, 20.0],
                            track: None,
                        },
                        64,
                        48,
                    );
                }
            }
        }
        assert_eq!(hns.push(buf), Ok(gst::FlowSuccess::Ok));
    }
    assert!(hns.push_event(gst::event::Eos::new()));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line parses"))
        .collect();
    assert_eq!(lines.len(), 20, "EOS flushed every line");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["frame"], i as u64);
        assert_eq!(l["stream_id"], "cam-042");
        assert_eq!(l["pts_ns"], 40_000_000 * i as u64);
        assert_eq!(
            (l["width"].as_u64(), l["height"].as_u64()),
            (Some(64), Some(48))
        );
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
        let dets = l["detections"].as_array().unwrap();
        let total: u64 = l["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(total as usize, dets.len(), "counts equal the detections");
        if i % 7 == 3 {
            assert_eq!(l["status"], "error");
            assert_eq!(l["error"], "boom");
            assert!(dets.is_empty());
        } else {
            assert_eq!(dets.len(), i % 3);
            if i % 3 == 2 {
                assert_eq!(l["counts"]["blue"], 1);
                assert_eq!(dets[0]["box"], serde_json::json!([1.0, 2.0, 10.0, 20.0]));
            }
        }
    }
}

#[test]
fn jsonsink_unwritable_location_is_a_clear_error() {
    init();
    let p = gst::parse::launch(
        "videotestsrc num-buffers=2 ! detjsonsink location=/nonexistent-dir/x.jsonl",
    )
    .unwrap();
    let _ = p.set_state(gst::State::Playing);
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error");
    if let gst::MessageView::Error(e) = msg.view() {
        assert!(
            e.error().to_string().contains("/nonexistent-dir/x.jsonl"),
            "{}",
            e.error()
        );
    }
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn jsonsink_numbers_frames_itself_where_no_result_meta_says() {
    init();
    let dir = std::env::temp_dir().join(format!("detjson-count-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frames.jsonl");
    let mut h = gst_check::Harness::new_parse(&format!("detjsonsink location={}", path.display()));
    h.set_src_caps(caps("RGB", 16, 16));
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", 16, 16)).unwrap();
    // Plain frames (no tritoninfer upstream), then one tritoninfer numbered 7, then plain again:
    // the sink's own counter goes on from the last number it saw.
    for i in 0..6u64 {
        let mut buf = grey(&info);
        if i == 3 {
            meta::add_result_meta(
                buf.get_mut().unwrap(),
                &meta::ResultMeta {
                    status: "ok".into(),
                    frame: 7,
                    ..Default::default()
                },
            );
        }
        assert_eq!(h.push(buf), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let frames: Vec<u64> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["frame"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(frames, [0, 1, 2, 7, 8, 9]);
}

/// A tracked detection's label starts with its track id (`#7 person 0.87`): the label's text
/// reaches further right than the untracked one's by the width of `#7 `, and `#1234` further
/// still.
#[test]
fn a_tracked_objects_label_carries_its_track_id() {
    init();
    let (w, h) = (320usize, 150usize);
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", w as i32, h as i32)).unwrap();
    // The rightmost column of white (text) pixels in the label rows above the box.
    let text_end = |track: Option<u64>| -> usize {
        let mut hns = gst_check::Harness::new("detoverlay");
        hns.set_src_caps(caps("RGB", w as i32, h as i32));
        let mut buf = grey(&info);
        meta::add_detection(
            buf.get_mut().unwrap(),
            &Detection {
                label: "person".into(),
                class_id: 0,
                confidence: 0.87,
                bbox: [20.0, 60.0, 120.0, 140.0],
                track: track.map(|id| meta::TrackTag {
                    id,
                    predicted: false,
                }),
            },
            w as u32,
            h as u32,
        );
        let out = hns.push_and_pull(buf).unwrap();
        (45..60)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| close(pixel(&info, &out, x, y), [255, 255, 255], 30.0))
            .map(|(x, _)| x)
            .max()
            .expect("no text pixels in the label")
    };
    let (none, seven, long) = (text_end(None), text_end(Some(7)), text_end(Some(1234)));
    assert!(
        seven >= none + 12,
        "with #7 the text ends at x={seven}, without at x={none}: the id is not drawn"
    );
    assert!(
        long >= seven + 12,
        "#1234 ends at x={long}, #7 at x={seven}: the id's digits are not drawn"
    );
}

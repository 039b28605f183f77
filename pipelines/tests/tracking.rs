//! dettrack and detcount in a C host (gst-launch-1.0) behind the real Triton, on the demo clip
//! whose ground truth is known: one track id per object for the whole clip, a tensor and a
//! request for every third frame only (`tritonletterbox interval=3`), the frames between carrying each track's predicted box near the drawn
//! object, and every crossing of a line counted as the drawn objects cross it.

use std::collections::BTreeMap;
use std::path::Path;

mod common;

use common::{decoded_frames, make_clip, tmpdir};
use gst_triton_tests::triton::shared_url;

fn read(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn boxf(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Largest edge difference between two boxes.
fn off(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

#[test]
fn tracked_demo_keeps_one_id_per_object_predicts_between_inferences_and_counts_crossings() {
    const FRAMES: usize = 90;
    const INTERVAL: usize = 3;
    let dir = tmpdir("tracking");
    let (clip, truth) = make_clip(&dir, FRAMES as u32, 640, 360);
    let (jsonl, mp4) = (dir.join("tracks.jsonl"), dir.join("annotated.mp4"));
    // A line down the middle, drawn downwards: an object moving left crosses it "in".
    let rules = dir.join("rules.txt");
    std::fs::write(&rules, "line mid 320,0 320,360\n").unwrap();
    let desc = format!(
        "filesrc location={} ! decodebin ! tritonletterbox interval={INTERVAL} ! tritoninfer url={} transport=triton model=shapes_yolov8 \
         ! dettrack ! detcount rules-file={} ! tee name=t \
         t. ! queue ! detoverlay ! videoconvert ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={} \
         t. ! queue ! detjsonsink location={}",
        clip.display(),
        shared_url(),
        rules.display(),
        mp4.display(),
        jsonl.display()
    );
    let mut cmd = std::process::Command::new("gst-launch-1.0");
    // -m prints the element messages: detcount's crossings as a C application sees them.
    cmd.arg("-m")
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", gst_triton_tests::artifacts::plugin_dir());
    let out = gst_triton_tests::stderr::output("gst-launch-1.0 tracking", &mut cmd);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(decoded_frames(&mp4), FRAMES);

    let (lines, truth) = (read(&jsonl), read(&truth));
    assert_eq!(lines.len(), FRAMES);
    let mut id_of: BTreeMap<String, u64> = BTreeMap::new();
    // Per predicted box: its error, and the error of the last inferred box of the object (what
    // a pipeline without a tracker would show until the next inference).
    let (mut predicted_off, mut held_off) = (Vec::new(), Vec::new());
    let mut last: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let inferred = i % INTERVAL == 0;
        assert_eq!(l["status"], if inferred { "ok" } else { "skipped" }, "{l}");
        let dets = l["detections"].as_array().unwrap();
        let objs = truth[i]["objects"].as_array().unwrap();
        assert_eq!(dets.len(), objs.len(), "frame {i}: {l}");
        for d in dets {
            let label = d["label"].as_str().unwrap().to_string();
            let id = d["track_id"]
                .as_u64()
                .unwrap_or_else(|| panic!("frame {i}: no track_id: {l}"));
            assert_eq!(
                *id_of.entry(label.clone()).or_insert(id),
                id,
                "frame {i}: {label} changed its id: {l}"
            );
            assert_eq!(d.get("predicted").is_some(), !inferred, "frame {i}: {d}");
            let o = objs.iter().find(|o| o["label"] == label.as_str()).unwrap();
            let e = off(&boxf(&d["box"]), &boxf(&o["box"]));
            if inferred {
                assert!(e <= 3.0, "frame {i}: {label} off by {e} px");
                last.insert(label, boxf(&d["box"]));
            } else if i > 2 * INTERVAL {
                predicted_off.push(e);
                held_off.push(off(&last[&label], &boxf(&o["box"])));
            }
        }
    }
    // Crossings of the drawn objects (their boxes' bottom centres) against what detcount
    // counted, on detected and predicted boxes alike.
    let mut want: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for i in 1..FRAMES {
        for o in truth[i]["objects"].as_array().unwrap() {
            let prev = truth[i - 1]["objects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["label"] == o["label"])
                .unwrap();
            let x = |v: &serde_json::Value| {
                let b = boxf(&v["box"]);
                (b[0] + b[2]) / 2.0
            };
            let (was, now) = (x(prev) > 320.0, x(o) > 320.0);
            if was != now {
                let dir = if was { "in" } else { "out" };
                *want
                    .entry((o["label"].as_str().unwrap().into(), dir))
                    .or_default() += 1;
            }
        }
    }
    let mut got: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for (dir, labels) in lines[FRAMES - 1]["lines"]["mid"].as_object().unwrap() {
        for (label, n) in labels.as_object().unwrap() {
            let dir = if dir == "in" { "in" } else { "out" };
            got.insert((label.clone(), dir), n.as_u64().unwrap());
        }
    }
    assert!(!want.is_empty(), "the clip crosses the line");
    assert_eq!(got, want, "crossings counted vs drawn");
    let events: usize = lines
        .iter()
        .map(|l| l["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(events as u64, want.values().sum::<u64>());
    let posted = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("triton-count") && l.contains("event=(string)crossed"))
        .count();
    assert_eq!(posted, events, "bus messages seen by gst-launch-1.0 -m");
    let ids: std::collections::BTreeSet<u64> = id_of.values().copied().collect();
    assert_eq!(ids.len(), 4, "four objects, four ids: {id_of:?}");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (pred, held) = (mean(&predicted_off), mean(&held_off));
    eprintln!(
        "{} predicted boxes after the first inferences: {pred:.1} px off the drawn objects on average; the last inferred box held: {held:.1} px",
        predicted_off.len()
    );
    // The constant-velocity filter follows the objects between inferences better than holding
    // the last box (objects turn at the frame's edges, where a prediction is off until the next
    // inference). Measured here: 5.7 px against 12.7 px (0.45); a filter that predicted no
    // motion would give 1.
    assert!(
        pred < 0.6 * held,
        "prediction {pred:.1} px vs holding {held:.1} px"
    );
}

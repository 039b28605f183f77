//! Two stages against a real Triton: `shapes_yolov8` finds the drawn shapes, `tritonletterbox
//! objects=true` crops each one, and `shapes_color` (`tritoninfer decoder=classify`) names each
//! crop's colour, which must be the drawn colour of that very object; counted on Triton's own
//! counters: exactly the objects sent, none for frames without objects or for classes left out,
//! fewer executions than objects (the crops of a frame go as one batch); on both transports, the
//! proxy and Triton's shared memory. With `dettrack` and `reclassify-interval`, one request per
//! track per interval, the answer kept (marked cached) between.

use std::time::Duration;

use gst_triton_tests::pipeline::{draw_rgb, run_all, run_frames};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::{Triton, settled_counts};
use gst_triton_tests::{CLASS_NAMES, Rect};
use gsttriton::meta;

const W: u32 = 640;
const H: u32 = 360;

/// Frames 0..6: one shape of each colour, moving; frames 6 and 7: nothing drawn.
fn scene(i: u32) -> Vec<Rect> {
    if i >= 6 {
        return vec![];
    }
    vec![
        Rect::new(20 + 6 * i, 30, 90, 60, 0),
        Rect::new(200, 40 + 4 * i, 70, 90, 1),
        Rect::new(360 + 4 * i, 200, 120, 70, 2),
        Rect::new(520, 120, 60, 60, 3),
    ]
}

const FRAMES: u32 = 8;

/// Runs the two stages and checks every frame; returns how many objects were sent.
fn two_stages(url: &str, transport: &str, extra: &str, classes: &[&str]) -> usize {
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| draw_rgb(W as usize, H as usize, &scene(i)))
        .collect();
    let filter = if classes.is_empty() {
        String::new()
    } else {
        format!("object-classes={}", classes.join(","))
    };
    let middle = format!(
        "tritonletterbox ! tritoninfer url={url} transport={transport} model=shapes_yolov8 {extra} on-error=fail \
         ! tritonletterbox objects=true width=64 height=64 object-margin=0.1 {filter} \
         ! tritoninfer url={url} transport={transport} model=shapes_color decoder=classify {extra} on-error=fail"
    );
    let buffers = run_all(&middle, W as usize, H as usize, &frames);
    let mut sent = 0;
    for (i, b) in buffers.iter().enumerate() {
        let what = format!("{transport} {filter} frame {i}");
        let res = meta::result_meta(b).expect("a result meta");
        assert_eq!(
            res.status, "ok",
            "{what}: the detector's status: {}",
            res.error
        );
        assert_eq!(
            res.model, "shapes_yolov8",
            "{what}: the detector's result was replaced"
        );
        let c = res
            .classifier
            .unwrap_or_else(|| panic!("{what}: no classifier status"));
        let dets = meta::detections(b, W, H);
        let attrs = meta::attributes(b);
        assert_eq!(dets.len(), scene(i as u32).len(), "{what}: {dets:?}");
        assert_eq!(attrs.len(), dets.len(), "{what}");
        let wanted = |label: &str| classes.is_empty() || classes.contains(&label);
        let n = dets.iter().filter(|d| wanted(&d.label)).count();
        if n == 0 {
            assert_eq!(c.status, "no-objects", "{what}: {c:?}");
        } else {
            assert_eq!(c.status, "ok", "{what}: {c:?}");
        }
        assert_eq!(
            (c.sent, c.classified),
            (n as u32, n as u32),
            "{what}: {c:?}"
        );
        sent += n;
        for (d, a) in dets.iter().zip(&attrs) {
            if !wanted(&d.label) {
                assert!(
                    a.is_empty(),
                    "{what}: {} was not to be sent: {a:?}",
                    d.label
                );
                continue;
            }
            // The detector's label is the drawn colour (checked against the truth below), so
            // the classifier must say the same of this object's crop.
            assert!(CLASS_NAMES.contains(&d.label.as_str()), "{what}: {d:?}");
            assert_eq!(a.len(), 1, "{what}: {a:?}");
            assert_eq!(
                (a[0].model.as_str(), a[0].label.as_str()),
                ("shapes_color", d.label.as_str()),
                "{what}: {d:?} classified as {a:?}"
            );
            assert!(
                a[0].confidence > 0.5 && a[0].confidence <= 1.0,
                "{what}: {a:?}"
            );
        }
        for r in scene(i as u32) {
            assert!(
                dets.iter().any(|d| d.label == CLASS_NAMES[r.class]
                    && (d.bbox[0] - r.x1 as f64).abs() <= 1.5
                    && (d.bbox[3] - r.y2 as f64).abs() <= 1.5),
                "{what}: {r:?} not found in {dets:?}"
            );
        }
    }
    sent
}

#[test]
fn every_object_gets_its_own_colour_and_triton_sees_exactly_the_objects_sent() {
    let triton = Triton::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&triton.url(), &[])).unwrap();
    let (url, proxy_url) = (triton.url(), proxy.url());
    let mut total = 0.0;
    let (n0, e0) = settled_counts(triton.metrics_port, "shapes_color", 0.0);
    assert_eq!(n0, 0.0);
    let runs = [
        (&url, "triton", "", &[][..]),
        (&url, "kserve", "", &[][..]),
        (&proxy_url, "proxy", "api-key=test-key", &[][..]),
        (&url, "triton", "", &["red", "blue"][..]),
        // Triton's shared memory carries the batch of crops too.
        (&url, "triton", "shared-memory=system", &[][..]),
    ];
    for &(url, transport, extra, classes) in &runs {
        let sent = two_stages(url, transport, extra, classes);
        // 6 frames with objects; classes left out are not sent.
        let want = 6 * if classes.is_empty() { 4 } else { classes.len() };
        assert_eq!(sent, want, "{transport} {classes:?}");
        total += sent as f64;
        let (n, _) = settled_counts(triton.metrics_port, "shapes_color", total);
        assert_eq!(
            n, total,
            "{transport} {classes:?}: Triton ran the classifier on {n} objects; {total} were sent in all"
        );
    }
    // One request per frame with objects (its crops as one batch), not one per object: at
    // most 6 executions per run.
    let (n, e) = settled_counts(triton.metrics_port, "shapes_color", total);
    assert!(
        e - e0 <= 6.0 * runs.len() as f64 && e - e0 < n - n0,
        "{} executions for {} objects",
        e - e0,
        n - n0
    );
    drop(proxy);
}

/// With `dettrack` before it and `reclassify-interval=3`, the classifier gets each track on
/// frames 0 and 3 only (Triton's count is 2 × the tracks), and every object of every frame
/// carries its colour: fresh on those frames, its track's last answer, marked cached, between.
#[test]
fn reclassify_interval_sends_each_track_once_per_interval_and_keeps_its_answer_between() {
    let triton = Triton::start().unwrap();
    let url = triton.url();
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| draw_rgb(W as usize, H as usize, &scene(i)))
        .collect();
    let (n0, _) = settled_counts(triton.metrics_port, "shapes_color", 0.0);
    let middle = format!(
        "tritonletterbox ! tritoninfer url={url} transport=triton model=shapes_yolov8 on-error=fail ! dettrack \
         ! tritonletterbox objects=true width=64 height=64 reclassify-interval=3 \
         ! tritoninfer url={url} transport=triton model=shapes_color decoder=classify on-error=fail"
    );
    let buffers = run_all(&middle, W as usize, H as usize, &frames);
    let mut ids = std::collections::BTreeSet::new();
    for (i, b) in buffers.iter().enumerate() {
        let c = meta::result_meta(b).unwrap().classifier.unwrap();
        let dets = meta::detections(b, W, H);
        let attrs = meta::attributes(b);
        assert_eq!(dets.len(), scene(i as u32).len(), "frame {i}: {dets:?}");
        let fresh = i % 3 == 0;
        let n = dets.len() as u32;
        let want = if n == 0 {
            (0, 0)
        } else if fresh {
            (n, 0)
        } else {
            (0, n)
        };
        assert_eq!((c.sent, c.cached), want, "frame {i}: {c:?}");
        for (d, a) in dets.iter().zip(&attrs) {
            ids.insert(d.track.expect("dettrack gave every object a track").id);
            assert_eq!(a.len(), 1, "frame {i}: {d:?} {a:?}");
            assert_eq!(
                (a[0].label.as_str(), a[0].cached),
                (d.label.as_str(), !fresh),
                "frame {i}: {d:?} {a:?}"
            );
        }
    }
    assert_eq!(ids.len(), 4, "the four objects kept their tracks: {ids:?}");
    let (n, _) = settled_counts(triton.metrics_port, "shapes_color", n0 + 8.0);
    assert_eq!(n - n0, 8.0, "4 tracks × frames 0 and 3");
}

#[test]
fn a_classifier_without_object_crops_is_a_clear_error() {
    let frames = vec![draw_rgb(64, 48, &[])];
    let run = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={} transport=triton model=shapes_color decoder=classify",
            gst_triton_tests::triton::shared_url()
        ),
        64,
        48,
        &frames,
        |_| {},
        Duration::from_secs(20),
    );
    assert!(
        run.errors.iter().any(
            |e| e.contains("decoder=classify needs object crops") && e.contains("objects=true")
        ),
        "{:?}",
        run.errors
    );
}

/// `shapes_color_b3` takes at most 3 objects per request (`max_batch_size: 3`), fewer than the 4
/// of a frame. `tritonletterbox objects=true` asks the `tritoninfer` after it for that limit, on
/// both transports and through the proxy's `ModelInfo`: by default (`max-objects=0`) and when
/// set above it, each frame sends its 3 largest objects (yellow, the smallest, is left out) and
/// Triton runs exactly those; `max-objects=2` under the limit stands. Sending the 4 would be a
/// request Triton refuses (`on-error=fail` ends the run).
#[test]
fn the_crops_of_a_frame_never_exceed_the_classifiers_max_batch_size() {
    const MODEL: &str = "shapes_color_b3";
    let triton = Triton::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&triton.url(), &[])).unwrap();
    let (url, proxy_url) = (triton.url(), proxy.url());
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| draw_rgb(W as usize, H as usize, &scene(i)))
        .collect();
    let mut total = 0.0;
    let runs = [
        (&url, "triton", "", "", 3),
        (&url, "kserve", "", "max-objects=6", 3),
        (&proxy_url, "proxy", "api-key=test-key", "", 3),
        (&url, "triton", "", "max-objects=2", 2),
    ];
    for &(url, transport, key, max, want) in &runs {
        let what = format!("{transport} {max}");
        let middle = format!(
            "tritonletterbox ! tritoninfer url={url} transport={transport} model=shapes_yolov8 {key} on-error=fail \
             ! tritonletterbox objects=true width=64 height=64 {max} \
             ! tritoninfer url={url} transport={transport} model={MODEL} decoder=classify {key} on-error=fail"
        );
        let buffers = run_all(&middle, W as usize, H as usize, &frames);
        for (i, b) in buffers.iter().enumerate() {
            let c = meta::result_meta(b).unwrap().classifier.unwrap();
            let dets = meta::detections(b, W, H);
            let attrs = meta::attributes(b);
            if dets.is_empty() {
                assert_eq!(c.status, "no-objects", "{what} frame {i}: {c:?}");
                continue;
            }
            assert_eq!(dets.len(), 4, "{what} frame {i}: {dets:?}");
            assert_eq!(
                (c.status.as_str(), c.sent, c.classified),
                ("ok", want, want),
                "{what} frame {i}: {c:?}"
            );
            // The largest first: blue (8400 px²), green (6300), red (5400); yellow (3600) never.
            let mut labelled: Vec<&str> = dets
                .iter()
                .zip(&attrs)
                .filter(|(_, a)| !a.is_empty())
                .map(|(d, a)| {
                    assert_eq!(a[0].label, d.label, "{what} frame {i}");
                    d.label.as_str()
                })
                .collect();
            labelled.sort();
            let mut largest = ["blue", "green", "red"][..want as usize].to_vec();
            largest.sort();
            assert_eq!(labelled, largest, "{what} frame {i}");
        }
        total += 6.0 * f64::from(want);
        let (n, _) = settled_counts(triton.metrics_port, MODEL, total);
        assert_eq!(n, total, "{what}: Triton ran {MODEL} on {n} objects");
    }
    drop(proxy);
}

//! The decoders' rules, each on a small hand-built output.

use super::fixtures::{f32_bytes, out, yolo};
use super::*;

#[test]
fn yolov8_nms_keeps_the_best_of_overlapping_candidates() {
    let v = yolo(
        3,
        10,
        &[
            (50.0, 50.0, 20.0, 20.0, 1, 0.6),
            (51.0, 50.0, 20.0, 20.0, 1, 0.9),
            (150.0, 50.0, 10.0, 10.0, 2, 0.5),
            (50.0, 50.0, 20.0, 20.0, 0, 0.3),
            (10.0, 10.0, 4.0, 4.0, 0, 0.2),
        ],
    );
    let b = f32_bytes(&v);
    let dets = decode(
        Decoder::Yolov8,
        &[out("output0", "FP32", &[1, 7, 10], &b)],
        &Params::default(),
    )
    .unwrap();
    assert_eq!(dets.len(), 3, "{dets:?}");
    assert_eq!(
        dets[0],
        Det {
            bbox: [41.0, 40.0, 61.0, 60.0],
            score: 0.9,
            class: 1
        }
    );
    assert_eq!(dets[1].class, 2);
    assert_eq!(dets[2].class, 0, "class-aware NMS keeps the other class");
    let agnostic = Params {
        class_agnostic: true,
        ..Default::default()
    };
    let dets = decode(
        Decoder::Yolov8,
        &[out("output0", "FP32", &[1, 7, 10], &b)],
        &agnostic,
    )
    .unwrap();
    assert_eq!(
        dets.len(),
        2,
        "agnostic NMS drops the overlapping class-0 box: {dets:?}"
    );
}

#[test]
fn yolov8_transposed_layout_gives_the_same_answer() {
    let (nc, n) = (3, 10);
    let v = yolo(
        nc,
        n,
        &[
            (50.0, 50.0, 20.0, 20.0, 1, 0.9),
            (150.0, 60.0, 10.0, 30.0, 2, 0.8),
        ],
    );
    let mut t = vec![0.0; v.len()];
    for c in 0..4 + nc {
        for i in 0..n {
            t[i * (4 + nc) + c] = v[c * n + i];
        }
    }
    let (a, b) = (f32_bytes(&v), f32_bytes(&t));
    let p = Params::default();
    let d1 = decode(Decoder::Yolov8, &[out("o", "FP32", &[1, 7, 10], &a)], &p).unwrap();
    let d2 = decode(Decoder::Yolov8, &[out("o", "float32", &[1, 10, 7], &b)], &p).unwrap();
    assert_eq!(d1, d2);
    assert_eq!(d1.len(), 2);
}

#[test]
fn nan_scores_and_boxes_are_dropped() {
    let v = yolo(
        2,
        8,
        &[
            (50.0, 50.0, 20.0, 20.0, 0, f32::NAN),
            (f32::NAN, 50.0, 20.0, 20.0, 1, 0.9),
            (20.0, 20.0, 8.0, 8.0, 1, 0.7),
        ],
    );
    let b = f32_bytes(&v);
    let dets = decode(
        Decoder::Yolov8,
        &[out("o", "FP32", &[1, 6, 8], &b)],
        &Params::default(),
    )
    .unwrap();
    assert_eq!(dets.len(), 1);
    assert_eq!(dets[0].score, 0.7);
}

#[test]
fn nms_ties_are_deterministic() {
    let a = Det {
        bbox: [0.0, 0.0, 10.0, 10.0],
        score: 0.5,
        class: 0,
    };
    let b = Det {
        bbox: [1.0, 0.0, 11.0, 10.0],
        score: 0.5,
        class: 0,
    };
    assert_eq!(nms(vec![a, b], 0.45, false, 10), vec![a]);
    assert_eq!(nms(vec![b, a], 0.45, false, 10), vec![b]);
    // IoU exactly at the threshold is kept (drop only when greater).
    let c = Det {
        bbox: [0.0, 0.0, 10.0, 10.0],
        score: 0.4,
        class: 0,
    };
    let d = Det {
        bbox: [0.0, 0.0, 10.0, 5.0],
        score: 0.3,
        class: 0,
    };
    assert_eq!(nms(vec![c, d], 0.5, false, 10).len(), 2);
    assert_eq!(nms(vec![a, b, c], 0.0, true, 1).len(), 1, "max detections");
}

#[test]
fn empty_outputs() {
    let p = Params::default();
    assert!(
        decode(
            Decoder::XyxyScoreClass,
            &[out("output0", "FP32", &[1, 0, 6], &[])],
            &p
        )
        .unwrap()
        .is_empty()
    );
    let v = f32_bytes(&vec![0.0; 8 * 100]);
    assert!(
        decode(Decoder::Yolov8, &[out("o", "FP32", &[1, 8, 100], &v)], &p)
            .unwrap()
            .is_empty()
    );
    let zero = 0i32.to_le_bytes();
    let boxes = f32_bytes(&[0.0; 8]);
    let two = f32_bytes(&[0.0; 2]);
    let cls = [0u8; 8];
    let outs = [
        out("num_dets", "INT32", &[1], &zero),
        out("boxes", "FP32", &[1, 2, 4], &boxes),
        out("scores", "FP32", &[1, 2], &two),
        out("classes", "INT32", &[1, 2], &cls),
    ];
    assert!(decode(Decoder::EfficientNms, &outs, &p).unwrap().is_empty());
}

#[test]
fn xyxy_and_efficient_nms_with_filters() {
    let rows = f32_bytes(&[
        10.0, 10.0, 20.0, 30.0, 0.9, 2.0, 0.0, 0.0, 5.0, 5.0, 0.1, 1.0, 5.0, 5.0, 9.0, 9.0, 0.8,
        1.0,
    ]);
    let p = Params {
        classes: Some(vec![1]),
        ..Default::default()
    };
    let d = decode(
        Decoder::XyxyScoreClass,
        &[out("output0", "FP32", &[1, 3, 6], &rows)],
        &p,
    )
    .unwrap();
    assert_eq!(
        d,
        vec![Det {
            bbox: [5.0, 5.0, 9.0, 9.0],
            score: 0.8,
            class: 1
        }]
    );

    let num = 2i32.to_le_bytes();
    let boxes = f32_bytes(&[
        1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 20.0, 20.0, 0.0, 0.0, 0.0, 0.0,
    ]);
    let scores = f32_bytes(&[0.3, 0.95, 0.0]);
    let classes: Vec<u8> = [7i32, 3, 0].iter().flat_map(|c| c.to_le_bytes()).collect();
    let outs = [
        out("num_dets", "INT32", &[1], &num),
        out("det_boxes", "FP32", &[1, 3, 4], &boxes),
        out("det_scores", "FP32", &[1, 3], &scores),
        out("det_classes", "INT32", &[1, 3], &classes),
    ];
    let d = decode(Decoder::EfficientNms, &outs, &Params::default()).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].class, 3, "sorted best first");
}

#[test]
fn auto_detection() {
    let s = |n: &str, v: &[i64]| (n.to_string(), v.to_vec());
    assert_eq!(
        detect(&[s("output0", &[1, 84, 8400])]).unwrap(),
        Decoder::Yolov8
    );
    assert_eq!(
        detect(&[s("output0", &[1, 8400, 84])]).unwrap(),
        Decoder::Yolov8
    );
    assert_eq!(
        detect(&[s("output0", &[1, -1, 6])]).unwrap(),
        Decoder::XyxyScoreClass
    );
    assert_eq!(
        detect(&[
            s("num_dets", &[1]),
            s("boxes", &[1, 100, 4]),
            s("scores", &[1, 100]),
            s("classes", &[1, 100])
        ])
        .unwrap(),
        Decoder::EfficientNms
    );
    let e = detect(&[s("logits", &[1, 1000])]).unwrap_err();
    assert!(
        e.contains("logits [1, 1000]") && e.contains("decoder property"),
        "{e}"
    );
}

#[test]
fn auto_detection_rule_by_rule() {
    use Decoder::*;
    let one = |shape: &[i64]| detect(&[("output0".to_string(), shape.to_vec())]).ok();
    // One rank-3 output: last dimension 6 → rows; otherwise both axes ≥ 5 (or one unknown).
    for (shape, want) in [
        (&[1, 7, 6][..], Some(XyxyScoreClass)),
        (&[1, -1, 6], Some(XyxyScoreClass)),
        (&[1, 84, 8400], Some(Yolov8)),
        (&[1, 8400, 84], Some(Yolov8)),
        (&[1, 5, 5], Some(Yolov8)),
        (&[1, 84, -1], Some(Yolov8)),
        (&[1, -1, 84], Some(Yolov8)),
        (&[1, 4, 8400], None),
        (&[1, 84, 4], None),
        (&[1, 4, 84], None),
        (&[1, 84, 1], None),
        (&[1, 1, 84], None),
        (&[1, -1, -1], None),
        (&[1, -1, 4], None),
        (&[1, 4, -1], None),
        (&[84, 8400], None),
        (&[1, 1, 84, 8400], None),
    ] {
        assert_eq!(one(shape), want, "{shape:?}");
    }
    // Four outputs named num/box/score/class (any case) → efficient-nms; one name missing, or
    // a fifth output, is not.
    let named = |names: &[&str]| {
        let outs: Vec<(String, Vec<i64>)> = names
            .iter()
            .map(|n| (n.to_string(), vec![1, 100]))
            .collect();
        detect(&outs).ok()
    };
    assert_eq!(
        named(&["NUM_DETS", "Boxes", "det_scores", "det_classes"]),
        Some(EfficientNms)
    );
    for names in [
        &["count", "boxes", "scores", "classes"][..],
        &["num", "rects", "scores", "classes"],
        &["num", "boxes", "conf", "classes"],
        &["num", "boxes", "scores", "labels"],
        &["num", "boxes", "scores"],
        &["num", "boxes", "scores", "classes", "extra"],
    ] {
        assert_eq!(named(names), None, "{names:?}");
    }
}

#[test]
fn bad_sizes_are_errors_not_panics() {
    let b = f32_bytes(&[1.0; 7]);
    let e = decode(
        Decoder::Yolov8,
        &[out("o", "FP32", &[1, 7, 10], &b)],
        &Params::default(),
    )
    .unwrap_err();
    assert!(e.contains("expected 280"), "{e}");
    assert!(
        decode(
            Decoder::Yolov8,
            &[out("o", "BYTES", &[1, 7, 1], &b)],
            &Params::default()
        )
        .is_err()
    );
    assert!(decode(Decoder::Yolov8, &[], &Params::default()).is_err());
}

#[test]
fn labels_parse_in_three_forms() {
    assert_eq!(parse_labels("a\nb\n\nc\n"), vec!["a", "b", "c"]);
    assert_eq!(
        parse_labels("red, green,blue"),
        vec!["red", "green", "blue"]
    );
    assert_eq!(parse_labels(r#"["x","y"]"#), vec!["x", "y"]);
    assert_eq!(COCO80[0], "person");
    assert_eq!(COCO80.len(), 80);
}

use super::*;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn out<'a>(name: &'a str, dtype: &'a str, shape: &'a [i64], data: &'a [u8]) -> Output<'a> {
    Output {
        name,
        dtype,
        shape,
        data,
    }
}

/// Builds a [1, 4+nc, n] raw head from (cx, cy, w, h, class, score) anchors.
fn yolo(nc: usize, n: usize, anchors: &[(f32, f32, f32, f32, usize, f32)]) -> Vec<f32> {
    let mut v = vec![0.0; (4 + nc) * n];
    for (i, &(cx, cy, w, h, c, s)) in anchors.iter().enumerate() {
        v[i] = cx;
        v[n + i] = cy;
        v[2 * n + i] = w;
        v[3 * n + i] = h;
        v[(4 + c) * n + i] = s;
    }
    v
}

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

/// FP32 values as bytes that start on a 4-byte boundary (an `f32` buffer viewed as bytes).
fn aligned(v: &[f32]) -> Vec<f32> {
    v.to_vec()
}

fn as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: any f32 slice is a valid byte slice of 4× the length.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 4) }
}

#[test]
fn aligned_fp32_is_borrowed_and_misaligned_is_copied_exactly() {
    let v = aligned(&[1.5, -2.0, 3.25, 4.0]);
    let o = out("o", "FP32", &[1, 4], as_bytes(&v));
    match as_f32(&o).unwrap() {
        std::borrow::Cow::Borrowed(b) => assert_eq!(b, v.as_slice()),
        std::borrow::Cow::Owned(_) => panic!("aligned FP32 must be borrowed, not copied"),
    }
    // The same values one byte off alignment: copied, every value intact.
    let mut buf: Vec<u8> = std::iter::repeat_n(0, 24).collect();
    let off = (0..4)
        .find(|o| (buf.as_ptr() as usize + o) % 4 == 1)
        .unwrap();
    buf[off..off + 16].copy_from_slice(as_bytes(&v));
    let bytes = &buf[off..off + 16];
    let o = out("o", "FP32", &[1, 4], bytes);
    let got = as_f32(&o).unwrap();
    assert!(matches!(got, std::borrow::Cow::Owned(_)));
    assert_eq!(&*got, v.as_slice());
    // Too few bytes for the shape: an error, on either path.
    let o = out("o", "FP32", &[1, 5], as_bytes(&v));
    assert!(
        as_f32(&o)
            .unwrap_err()
            .contains("16 bytes for shape [1, 5]")
    );
}

#[test]
fn yolov8_edges_shape_channels_ties_threshold_and_empty_boxes() {
    let p = Params::default();
    let run = |shape: &[i64], v: &[f32]| {
        let b = f32_bytes(v);
        decode(Decoder::Yolov8, &[out("o", "FP32", shape, &b)], &p)
    };
    // Only batch 1 of rank 3.
    assert!(
        run(&[2, 5, 5], &[0.0; 50])
            .unwrap_err()
            .contains("[2, 5, 5]")
    );
    assert!(run(&[1, 25], &[0.0; 25]).unwrap_err().contains("[1, 25]"));
    // Four channels are boxes without a class.
    assert!(
        run(&[1, 4, 8], &[0.0; 32])
            .unwrap_err()
            .contains("has 4 channels")
    );
    // Five channels: one class is enough.
    let d = run(&[1, 5, 6], &yolo(1, 6, &[(10.0, 10.0, 4.0, 4.0, 0, 0.9)])).unwrap();
    assert_eq!(d.len(), 1);
    // Equal scores: the lower class id wins.
    let mut v = yolo(3, 10, &[(10.0, 10.0, 4.0, 4.0, 2, 0.8)]);
    v[4 * 10] = 0.8; // class 0 of anchor 0
    let d = run(&[1, 7, 10], &v).unwrap();
    assert_eq!((d.len(), d[0].class), (1, 0));
    // A score exactly at the threshold is kept; zero-width or zero-height boxes are dropped.
    let v = yolo(
        1,
        6,
        &[
            (10.0, 10.0, 4.0, 4.0, 0, 0.25),
            (30.0, 10.0, 0.0, 4.0, 0, 0.9),
            (50.0, 10.0, 4.0, 0.0, 0, 0.9),
        ],
    );
    let d = run(&[1, 5, 6], &v).unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].score, d[0].bbox), (0.25, [8.0, 8.0, 12.0, 12.0]));
}

#[test]
fn xyxy_rows_edges() {
    let p = Params::default();
    let run = |shape: &[i64], rows: &[f32]| {
        let b = f32_bytes(rows);
        decode(Decoder::XyxyScoreClass, &[out("o", "FP32", shape, &b)], &p)
    };
    assert!(
        run(&[1, 2, 7], &[0.0; 14])
            .unwrap_err()
            .contains("[1, 2, 7]")
    );
    assert!(run(&[2, 6], &[0.0; 12]).unwrap_err().contains("[2, 6]"));
    let rows = [
        1.0,
        2.0,
        11.0,
        12.0,
        0.9,
        1.0, // kept
        1.0,
        2.0,
        1.0,
        12.0,
        0.9,
        1.0, // zero width
        1.0,
        2.0,
        11.0,
        2.0,
        0.9,
        1.0, // zero height
        f32::NEG_INFINITY,
        2.0,
        11.0,
        12.0,
        0.9,
        1.0, // not finite
        1.0,
        2.0,
        11.0,
        12.0,
        0.1,
        1.0, // below the threshold
        1.0,
        2.0,
        11.0,
        12.0,
        0.9,
        -1.0, // no class
        3.0,
        4.0,
        13.0,
        14.0,
        0.25,
        0.0, // at the threshold: kept
    ];
    let d = run(&[1, 7, 6], &rows).unwrap();
    assert_eq!(
        d,
        [
            Det {
                bbox: [1.0, 2.0, 11.0, 12.0],
                score: 0.9,
                class: 1
            },
            Det {
                bbox: [3.0, 4.0, 13.0, 14.0],
                score: 0.25,
                class: 0
            }
        ]
    );
}

#[test]
fn efficient_nms_edges() {
    let run = |num: f32, boxes: &[f32], scores: &[f32], classes: &[f32], p: &Params| {
        let (n, b, s, c) = (
            f32_bytes(&[num]),
            f32_bytes(boxes),
            f32_bytes(scores),
            f32_bytes(classes),
        );
        let nb = (boxes.len() / 4) as i64;
        let shapes = (
            [1i64],
            [1, nb, 4],
            [1, scores.len() as i64],
            [1, classes.len() as i64],
        );
        decode(
            Decoder::EfficientNms,
            &[
                out("num_dets", "FP32", &shapes.0, &n),
                out("det_boxes", "FP32", &shapes.1, &b),
                out("det_scores", "FP32", &shapes.2, &s),
                out("det_classes", "FP32", &shapes.3, &c),
            ],
            p,
        )
        .unwrap()
    };
    let p = Params::default();
    // num claims 3 but only two boxes came: two detections, exact coordinates.
    let d = run(
        3.0,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        &[0.9, 0.8, 0.7],
        &[0.0, 1.0, 2.0],
        &p,
    );
    assert_eq!(
        d.iter().map(|d| (d.bbox, d.class)).collect::<Vec<_>>(),
        [([1.0, 2.0, 3.0, 4.0], 0), ([5.0, 6.0, 7.0, 8.0], 1)]
    );
    // Below the threshold, a negative class, a filtered class, an empty box: dropped.
    let boxes = [
        0.0, 0.0, 9.0, 9.0, 0.0, 0.0, 9.0, 9.0, 0.0, 0.0, 9.0, 9.0, 0.0, 0.0, 9.0, 9.0, 5.0, 5.0,
        5.0, 9.0,
    ];
    let only_1_and_2 = Params {
        classes: Some(vec![1, 2]),
        ..Default::default()
    };
    let d = run(
        5.0,
        &boxes,
        &[0.1, 0.9, 0.9, 0.9, 0.9],
        &[1.0, -1.0, 0.0, 2.0, 1.0],
        &only_1_and_2,
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].class, d[0].bbox), (2, [0.0, 0.0, 9.0, 9.0]));
    // Zero height, and a non-finite corner, are dropped too.
    let d = run(
        3.0,
        &[
            0.0,
            4.0,
            9.0,
            4.0,
            f32::NEG_INFINITY,
            0.0,
            9.0,
            9.0,
            1.0,
            1.0,
            2.0,
            2.0,
        ],
        &[0.9, 0.9, 0.9],
        &[0.0, 0.0, 0.0],
        &p,
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].bbox, [1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn errors_list_the_outputs_seen() {
    let b = f32_bytes(&[0.0; 6]);
    let two = [
        out("a", "FP32", &[1, 1, 6], &b),
        out("b", "FP32", &[1, 1, 6], &b),
    ];
    let p = Params::default();
    assert_eq!(
        decode(Decoder::XyxyScoreClass, &two, &p).unwrap_err(),
        "xyxy-score-class: expected exactly one output, got 2 (a, b)"
    );
    assert_eq!(
        decode(Decoder::EfficientNms, &two, &p).unwrap_err(),
        "efficient-nms: no output named like 'num' among a, b"
    );
}

#[test]
fn iou_of_known_boxes() {
    // Overlap 1×1 of two 2×2 boxes: 1 / (4 + 4 − 1).
    assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 1.0, 3.0, 3.0]), 1.0 / 7.0);
    // A 4×2 box and a 1×3 box inside/across it: overlap 1×2 = 2, union 8 + 3 − 2 = 9.
    assert_eq!(iou(&[0.0, 0.0, 4.0, 2.0], &[1.0, 0.0, 2.0, 3.0]), 2.0 / 9.0);
    assert_eq!(iou(&[1.0, 0.0, 2.0, 3.0], &[0.0, 0.0, 4.0, 2.0]), 2.0 / 9.0);
    assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
    assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
}

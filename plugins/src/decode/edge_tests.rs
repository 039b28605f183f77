//! Edge cases of the decoders, one rule at a time (shapes, channel counts, ties, thresholds,
//! empty and non-finite boxes, the FP32 fast path, error texts, IoU), found by mutation testing.

use super::fixtures::{f32_bytes, out, yolo};
use super::*;

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

#[test]
fn the_labels_output_is_never_decoded_and_parses_strictly() {
    let yolo_shape = vec![1, 6, 8400];
    let with_labels = [
        ("output0".to_string(), yolo_shape.clone()),
        (LABELS_OUTPUT.to_string(), vec![-1, 2]),
    ];
    assert_eq!(detect(&with_labels), Ok(Decoder::Yolov8));
    let effnms: Vec<(String, Vec<i64>)> = ["num_dets", "boxes", "scores", "classes", LABELS_OUTPUT]
        .iter()
        .map(|n| (n.to_string(), vec![1]))
        .collect();
    assert_eq!(detect(&effnms), Ok(Decoder::EfficientNms));

    let t = [3u32.to_le_bytes().as_slice(), b"cat", &0u32.to_le_bytes()].concat();
    assert_eq!(
        labels_from_tensor(&[1, 2], &t),
        Some(vec!["cat".to_string(), String::new()])
    );
    // First row only, from a [2, 1] batch.
    let two = [
        1u32.to_le_bytes().as_slice(),
        b"a",
        &1u32.to_le_bytes(),
        b"b",
    ]
    .concat();
    assert_eq!(
        labels_from_tensor(&[2, 1], &two),
        Some(vec!["a".to_string()])
    );
    assert_eq!(
        labels_from_tensor(&[1, 2], &t[..7]),
        None,
        "second length missing"
    );
    assert_eq!(
        labels_from_tensor(&[1, 1], &[4, 0, 0, 0, b'a']),
        None,
        "past the end"
    );
    assert_eq!(
        labels_from_tensor(&[1, 1], &[1, 0, 0, 0, 0xff]),
        None,
        "not UTF-8"
    );
    assert_eq!(labels_from_tensor(&[1, 0], &[]), None, "empty");
    // A server's count that the bytes cannot hold is refused before anything is allocated (it
    // used to reserve room for 2^40 names, aborting the host process).
    assert_eq!(
        labels_from_tensor(&[1, 1 << 40], &t),
        None,
        "a count past the data"
    );
    assert_eq!(
        labels_from_tensor(&[1, i64::MAX], &t),
        None,
        "the largest count"
    );
    assert_eq!(labels_from_tensor(&[1, -1], &t), None, "a negative count");
    assert_eq!(labels_from_tensor(&[], &t), None, "no shape");
}

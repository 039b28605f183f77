//! Interop with GStreamer's own analytics elements (feature `v1_24`, GStreamer ≥ 1.24; run by
//! scripts/test-gst126.sh on Debian 13's 1.26): frames with detections from `tritoninfer` (real
//! Triton, drawn rectangles) go through upstream `objectdetectionoverlay`, which reads only
//! `GstAnalyticsRelationMeta`. It must change pixels along every detected box and nowhere else.

use std::time::Duration;

use gst_triton_tests::Rect;
use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::triton::shared_url;

/// How far (px) a drawn outline may sit from the rectangle the test drew: the detector's error
/// (≤ 1.5 px here) plus the overlay's line width.
const MARGIN: f32 = 4.0;

#[test]
fn objectdetectionoverlay_draws_tritoninfer_detections_and_touches_nothing_else() {
    let url = shared_url();
    let (w, h) = (640usize, 480usize);
    let scenes: Vec<Vec<Rect>> = vec![
        vec![
            Rect::new(60, 50, 180, 120, 0),
            Rect::new(380, 260, 150, 160, 2),
        ],
        vec![],
        vec![
            Rect::new(300, 40, 90, 300, 1),
            Rect::new(20, 330, 200, 100, 3),
        ],
    ];
    let frames: Vec<Vec<u8>> = scenes.iter().map(|s| draw_rgb(w, h, s)).collect();
    let middle = format!(
        "tritonletterbox ! tritoninfer url={url} transport=triton model=shapes_yolov8 on-error=fail \
         ! objectdetectionoverlay draw-labels=false ! video/x-raw,format=RGB"
    );
    let run = run_frames(&middle, w, h, &frames, |_| {}, Duration::from_secs(60));
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.buffers.len(), frames.len());

    for (i, ((buf, input), rects)) in run.buffers.iter().zip(&frames).zip(&scenes).enumerate() {
        let out = buf.map_readable().unwrap();
        assert_eq!(out.len(), input.len(), "frame {i}: RGB {w}x{h} unpadded");
        let changed = |x: usize, y: usize| {
            let k = (y * w + x) * 3;
            out[k..k + 3] != input[k..k + 3]
        };
        // Nowhere else: every changed pixel lies on the outline band of a drawn rectangle.
        let near_outline = |x: usize, y: usize| {
            let (x, y) = (x as f32 + 0.5, y as f32 + 0.5);
            rects.iter().any(|r| {
                let outer = x > r.x1 - MARGIN
                    && x < r.x2 + MARGIN
                    && y > r.y1 - MARGIN
                    && y < r.y2 + MARGIN;
                let inner = x > r.x1 + MARGIN
                    && x < r.x2 - MARGIN
                    && y > r.y1 + MARGIN
                    && y < r.y2 - MARGIN;
                outer && !inner
            })
        };
        let mut stray = Vec::new();
        let mut total = 0usize;
        for y in 0..h {
            for x in 0..w {
                if changed(x, y) {
                    total += 1;
                    if !near_outline(x, y) && stray.len() < 10 {
                        stray.push((x, y));
                    }
                }
            }
        }
        assert!(
            stray.is_empty(),
            "frame {i}: pixels changed away from every box: {stray:?}"
        );
        if rects.is_empty() {
            assert_eq!(
                total, 0,
                "frame {i}: no detection, yet {total} pixels changed"
            );
        }
        // Along every box: each side has its outline drawn over most of its length.
        for r in rects {
            let band = |x: usize, y: usize| {
                let m = MARGIN as usize;
                (y.saturating_sub(m)..(y + m + 1).min(h))
                    .any(|yy| (x.saturating_sub(m)..(x + m + 1).min(w)).any(|xx| changed(xx, yy)))
            };
            let (x1, y1, x2, y2) = (
                r.x1 as usize,
                r.y1 as usize,
                r.x2 as usize - 1,
                r.y2 as usize - 1,
            );
            let sides: [Vec<(usize, usize)>; 4] = [
                (x1 + 8..x2 - 8).map(|x| (x, y1)).collect(),
                (x1 + 8..x2 - 8).map(|x| (x, y2)).collect(),
                (y1 + 8..y2 - 8).map(|y| (x1, y)).collect(),
                (y1 + 8..y2 - 8).map(|y| (x2, y)).collect(),
            ];
            for (s, side) in sides.iter().enumerate() {
                let drawn = side.iter().filter(|&&(x, y)| band(x, y)).count();
                assert!(
                    drawn * 10 >= side.len() * 9,
                    "frame {i}: box {r:?} side {s}: outline at {drawn} of {} points",
                    side.len()
                );
            }
        }
    }
}

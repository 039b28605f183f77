//! `tritonletterbox roi=` against the real Triton (both transports and through a real proxy):
//! the detector sees only the region, and what it finds comes back in full-frame pixels. Several
//! regions go as one batched request (Triton's counters), each finding its own objects; objects
//! a region cuts are clipped to it, or dropped with `roi-drop-cut=true`.

use std::time::Duration;

use gst_triton_tests::pipeline::{draw_rgb, run_all, run_frames};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::{Triton, settled_counts, shared_url};
use gst_triton_tests::{CLASS_NAMES, Rect};
use gsttriton::meta;

const W: u32 = 1280;
const H: u32 = 720;
/// The upper right quarter of the frame: 640×360 into the 640×640 tensor at scale 1.
const ROI: (u32, u32, u32, u32) = (640, 0, 640, 360);

/// Frame `i`: two objects inside the region (one touching its left edge from inside), two
/// outside it (left half, lower half), all moving a little from frame to frame.
fn scene(i: u32) -> (Vec<Rect>, Vec<Rect>) {
    let inside = vec![
        Rect::new(642 + 4 * i, 40, 120, 80, 0),
        Rect::new(1000, 200 + 2 * i, 160, 100, 2),
    ];
    let outside = vec![
        Rect::new(100 + 4 * i, 60, 140, 90, 1),
        Rect::new(800, 480 + 2 * i, 150, 110, 3),
    ];
    (inside, outside)
}

/// Every object inside the region found once at its full-frame place (within the model's half
/// tensor pixel plus half a frame pixel: 1 px at scale 1), nothing else.
fn check(buf: &gst::BufferRef, inside: &[Rect], what: &str) {
    let res = meta::result_meta(buf).unwrap_or_else(|| panic!("{what}: no result meta"));
    assert_eq!(res.status, "ok", "{what}: {}", res.error);
    let dets = meta::detections(buf, W, H);
    assert_eq!(
        dets.len(),
        inside.len(),
        "{what}: got {dets:?}, drew {inside:?} inside the region"
    );
    for d in inside {
        let label = CLASS_NAMES[d.class];
        let err = dets
            .iter()
            .filter(|x| x.label == label)
            .map(|x| {
                Rect {
                    x1: x.bbox[0] as f32,
                    y1: x.bbox[1] as f32,
                    x2: x.bbox[2] as f32,
                    y2: x.bbox[3] as f32,
                    class: d.class,
                }
                .max_edge_error(d)
            })
            .fold(f32::INFINITY, f32::min);
        assert!(
            err <= 1.0,
            "{what}: {label} {d:?} off by {err} px; got {dets:?}"
        );
    }
}

#[test]
fn a_region_finds_only_its_objects_at_full_frame_coordinates_on_every_transport() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&shared_url(), &[])).unwrap();
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let (a, b) = scene(i);
            draw_rgb(W as usize, H as usize, &[a, b].concat())
        })
        .collect();
    let (x, y, w, h) = ROI;
    let url = shared_url();
    let proxy_url = proxy.url();
    let normalized = format!(
        "roi={},{},{},{} roi-normalized=true",
        x as f64 / W as f64,
        y as f64 / H as f64,
        w as f64 / W as f64,
        h as f64 / H as f64
    );
    let pixels = format!("roi={x},{y},{w},{h}");
    for (url, transport, extra, convert, roi) in [
        (&url, "triton", "", "", &pixels),
        (
            &url,
            "triton",
            "",
            "videoconvert ! video/x-raw,format=I420 !",
            &pixels,
        ),
        (&url, "kserve", "", "", &normalized),
        (&proxy_url, "proxy", "api-key=test-key", "", &pixels),
    ] {
        for model in ["shapes_yolov8", "shapes_nms"] {
            let middle = format!(
                "{convert} tritonletterbox {roi} ! tritoninfer url={url} transport={transport} model={model} {extra} on-error=fail"
            );
            let buffers = run_all(&middle, W as usize, H as usize, &frames);
            for (i, b) in buffers.iter().enumerate() {
                let t = meta::tensor_meta(b).expect("a tensor meta");
                assert_eq!(
                    (
                        t.geometry.origin_x,
                        t.geometry.origin_y,
                        t.geometry.src_w,
                        t.geometry.src_h
                    ),
                    ROI,
                    "{middle}"
                );
                check(
                    b,
                    &scene(i as u32).0,
                    &format!("{transport} {model} {convert} frame {i}"),
                );
            }
        }
    }
    // The same frames without a region: all four objects, so the region is what left two out.
    let whole = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={url} transport=triton model=shapes_yolov8 on-error=fail"
        ),
        W as usize,
        H as usize,
        &frames,
        |_| {},
        Duration::from_secs(60),
    );
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);
    for b in &whole.buffers {
        assert_eq!(meta::detections(b, W, H).len(), 4);
    }
    drop(proxy);
}

/// Two regions: the upper left and the lower right quarters.
const TWO: &str = "0,0,640,360;640,360,640,360";

/// Frame `i` for [`TWO`]: one object in each region, one in neither (upper right), and one cut
/// by the first region's right edge (x 600..700); all moving a little.
fn two_region_scene(i: u32) -> (Vec<Rect>, Rect, Rect) {
    let inside = vec![
        Rect::new(40 + 4 * i, 40, 120, 80, 0),
        Rect::new(900, 500 + 2 * i, 160, 100, 2),
    ];
    let outside = Rect::new(1000, 60 + 2 * i, 140, 90, 1);
    let cut = Rect::new(600, 200 + 2 * i, 100, 80, 3);
    (inside, outside, cut)
}

#[test]
fn several_regions_go_as_one_batched_request_and_each_finds_its_own_objects() {
    const MODEL: &str = "shapes_nobatcher";
    const FRAMES: u32 = 3;
    let triton = Triton::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&triton.url(), &[])).unwrap();
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| {
            let (inside, outside, cut) = two_region_scene(i);
            draw_rgb(
                W as usize,
                H as usize,
                &[inside, vec![outside, cut]].concat(),
            )
        })
        .collect();
    let (url, proxy_url) = (triton.url(), proxy.url());
    let (mut n, mut e) = settled_counts(triton.metrics_port, MODEL, 0.0);
    for (url, transport, extra, drop_cut) in [
        (&url, "triton", "", false),
        (&url, "kserve", "", true),
        (&proxy_url, "proxy", "api-key=test-key", false),
        (&proxy_url, "proxy", "api-key=test-key", true),
    ] {
        let middle = format!(
            "tritonletterbox roi={TWO} roi-drop-cut={drop_cut} ! tritoninfer url={url} transport={transport} model={MODEL} {extra} on-error=fail"
        );
        let buffers = run_all(&middle, W as usize, H as usize, &frames);
        for (i, b) in buffers.iter().enumerate() {
            let (mut want, _, cut) = two_region_scene(i as u32);
            if !drop_cut {
                // Clipped at the region's right edge.
                want.push(Rect { x2: 640.0, ..cut });
            }
            check(b, &want, &format!("{middle}: frame {i}"));
        }
        // Each frame: one request of two items, one execution (the model has no batcher).
        let (n1, e1) = settled_counts(triton.metrics_port, MODEL, n + 2.0 * FRAMES as f64);
        assert_eq!(
            (n1 - n, e1 - e),
            (2.0 * FRAMES as f64, FRAMES as f64),
            "{middle}: Triton's inference and execution counts"
        );
        (n, e) = (n1, e1);
    }
    drop(proxy);
}

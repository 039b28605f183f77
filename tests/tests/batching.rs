//! Batching across cameras: four pipelines (`tritonletterbox ! tritoninfer transport=proxy`) share
//! one proxy and one Triton; `shapes_yolov8` declares `max_batch_size: 8` with
//! `dynamic_batching`, so Triton runs requests of different streams together. Shown from Triton's
//! own statistics (its Prometheus counters: fewer executions than inferences), with every frame of
//! every stream still answered with its own rectangle.

use std::time::Duration;

use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::{Triton, counter, triton_metrics};
use gst_triton_tests::{CLASS_NAMES, Rect};
use gsttriton::meta;

const STREAMS: usize = 4;
const FRAMES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_cameras_through_one_proxy_are_batched_by_triton() {
    let triton = Triton::start().unwrap();
    let proxy = TestProxy::start(&triton.url(), &["--proxy-allow-unauthenticated"])
        .await
        .unwrap();
    let url = proxy.url();
    let before = triton_metrics(triton.metrics_port);
    let (n0, e0) = (
        counter(&before, "nv_inference_count", "shapes_yolov8"),
        counter(&before, "nv_inference_exec_count", "shapes_yolov8"),
    );
    let runs = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..STREAMS)
                .map(|cam| {
                    let url = url.clone();
                    s.spawn(move || {
                        // Each camera its own class and place, so a swapped answer shows.
                        let rect = Rect::new(40 + 60 * cam as u32, 50, 80, 60, cam % 4);
                        let frames = vec![draw_rgb(320, 240, &[rect]); FRAMES];
                        let run = run_frames(
                            &format!(
                                "tritonletterbox ! tritoninfer url={url} transport=proxy model=shapes_yolov8 \
                                 stream-id=cam-{cam} max-in-flight=4 on-error=fail"
                            ),
                            320,
                            240,
                            &frames,
                            |_| {},
                            Duration::from_secs(120),
                        );
                        (cam, rect, run)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    })
    .await
    .unwrap();
    for (cam, rect, run) in &runs {
        assert!(run.errors.is_empty(), "cam {cam}: {:?}", run.errors);
        assert_eq!(run.buffers.len(), FRAMES, "cam {cam}: every frame out");
        for b in &run.buffers {
            let d = meta::detections(b, 320, 240);
            assert_eq!(d.len(), 1, "cam {cam}: {d:?}");
            assert_eq!(d[0].label, CLASS_NAMES[rect.class], "cam {cam}");
            assert!(
                (d[0].bbox[0] - rect.x1 as f64).abs() <= 1.0,
                "cam {cam}: {d:?}"
            );
        }
    }
    let after = triton_metrics(triton.metrics_port);
    let inferences = counter(&after, "nv_inference_count", "shapes_yolov8") - n0;
    let executions = counter(&after, "nv_inference_exec_count", "shapes_yolov8") - e0;
    assert_eq!(inferences, (STREAMS * FRAMES) as f64, "{after}");
    assert!(
        executions < inferences,
        "no batching: {executions} executions for {inferences} inferences"
    );
    eprintln!(
        "{STREAMS} cameras × {FRAMES} frames: {inferences} inferences in {executions} executions"
    );
    proxy.shutdown().await.unwrap();
}

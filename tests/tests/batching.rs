//! Batching across cameras: four pipelines (`tritonletterbox ! tritoninfer transport=proxy`) share
//! one proxy and one Triton; `shapes_yolov8` declares `max_batch_size: 8` with
//! `dynamic_batching`, so Triton runs requests of different streams together. Shown from Triton's
//! own statistics (its Prometheus counters: at most 0.6 executions per inference with one request
//! in flight per camera, so that every batch joins cameras), with every frame of every stream
//! still answered with its own rectangle.

use std::time::Duration;

use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::{Triton, counter, settled_counts, triton_metrics};
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
                                 stream-id=cam-{cam} max-in-flight=1 on-error=fail"
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
    let (n1, e1) = settled_counts(
        triton.metrics_port,
        "shapes_yolov8",
        n0 + (STREAMS * FRAMES) as f64,
    );
    let (inferences, executions) = (n1 - n0, e1 - e0);
    assert_eq!(inferences, (STREAMS * FRAMES) as f64);
    // One request in flight per camera: a batch can only hold requests of different cameras.
    assert!(
        executions <= 0.6 * inferences,
        "no batching across cameras: {executions} executions for {inferences} inferences"
    );
    eprintln!(
        "{STREAMS} cameras × {FRAMES} frames: {inferences} inferences in {executions} executions"
    );
    proxy.shutdown().await.unwrap();
}

/// Sends `per_stream` packets on each of STREAMS streams for `model`, one at a time per stream
/// (the next after the Ack of the last), the streams side by side; every Ack is OK, in its
/// stream's order, with that stream's own rectangle. A batch can only join different streams.
async fn four_streams(url: &str, model: &str, per_stream: usize) {
    use gst_triton_tests::proxy::{Chat, ack_output, image_packet, shapes_note};
    let note = shapes_note(model, 64, 64, true);
    let tasks: Vec<_> = (0..STREAMS)
        .map(|s| {
            let (url, note) = (url.to_string(), note.clone());
            tokio::spawn(async move {
                let rect =
                    move |i: usize| Rect::new(4 + 10 * s as u32, (i % 20) as u32 * 2, 8, 6, s % 4);
                let mut chat = Chat::open_default(&url).await;
                for i in 0..per_stream {
                    let data = gst_triton_tests::draw_tensor(64, 64, &[rect(i)]);
                    let ack = chat
                        .roundtrip(image_packet(&format!("{s}:{i}"), &note, data))
                        .await;
                    assert_eq!(ack.correlation_id, format!("{s}:{i}"), "out of order");
                    assert_eq!(ack.status_code, 0, "{}", ack.status_message);
                    let (shape, data) = ack_output(&ack, "output0");
                    assert_eq!(
                        shape[0], 1,
                        "stream {s} packet {i}: its own part of the batch"
                    );
                    let found = gst_triton_tests::nms_rects(&gst_triton_tests::f32s(&data));
                    gst_triton_tests::assert_same_boxes(&found, &[rect(i)], 0.01);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_stacks_packets_for_a_model_without_a_batcher() {
    const MODEL: &str = "shapes_nobatcher";
    const PER_STREAM: usize = 40;
    let triton = Triton::start().unwrap();
    let counts = |at_least| settled_counts(triton.metrics_port, MODEL, at_least);
    // Without collation: one execution per packet (the model has no batcher of its own).
    let plain = TestProxy::start(&triton.url(), &[]).await.unwrap();
    let (n0, e0) = counts(0.0);
    let total = (STREAMS * PER_STREAM) as f64;
    four_streams(&plain.url(), MODEL, PER_STREAM).await;
    let (n1, e1) = counts(n0 + total);
    assert_eq!(
        (n1 - n0, e1 - e0),
        (total, total),
        "Triton batched by itself"
    );
    plain.shutdown().await.unwrap();

    // With PROXY_BATCH_MAX=4: packets of different streams go to Triton as one request.
    let stacking = TestProxy::start(
        &triton.url(),
        &["--proxy-batch-max", "4", "--proxy-batch-delay-us", "20000"],
    )
    .await
    .unwrap();
    four_streams(&stacking.url(), MODEL, PER_STREAM).await;
    let (n2, e2) = counts(n1 + total);
    let (inferences, executions) = (n2 - n1, e2 - e1);
    assert_eq!(inferences, total);
    assert!(
        executions <= total / 2.0,
        "collation: {executions} executions for {inferences} inferences"
    );
    let m = stacking.metrics().await;
    let batches = gst_triton_tests::proxy::metric(&m, "proxy_batches_total");
    let packets = gst_triton_tests::proxy::metric(&m, "proxy_batched_packets_total");
    assert_eq!((packets, batches), (total, executions), "{m}");
    eprintln!("PROXY_BATCH_MAX=4: {inferences} inferences in {executions} executions");
    stacking.shutdown().await.unwrap();
}

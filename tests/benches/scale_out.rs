//! Scale-out figures of the proxy, each mode against its baseline in the same run:
//! 1. batch collation (`PROXY_BATCH_MAX`) for a model without a batcher (`shapes_nobatcher`):
//!    Triton executions per frame and frames per second, off vs 4 vs 8;
//! 2. balancing: the proxy in front of one Triton vs two (`TRITON_URL` with two entries), frames
//!    per second and the share each Triton served (its own counters).
//!
//! 4 streams of 320×320 FP32 tensors, pipelined (PROXY_MAX_INFLIGHT 8 per stream).
//! `cargo bench -p gst-triton-tests --bench scale_out`

use std::time::Instant;

use gst_triton_tests::proxy::{Chat, TestProxy, image_packet, shapes_note};
use gst_triton_tests::triton::{Triton, counter, triton_metrics};
use gst_triton_tests::{Rect, draw_tensor};

const SIDE: usize = 320;
const STREAMS: usize = 4;
const PER_STREAM: usize = 150;

/// Sends PER_STREAM packets on each of STREAMS streams and waits for every Ack; seconds taken.
async fn drive(url: &str, model: &str) -> f64 {
    let note = shapes_note(model, SIDE, SIDE, true);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|s| {
            let (url, note) = (url.to_string(), note.clone());
            tokio::spawn(async move {
                let data = draw_tensor(
                    SIDE,
                    SIDE,
                    &[Rect::new(20 + 40 * s as u32, 30, 60, 40, s % 4)],
                );
                let mut chat = Chat::open_default(&url).await;
                let tx = chat.tx.clone();
                let sender = tokio::spawn(async move {
                    for i in 0..PER_STREAM {
                        tx.send(image_packet(&format!("{s}:{i}"), &note, data.clone()))
                            .await
                            .unwrap();
                    }
                });
                for _ in 0..PER_STREAM {
                    let ack = chat.rx.message().await.unwrap().expect("an Ack");
                    assert_eq!(ack.status_code, 0, "{}", ack.status_message);
                }
                sender.await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    t0.elapsed().as_secs_f64()
}

/// Triton's inference and execution counts for `model` on each server, once their inference
/// counts add up to `total` (Triton counts a request just after it answers it).
fn settled(ts: &[&Triton], model: &str, total: f64) -> Vec<(f64, f64)> {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c: Vec<(f64, f64)> = ts
            .iter()
            .map(|t| {
                let m = triton_metrics(t.metrics_port);
                (
                    counter(&m, "nv_inference_count", model),
                    counter(&m, "nv_inference_exec_count", model),
                )
            })
            .collect();
        if c.iter().map(|x| x.0).sum::<f64>() >= total {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{model}: Triton counted {c:?}, expected {total} inferences"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let frames = (STREAMS * PER_STREAM) as f64;
    let a = Triton::start().expect("start Triton");
    let b = Triton::start().expect("start a second Triton");
    // Inferences sent so far per model (warm-ups included), to know when Triton's counters have
    // caught up.
    let (mut nobatcher, mut nms) = (0.0, 0.0);

    println!(
        "1. collation, {STREAMS} streams × {PER_STREAM} packets of {SIDE}² FP32, model shapes_nobatcher, one Triton"
    );
    println!("| round | PROXY_BATCH_MAX | f/s | executions per frame | f/s vs off |");
    println!("| --- | --- | --- | --- | --- |");
    for round in 1..=2 {
        let mut base = 0.0;
        for max in ["0", "4", "8"] {
            let proxy = TestProxy::start(
                &a.url(),
                &["--proxy-batch-max", max, "--proxy-batch-delay-us", "5000"],
            )
            .await
            .unwrap();
            drive(&proxy.url(), "shapes_nobatcher").await; // warm-up
            nobatcher += frames;
            let (n0, e0) = settled(&[&a], "shapes_nobatcher", nobatcher)[0];
            let secs = drive(&proxy.url(), "shapes_nobatcher").await;
            nobatcher += frames;
            let (n1, e1) = settled(&[&a], "shapes_nobatcher", nobatcher)[0];
            assert_eq!(n1 - n0, frames);
            let fps = frames / secs;
            if max == "0" {
                base = fps;
            }
            println!(
                "| {round} | {max} | {fps:.1} | {:.3} | {:.2}× |",
                (e1 - e0) / frames,
                fps / base
            );
            proxy.shutdown().await.unwrap();
        }
    }

    println!(
        "\n2. balancing, {STREAMS} streams × {PER_STREAM} packets of {SIDE}² FP32, model shapes_nms"
    );
    println!("| round | upstreams | f/s | share of Triton A | share of Triton B | f/s vs one |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for round in 1..=2 {
        let mut base = 0.0;
        for list in [a.url(), format!("{},{}", a.url(), b.url())] {
            let proxy = TestProxy::start(&list, &[]).await.unwrap();
            drive(&proxy.url(), "shapes_nms").await; // warm-up
            nms += frames;
            let c0 = settled(&[&a, &b], "shapes_nms", nms);
            let secs = drive(&proxy.url(), "shapes_nms").await;
            nms += frames;
            let c1 = settled(&[&a, &b], "shapes_nms", nms);
            let (a0, b0, a1, b1) = (c0[0].0, c0[1].0, c1[0].0, c1[1].0);
            let fps = frames / secs;
            let two = list.contains(',');
            if !two {
                base = fps;
            }
            println!(
                "| {round} | {} | {fps:.1} | {:.0} % | {:.0} % | {:.2}× |",
                if two { 2 } else { 1 },
                100.0 * (a1 - a0) / frames,
                100.0 * (b1 - b0) / frames,
                fps / base
            );
            proxy.shutdown().await.unwrap();
        }
    }
}

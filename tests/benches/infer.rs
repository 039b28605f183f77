//! `appsrc ! tritonletterbox ! tritoninfer ! fakesink` against the same model fed by a plain Rust
//! client at the same concurrency (4 in flight), same run; then process RSS after 1k and 10k frames.
//! `cargo bench -p gst-triton-tests --bench infer`

use std::sync::Arc;
use std::time::Instant;

use gst::prelude::*;
use gst_triton_tests::pipeline::{Outcomes, draw_rgb, feed_and_wait, init};
use gst_triton_tests::triton::Triton;
use gst_triton_tests::{Rect, draw_tensor, plain_client_rate};

const SIZE: usize = 320; // tensor side: keeps the CPU model fast enough for 10k frames
const IN_FLIGHT: usize = 4;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn plain_client(url: &str, n: usize) -> f64 {
    let data = bytes::Bytes::from(draw_tensor(SIZE, SIZE, &[Rect::new(20, 30, 60, 40, 0)]));
    let shape = [1, 3, SIZE as i64, SIZE as i64];
    plain_client_rate(url, "shapes_nms", shape, data, n, IN_FLIGHT).await
}

/// Runs `n` frames through the pipeline; calls `at(count)` after every frame leaves tritoninfer.
/// Frames per second of ok frames; panics when any frame failed.
fn pipeline(url: &str, n: usize, at: impl Fn(u64) + Send + Sync + 'static) -> f64 {
    init();
    let (w, h) = (640usize, 480usize);
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time block=true caps=video/x-raw,format=RGB,width={w},height={h},framerate=30/1 \
         ! tritonletterbox width={SIZE} height={SIZE} ! tritoninfer name=infer url={url} transport=triton model=shapes_nms max-in-flight={IN_FLIGHT} ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let outcomes = Outcomes::watch(&p.by_name("infer").unwrap(), at);
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let frame = gst::Buffer::from_slice(draw_rgb(w, h, &[Rect::new(40, 60, 120, 80, 0)]));
    p.set_state(gst::State::Playing).unwrap();
    let t = Instant::now();
    if let Some(e) = feed_and_wait(&p, &src, &frame, n) {
        panic!("{e}");
    }
    let fps = outcomes.ok() as f64 / t.elapsed().as_secs_f64();
    p.set_state(gst::State::Null).unwrap();
    outcomes.assert_none_failed("appsrc ! tritonletterbox ! tritoninfer ! fakesink");
    fps
}

fn main() {
    let triton = Triton::start().expect("start Triton");
    let url = triton.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(plain_client(&url, 50)); // warm-up
    pipeline(&url, 50, |_| {});
    let n = 1000;
    let model_only = rt.block_on(plain_client(&url, n));
    let ours = pipeline(&url, n, |_| {});
    println!("{SIZE}x{SIZE} FP32 to shapes_nms, {IN_FLIGHT} in flight, {n} frames");
    println!(
        "plain client (model only): {model_only:.1} f/s; appsrc ! tritonletterbox ! tritoninfer ! fakesink: {ours:.1} f/s (0 errors: every frame ok); ratio {:.2}",
        ours / model_only
    );
    let marks = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let m2 = marks.clone();
    pipeline(&url, 10_000, move |c| {
        if c == 1_000 {
            m2.lock().unwrap().0 = rss_kib();
        }
        if c == 10_000 {
            m2.lock().unwrap().1 = rss_kib();
        }
    });
    let (a, b) = *marks.lock().unwrap();
    println!(
        "process RSS after 1k frames: {} MiB, after 10k: {} MiB ({:+.1}%)",
        a / 1024,
        b / 1024,
        (b as f64 - a as f64) / a as f64 * 100.0
    );
    drop(triton);
}

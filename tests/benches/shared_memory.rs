//! `tritoninfer shared-memory=system` against `none`, same run, same Triton: 640×640 RGB frames
//! through `tritonletterbox` (640² FP32, 4.9 MB) to the `identity` model (4.9 MB back), 4 in
//! flight. Prints frames per second and the CPU time per frame of the pipeline process and of
//! Triton (its whole process group, the Python backend's stubs included), and the ratios.
//! `cargo bench -p gst-triton-tests --bench shared_memory`

use std::time::Instant;

use gst::prelude::*;
use gst_triton_tests::pipeline::{Outcomes, draw_rgb, feed_and_wait, init};
use gst_triton_tests::triton::Triton;
use gst_triton_tests::{Rect, cpu_secs};

const SIDE: usize = 640;

struct Figures {
    fps: f64,
    pipeline_ms: f64,
    triton_ms: f64,
}

fn run(url: &str, triton: u32, shm: &str, n: usize) -> Figures {
    init();
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time block=true caps=video/x-raw,format=RGB,width={SIDE},height={SIDE},framerate=30/1 \
         ! tritonletterbox width={SIDE} height={SIDE} ! tritoninfer name=infer url={url} transport=triton model=identity \
           decoder=none max-in-flight=4 shared-memory={shm} ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let frame = gst::Buffer::from_slice(draw_rgb(SIDE, SIDE, &[Rect::new(40, 60, 120, 80, 0)]));
    let outcomes = Outcomes::watch(&p.by_name("infer").unwrap(), |_| {});
    p.set_state(gst::State::Playing).unwrap();
    let me = std::process::id();
    let (c0, t0, w0) = (
        cpu_secs(Some(me), None),
        cpu_secs(None, Some(triton)),
        Instant::now(),
    );
    let error = feed_and_wait(&p, &src, &frame, n);
    let wall = w0.elapsed().as_secs_f64();
    let (c1, t1) = (cpu_secs(Some(me), None), cpu_secs(None, Some(triton)));
    p.set_state(gst::State::Null).unwrap();
    if let Some(e) = error {
        panic!("{shm}: {e}");
    }
    // Only ok frames count; a run with a failed frame measures nothing.
    outcomes.assert_none_failed(&format!("shared-memory={shm}"));
    Figures {
        fps: outcomes.ok() as f64 / wall,
        pipeline_ms: (c1 - c0) * 1000.0 / n as f64,
        triton_ms: (t1 - t0) * 1000.0 / n as f64,
    }
}

fn main() {
    let triton = Triton::start().expect("start Triton");
    let (url, group) = (triton.url(), triton.group().expect("running"));
    run(&url, group, "none", 20); // warm-up: model load, connections
    run(&url, group, "system", 20);
    let n = 300;
    println!(
        "{SIDE}x{SIDE} RGB -> tritonletterbox -> {SIDE}^2 FP32 (4.9 MB) -> identity (4.9 MB back), 4 in flight, {n} frames per run"
    );
    let mut ratios = Vec::new();
    for round in 1..=3 {
        let none = run(&url, group, "none", n);
        let shm = run(&url, group, "system", n);
        for (name, f) in [("none", &none), ("system", &shm)] {
            println!(
                "round {round} shared-memory={name:6}: {:6.1} f/s, CPU per frame: pipeline {:5.2} ms, Triton {:5.2} ms, sum {:5.2} ms",
                f.fps,
                f.pipeline_ms,
                f.triton_ms,
                f.pipeline_ms + f.triton_ms
            );
        }
        let r = shm.fps / none.fps;
        let cpu = (shm.pipeline_ms + shm.triton_ms) / (none.pipeline_ms + none.triton_ms);
        println!("round {round}: system/none: f/s x{r:.2}, CPU per frame x{cpu:.2}");
        ratios.push(r);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "f/s ratio system/none over 3 rounds: {:.2}-{:.2} (goal >= 1.5)",
        ratios[0], ratios[2]
    );
}

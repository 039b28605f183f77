//! The second stage's speed in objects per second: `tritonletterbox objects=true ! tritoninfer
//! decoder=classify` with a frame's objects stacked into one batched request, against the same
//! elements sending one request per object (each object on a frame of its own), same run, same
//! server, same objects, 4 requests in flight. The frames carry their objects as ROI metas (as a
//! detector would leave them), so only the second stage is measured. Only objects given their
//! drawn colour count; a run with any failed frame or wrong colour fails after printing its
//! figures. Triton's own counters give the executions.
//! `cargo bench -p gst-triton-tests --bench objects`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gst::prelude::*;
use gst_triton_tests::pipeline::{draw_rgb, feed_and_wait, init};
use gst_triton_tests::triton::{Triton, settled_counts};
use gst_triton_tests::{CLASS_NAMES, Rect};
use gsttriton::meta;

const W: usize = 640;
const H: usize = 360;
/// Objects per frame: the classifier's `max_batch_size`.
const OBJECTS: usize = 8;
const IN_FLIGHT: usize = 4;
const MODEL: &str = "shapes_color";

/// Eight shapes, two of each colour, in two rows.
fn scene() -> Vec<Rect> {
    (0..OBJECTS)
        .map(|i| {
            let (col, row) = ((i % 4) as u32, (i / 4) as u32);
            Rect::new(
                20 + 150 * col,
                30 + 170 * row,
                90 + 6 * col,
                70 + 10 * row,
                i % 4,
            )
        })
        .collect()
}

/// The frame with `objects` (indices into [`scene`]) on it as ROI metas: what a detector leaves.
fn frame(pixels: &[u8], objects: &[usize]) -> gst::Buffer {
    let mut b = gst::Buffer::from_slice(pixels.to_vec());
    let rects = scene();
    for &i in objects {
        let r = rects[i];
        let d = meta::Detection {
            label: "shape".into(),
            class_id: 0,
            confidence: 0.9,
            bbox: [r.x1 as f64, r.y1 as f64, r.x2 as f64, r.y2 as f64],
            track: None,
        };
        meta::add_detection(b.get_mut().unwrap(), &d, W as u32, H as u32);
    }
    b
}

/// Objects that got their drawn colour, and everything else (failed frames, objects without a
/// class or with a wrong one).
#[derive(Default)]
struct Tally {
    right: AtomicU64,
    errors: AtomicU64,
}

/// Runs `frames` copies of `template` (whose objects are `objects`) through the second stage.
/// Returns right objects per second and the tally.
fn run(url: &str, template: &gst::Buffer, objects: &[usize], frames: usize) -> (f64, Arc<Tally>) {
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time block=true caps=video/x-raw,format=RGB,width={W},height={H},framerate=30/1 \
         ! tritonletterbox objects=true width=64 height=64 object-margin=0.1 max-objects={OBJECTS} \
         ! tritoninfer name=infer url={url} transport=triton model={MODEL} decoder=classify max-in-flight={IN_FLIGHT} \
         ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let tally = Arc::new(Tally::default());
    let t2 = tally.clone();
    let truth: Vec<&str> = objects
        .iter()
        .map(|&i| CLASS_NAMES[scene()[i].class])
        .collect();
    let truth: Vec<String> = truth.into_iter().map(String::from).collect();
    p.by_name("infer")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(b) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let ok = meta::result_meta(b)
                .and_then(|r| r.classifier)
                .is_some_and(|c| c.status == "ok");
            let attrs = meta::attributes(b);
            for (i, want) in truth.iter().enumerate() {
                let right = ok
                    && attrs
                        .get(i)
                        .and_then(|a| a.first())
                        .is_some_and(|a| &a.label == want);
                let c = if right { &t2.right } else { &t2.errors };
                c.fetch_add(1, Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        });
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let t = Instant::now();
    if let Some(e) = feed_and_wait(&p, &src, template, frames) {
        panic!("{e}");
    }
    let rate = tally.right.load(Ordering::SeqCst) as f64 / t.elapsed().as_secs_f64();
    p.set_state(gst::State::Null).unwrap();
    (rate, tally)
}

/// One configuration's figures: objects per second, the errors next to it, and Triton's
/// inferences and executions for it.
struct Figures {
    rate: f64,
    errors: u64,
    inferences: f64,
    executions: f64,
}

fn measure(
    triton: &Triton,
    url: &str,
    template: &gst::Buffer,
    objects: &[usize],
    frames: usize,
) -> Figures {
    let (n0, e0) = settled_counts(triton.metrics_port, MODEL, 0.0);
    let (rate, tally) = run(url, template, objects, frames);
    let sent = (frames * objects.len()) as f64;
    let (n, e) = settled_counts(triton.metrics_port, MODEL, n0 + sent);
    Figures {
        rate,
        errors: tally.errors.load(Ordering::SeqCst),
        inferences: n - n0,
        executions: e - e0,
    }
}

fn main() {
    init();
    let triton = Triton::start().expect("start Triton");
    let url = triton.url();
    let pixels = draw_rgb(W, H, &scene());
    let all: Vec<usize> = (0..OBJECTS).collect();
    let batched_frame = frame(&pixels, &all);
    let single_frame = frame(&pixels, &[3]);
    // Warm-up of both.
    run(&url, &batched_frame, &all, 20);
    run(&url, &single_frame, &[3], 20);

    let frames = 300;
    let batched = measure(&triton, &url, &batched_frame, &all, frames);
    // The same number of objects, one request each.
    let single = measure(&triton, &url, &single_frame, &[3], frames * OBJECTS);
    let objects = frames * OBJECTS;
    println!(
        "second stage ({MODEL}, 64x64 crops, {IN_FLIGHT} in flight), {objects} objects each way"
    );
    for (what, f) in [
        (format!("batched ({OBJECTS} objects per request)"), &batched),
        ("one request per object".to_string(), &single),
    ] {
        println!(
            "  {what}: {:.0} objects/s ({} errors); Triton: {:.0} inferences in {:.0} executions ({:.2} per execution)",
            f.rate,
            f.errors,
            f.inferences,
            f.executions,
            f.inferences / f.executions.max(1.0)
        );
    }
    println!(
        "  batched / one per object: {:.2}x objects/s",
        batched.rate / single.rate
    );
    assert_eq!(
        (batched.errors, single.errors),
        (0, 0),
        "objects failed or got the wrong colour: the run measures nothing"
    );
    for f in [&batched, &single] {
        assert_eq!(f.inferences, objects as f64, "Triton counted other objects");
    }
    drop(triton);
}

//! Real GStreamer pipelines fed with drawn frames.

use std::time::Duration;

use gst::prelude::*;

use crate::{PALETTE, Rect};

/// Initialises GStreamer and registers our plugin (statically) once.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst::init");
        gsttriton::plugin_register_static().expect("register triton plugin");
    });
}

/// An RGB frame `w×h` with a grey background and `rects` drawn in the palette colours.
pub fn draw_rgb(w: usize, h: usize, rects: &[Rect]) -> Vec<u8> {
    let mut f = vec![0u8; w * h * 3];
    for (i, p) in f.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i % w, i / w);
        let g = (60 + (x * 40 / w) + (y * 20 / h)) as u8; // a gentle gradient, no palette colour
        p.copy_from_slice(&[g, g, g]);
    }
    for r in rects {
        let c = PALETTE[r.class].map(|v| (v * 255.0) as u8);
        for y in r.y1 as usize..(r.y2 as usize).min(h) {
            for x in r.x1 as usize..(r.x2 as usize).min(w) {
                f[(y * w + x) * 3..][..3].copy_from_slice(&c);
            }
        }
    }
    f
}

/// What came out of a pipeline run.
pub struct Run {
    pub buffers: Vec<gst::Buffer>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// [`run_frames`] without pauses, 60 s at most, that must end without an error and with every
/// frame out: the frames as they left `middle`.
pub fn run_all(middle: &str, w: usize, h: usize, frames: &[Vec<u8>]) -> Vec<gst::Buffer> {
    let run = run_frames(middle, w, h, frames, |_| {}, Duration::from_secs(60));
    assert!(run.errors.is_empty(), "{middle}: {:?}", run.errors);
    assert_eq!(run.buffers.len(), frames.len(), "{middle}: frames out");
    run.buffers
}

/// Runs `appsrc (RGB w×h) ! <middle> ! appsink` over `frames`, pushing each with `pause` between
/// frames (and calling `between(i)` before frame i), then EOS. Collects every output buffer.
pub fn run_frames(
    middle: &str,
    w: usize,
    h: usize,
    frames: &[Vec<u8>],
    mut between: impl FnMut(usize),
    timeout: Duration,
) -> Run {
    init();
    let frame_bytes = (w * 3).next_multiple_of(4) * h;
    let desc = format!(
        "appsrc name=src format=time is-live=false block=true max-bytes={frame_bytes} caps=video/x-raw,format=RGB,width={w},height={h},framerate=30/1 \
         ! {middle} ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap_or_else(|e| panic!("{desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = out.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                o.lock().unwrap().push(sample.buffer_owned().unwrap());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    // An error stops the pipeline at once (from another thread): a push blocked on a pipeline
    // that stopped on an error would otherwise wait forever.
    let failed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let bus = pipeline.bus().unwrap();
    {
        let (failed, weak) = (failed.clone(), pipeline.downgrade());
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Error(e) = msg.view() {
                failed
                    .lock()
                    .unwrap()
                    .push(format!("{} ({:?})", e.error(), e.debug()));
                if let Some(p) = weak.upgrade() {
                    std::thread::spawn(move || {
                        let _ = p.set_state(gst::State::Null);
                    });
                }
                return gst::BusSyncReply::Drop;
            }
            gst::BusSyncReply::Pass
        });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    // GStreamer lays RGB rows out on 4-byte strides: copy the tight rows into that layout.
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w as u32, h as u32)
        .build()
        .unwrap();
    let stride = info.stride()[0] as usize;
    for (i, f) in frames.iter().enumerate() {
        between(i);
        let mut laid = vec![0u8; info.size()];
        for y in 0..h {
            laid[y * stride..y * stride + 3 * w].copy_from_slice(&f[y * 3 * w..(y + 1) * 3 * w]);
        }
        let mut b = gst::Buffer::from_slice(laid);
        {
            let b = b.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
            b.set_duration(gst::ClockTime::from_mseconds(33));
        }
        if src.push_buffer(b).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if !failed.lock().unwrap().is_empty() {
            break;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            errors.push("timeout waiting for EOS".into());
            break;
        }
        let wait = left.min(Duration::from_millis(100));
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(wait.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    bus.unset_sync_handler();
    errors.splice(0..0, std::mem::take(&mut *failed.lock().unwrap()));
    let buffers = std::mem::take(&mut *out.lock().unwrap());
    Run {
        buffers,
        errors,
        warnings,
    }
}

/// Pushes `n` copies of `frame` (30 f/s timestamps) into `src`, then EOS, and waits until the
/// pipeline reports EOS or an error; returns the error text, if any (benchmarks).
pub fn feed_and_wait(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    frame: &gst::Buffer,
    n: usize,
) -> Option<String> {
    for i in 0..n {
        let mut b = frame.copy();
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
        src.push_buffer(b).ok()?;
    }
    src.end_of_stream().ok()?;
    let msg = pipeline.bus()?.timed_pop_filtered(
        gst::ClockTime::NONE,
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => Some(format!("{} ({:?})", e.error(), e.debug())),
        _ => None,
    }
}

/// Frames that left a `tritoninfer`, by outcome: a benchmark's speed counts only `ok` ones, and
/// a run with any failed frame fails.
#[derive(Default, Debug)]
pub struct Outcomes {
    pub ok: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl Outcomes {
    /// Counts the frames leaving `infer` (a `tritoninfer`) by their result meta's status;
    /// `at(n)` is called with the number of frames so far after each one.
    pub fn watch(
        infer: &gst::Element,
        at: impl Fn(u64) + Send + Sync + 'static,
    ) -> std::sync::Arc<Outcomes> {
        use std::sync::atomic::Ordering;
        let o = std::sync::Arc::new(Outcomes::default());
        let o2 = o.clone();
        infer.static_pad("src").expect("tritoninfer src").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                let ok = info
                    .buffer()
                    .and_then(|b| gsttriton::meta::result_meta(b))
                    .is_some_and(|r| r.status == "ok");
                let c = if ok { &o2.ok } else { &o2.failed };
                c.fetch_add(1, Ordering::SeqCst);
                at(o2.ok.load(Ordering::SeqCst) + o2.failed.load(Ordering::SeqCst));
                gst::PadProbeReturn::Ok
            },
        );
        o
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Panics naming `what` when a frame failed (a benchmark of failures measures nothing).
    pub fn assert_none_failed(&self, what: &str) {
        let failed = self.failed.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            failed,
            0,
            "{what}: {failed} of {} frames failed; the run measures nothing",
            failed + self.ok()
        );
    }
}

/// A pipelines/*.pipeline file's `gst-launch-1.0` line with its variables filled in, as
/// `scripts/run-pipeline.sh` does: comment lines dropped, `${KEY}` from `value(KEY)` (required),
/// `${KEY:-default}` from `value(KEY)` or else the default. `Err` names a required key left.
pub fn expand_pipeline_file(
    text: &str,
    value: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut line: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut from = 0;
    while let Some(at) = line[from..].find("${") {
        let start = from + at;
        let end = start
            + line[start..]
                .find('}')
                .ok_or_else(|| format!("no closing brace after {}", &line[start..]))?;
        let (key, default) = match line[start + 2..end].split_once(":-") {
            Some((k, d)) => (k.to_string(), Some(d.to_string())),
            None => (line[start + 2..end].to_string(), None),
        };
        let val = value(&key)
            .or(default)
            .ok_or_else(|| format!("no value for ${{{key}}}"))?;
        line.replace_range(start..=end, &val);
        from = start + val.len();
    }
    Ok(line)
}

#[cfg(test)]
mod expand_tests {
    use super::expand_pipeline_file;

    #[test]
    fn required_keys_defaults_and_comments() {
        let text =
            "# ${IGNORED} in a comment\na location=${A} ! ${ENC:-x264enc speed=1 ! h264parse} ! b";
        let v = |k: &str| (k == "A").then(|| "in.mp4".to_string());
        assert_eq!(
            expand_pipeline_file(text, v).unwrap(),
            "a location=in.mp4 ! x264enc speed=1 ! h264parse ! b"
        );
        let v = |k: &str| Some(format!("<{k}>"));
        assert_eq!(
            expand_pipeline_file(text, v).unwrap(),
            "a location=<A> ! <ENC> ! b"
        );
        let none = |_: &str| None;
        assert_eq!(
            expand_pipeline_file(text, none).unwrap_err(),
            "no value for ${A}"
        );
    }
}

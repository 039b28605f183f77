//! How long each camera's frames spend in each part of its pipeline, as Prometheus histograms
//! (`triton_video_camera_stage_seconds{camera, stage}`), from pad probes that note when a frame
//! (by its running time) enters a part and observe the time when it leaves:
//!
//! | stage | from → to |
//! | --- | --- |
//! | `letterbox` | into `tritonletterbox` → out of it (the tensor made) |
//! | `infer` | into `tritoninfer` → out of it (waiting its turn, the round trip, decoding) |
//! | `decode` | the answer decoded into detections (`tritoninfer`'s own measure, in its result meta) |
//! | `overlay` | into `detoverlay` → out of it |
//! | `encoder` | into the encoder → out of its parser, into the muxer |
//! | `to_json` | into `tritonletterbox` → its JSON line written |
//! | `glass_to_json` | a live camera only: the frame's capture (its running time on the pipeline clock) → its JSON line written |
//!
//! The request's round trip alone is `triton_video_camera_inference_latency_seconds`.
//! GStreamer's `latency` tracer measures the same kind of thing per element, but into the debug
//! log of the whole process; probes give each camera its own histograms on the metrics port.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use prometheus_client::metrics::histogram::Histogram;

/// The stages, in the order a frame meets them.
pub const STAGES: [&str; 7] = [
    "letterbox",
    "infer",
    "decode",
    "overlay",
    "encoder",
    "to_json",
    "glass_to_json",
];

/// A latency histogram: 27 buckets from 0.25 ms, each 1.5 times the one before (to 9.5 s), so
/// that a quantile read off it is within half a bucket's width, a third of its value.
pub fn histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00025, 1.5, 27,
    ))
}

/// One camera's stage histograms, and its requests' round trips; kept across restarts of its
/// pipeline.
#[derive(Debug, Clone)]
pub struct Stages {
    stages: Arc<BTreeMap<&'static str, Histogram>>,
    /// Request sent → answered, of the ok frames (`inference_latency_seconds`).
    pub inference: Histogram,
}

impl Default for Stages {
    fn default() -> Stages {
        Stages {
            stages: Arc::new(STAGES.iter().map(|s| (*s, histogram())).collect()),
            inference: histogram(),
        }
    }
}

impl Stages {
    pub fn observe(&self, stage: &str, secs: f64) {
        if let Some(h) = self.stages.get(stage) {
            h.observe(secs);
        }
    }

    /// Each stage and its histogram, in [`STAGES`] order.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        STAGES
            .iter()
            .filter_map(|s| Some((*s, self.stages.get(s)?)))
    }
}

/// Frames seen entering a stage and not yet seen leaving it, oldest first: (running time, when).
/// Frames leave in the order they came; one that never leaves (dropped) is passed over.
#[derive(Default)]
struct InFlight(VecDeque<(gst::ClockTime, Instant)>);

/// More frames than this inside one stage means its exit is not being seen: the oldest are let go.
const MAX_IN_FLIGHT: usize = 512;

impl InFlight {
    fn enter(&mut self, pts: gst::ClockTime, now: Instant) {
        self.0.push_back((pts, now));
        if self.0.len() > MAX_IN_FLIGHT {
            self.0.pop_front();
        }
    }

    /// When the frame at running time `pts` entered, if it did; frames before it that never left
    /// are dropped.
    fn leave(&mut self, pts: gst::ClockTime) -> Option<Instant> {
        while let Some(&(p, t)) = self.0.front() {
            if p > pts {
                return None;
            }
            self.0.pop_front();
            if p == pts {
                return Some(t);
            }
        }
        None
    }
}

/// The frame's own measures, from `tritoninfer`'s result meta: the request's round trip and the
/// answer's decoding, of the ok frames.
pub fn observe_result(stages: &Stages, result: Option<&gsttriton::meta::ResultMeta>) {
    if let Some(r) = result.filter(|r| r.status == "ok") {
        stages.inference.observe(r.latency_ms / 1000.0);
        stages.observe("decode", r.decode_ms / 1000.0);
    }
}

/// A buffer's running time at `pad` (its timestamp through the pad's segment): what stays the
/// same across an element that shifts timestamps (x264enc moves them 1000 hours on, and its
/// segment with them).
fn running_time(pad: &gst::Pad, buf: &gst::BufferRef) -> Option<gst::ClockTime> {
    let pts = buf.pts()?;
    pad.sticky_event::<gst::event::Segment>(0)?
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(pts)
}

/// Observes `stage` for every frame that passes `from` and then `to` (buffer probes on both
/// pads, matched by running time).
pub fn time_between(from: &gst::Pad, to: &gst::Pad, stages: &Stages, stage: &'static str) {
    let flight = Arc::new(Mutex::new(InFlight::default()));
    let f = flight.clone();
    from.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(t) = info.buffer().and_then(|b| running_time(pad, b)) {
            f.lock().unwrap().enter(t, Instant::now());
        }
        gst::PadProbeReturn::Ok
    });
    let stages = stages.clone();
    to.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(t) = info.buffer().and_then(|b| running_time(pad, b))
            && let Some(at) = flight.lock().unwrap().leave(t)
        {
            stages.observe(stage, at.elapsed().as_secs_f64());
        }
        gst::PadProbeReturn::Ok
    });
}

/// `glass_to_json` at `pad` (the JSON sink's): the pipeline clock's running time now minus the
/// frame's running time, i.e. how long ago a live camera captured it.
pub fn time_since_capture(pad: &gst::Pad, stages: &Stages) {
    let stages = stages.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let running = info.buffer().and_then(|b| running_time(pad, b));
        let now = pad.parent_element().and_then(|e| e.current_running_time());
        if let (Some(r), Some(now)) = (running, now)
            && now >= r
        {
            stages.observe("glass_to_json", (now - r).seconds_f64());
        }
        gst::PadProbeReturn::Ok
    });
}

/// The stage probes of a camera's pipeline (its elements as `launch` names them): `live` adds
/// `glass_to_json`.
pub fn attach(pipeline: &gst::Pipeline, stages: &Stages, live: bool) {
    let pad = |name: &str, pad: &str| pipeline.by_name(name).and_then(|e| e.static_pad(pad));
    let pairs = [
        ("letterbox", ("letterbox", "sink"), ("letterbox", "src")),
        ("infer", ("infer", "sink"), ("infer", "src")),
        ("overlay", ("overlay", "sink"), ("overlay", "src")),
        ("to_json", ("letterbox", "sink"), ("json", "sink")),
    ];
    for (stage, (fe, fp), (te, tp)) in pairs {
        if let (Some(from), Some(to)) = (pad(fe, fp), pad(te, tp)) {
            time_between(&from, &to, stages, stage);
        }
    }
    // The encoder: from the pad that feeds it to the muxer's sink pad (requested when linked).
    if let (Some(from), Some(mux)) = (pad("retime", "src"), pipeline.by_name("mux"))
        && let Some(to) = mux.sink_pads().into_iter().next()
    {
        time_between(&from, &to, stages, "encoder");
    }
    if live && let Some(json) = pad("json", "sink") {
        time_since_capture(&json, stages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_leave_in_order_and_one_that_never_leaves_is_passed_over() {
        let t0 = Instant::now();
        let ms = gst::ClockTime::from_mseconds;
        let mut f = InFlight::default();
        for i in 0..4 {
            f.enter(ms(i * 100), t0);
        }
        assert_eq!(f.leave(ms(0)), Some(t0));
        // Frame 100 was dropped inside the stage: 200 still matches, 100 is gone.
        assert_eq!(f.leave(ms(200)), Some(t0));
        assert_eq!(f.leave(ms(100)), None);
        // A frame that never entered matches nothing and takes nothing later.
        assert_eq!(f.leave(ms(250)), None);
        assert_eq!(f.leave(ms(300)), Some(t0));
        assert!(f.0.is_empty());
        for i in 0..(MAX_IN_FLIGHT as u64 + 10) {
            f.enter(ms(i), t0);
        }
        assert_eq!(f.0.len(), MAX_IN_FLIGHT, "bounded");
    }

    #[test]
    fn every_stage_has_its_histogram_in_order() {
        let s = Stages::default();
        s.observe("overlay", 0.003);
        s.observe("no-such-stage", 1.0);
        let names: Vec<&str> = s.each().map(|(n, _)| n).collect();
        assert_eq!(names, STAGES);
    }
}

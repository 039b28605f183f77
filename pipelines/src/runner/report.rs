//! What `triton-video` tells its user: per-frame statistics gathered by a pad probe, the progress
//! line while it runs, and the summary at the end.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst::prelude::*;

#[derive(Default)]
pub struct Stats {
    pub frames: u64,
    pub ok: u64,
    pub errors: u64,
    pub skipped: u64,
    /// Frames made while the camera was away (`tritoncamerasrc`).
    pub no_signal: u64,
    /// The annotated recording's file name in RESULTS_DIR; empty: none (ENCODER=none).
    pub recording: &'static str,
    /// The encoder `ENCODER` chose and why; empty: none.
    pub encoder: String,
    /// The video decoders that ran (found in the pipeline at the end); empty: not known.
    pub decoder: String,
    pub per_class: BTreeMap<String, u64>,
    /// The latencies (ms) of the last [`LATENCY_WINDOW`] ok frames, for the summary's mean and
    /// p95 (a camera runs for days: the window keeps the memory bounded).
    pub latencies: VecDeque<f64>,
    /// Sum (ms) and count of every ok frame's latency, for the metrics.
    pub latency_sum_ms: f64,
    pub last_error: String,
    /// Frames whose timestamp `ptsrepair` replaced before the encoder (missing, repeated or
    /// going back in the input).
    pub retimed: u64,
}

/// The video decoders in `pipeline` (those `decodebin` picked: a hardware one where GStreamer
/// has it), by factory name, comma-separated; empty when none is found.
pub fn video_decoders(pipeline: &gst::Pipeline) -> String {
    let mut names: Vec<String> = pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.factory())
        .filter(|f| {
            let k = f.metadata("klass").unwrap_or_default();
            k.contains("Decoder") && k.contains("Video")
        })
        .map(|f| f.name().to_string())
        .collect();
    names.sort();
    names.dedup();
    names.join(", ")
}

/// How many of the latest latencies the summary's mean and p95 cover.
pub const LATENCY_WINDOW: usize = 10_000;

impl Stats {
    /// Counts one frame leaving `tritoninfer` (`w`×`h`: its size, to read the ROI metas); the
    /// frame's result meta, read once here, for whoever needs it too.
    pub fn count(
        &mut self,
        buf: &gst::BufferRef,
        w: u32,
        h: u32,
    ) -> Option<gsttriton::meta::ResultMeta> {
        self.frames += 1;
        let result = gsttriton::meta::result_meta(buf);
        if let Some(r) = &result {
            match r.status.as_str() {
                "ok" => {
                    self.ok += 1;
                    self.latency_sum_ms += r.latency_ms;
                    if self.latencies.len() == LATENCY_WINDOW {
                        self.latencies.pop_front();
                    }
                    self.latencies.push_back(r.latency_ms);
                }
                "skipped" => self.skipped += 1,
                "no-signal" => self.no_signal += 1,
                _ => {
                    self.errors += 1;
                    self.last_error = r.error.clone();
                }
            }
        }
        for d in gsttriton::meta::detections(buf, w, h) {
            *self.per_class.entry(d.label).or_default() += 1;
        }
        result
    }

    /// Mean and 95th percentile of the latencies of the ok frames, in ms.
    pub fn latency(&self) -> (f64, f64) {
        let mut lat: Vec<f64> = self.latencies.iter().copied().collect();
        lat.sort_by(f64::total_cmp);
        if lat.is_empty() {
            return (0.0, 0.0);
        }
        let mean = lat.iter().sum::<f64>() / lat.len() as f64;
        let p95 = lat[((lat.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)];
        (mean, p95)
    }

    /// The summary printed at the end of a run.
    pub fn summary(&self, elapsed: Duration, results_dir: &str) -> String {
        let (mean, p95) = self.latency();
        let dir = results_dir.trim_end_matches('/');
        let detections = if self.per_class.is_empty() {
            "none".to_string()
        } else {
            self.per_class
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let no_signal = if self.no_signal > 0 {
            format!(", {} no-signal", self.no_signal)
        } else {
            String::new()
        };
        let mut s = format!(
            "frames:      {} ({} ok, {} errors, {} skipped{no_signal}) in {:.1} s\n\
             detections:  {detections}\n\
             latency:     mean {mean:.1} ms, p95 {p95:.1} ms\n",
            self.frames,
            self.ok,
            self.errors,
            self.skipped,
            elapsed.as_secs_f64()
        );
        if self.errors > 0 {
            s.push_str(&format!("last error:  {}\n", self.last_error));
        }
        if !self.decoder.is_empty() {
            s.push_str(&format!("decoder:     {}\n", self.decoder));
        }
        if self.recording.is_empty() {
            s.push_str("annotated:   none (ENCODER=none)\n");
        } else {
            if !self.encoder.is_empty() {
                s.push_str(&format!("encoder:     {}\n", self.encoder));
            }
            s.push_str(&format!("annotated:   {dir}/{}\n", self.recording));
            if self.retimed > 0 {
                s.push_str(&format!(
                    "timestamps:  {} frames retimed for the recording (missing, repeated or going back in the input)\n",
                    self.retimed
                ));
            }
        }
        s.push_str(&format!("counts:      {dir}/frame_counts.jsonl"));
        s
    }
}

/// Calls `f` with every buffer leaving `pad`, its width, height and frame duration (ns).
pub fn on_frame(
    pad: &gst::Pad,
    f: impl Fn(&gst::BufferRef, u32, u32, u64) + Send + Sync + 'static,
) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buf) = info.buffer() {
            let (w, h, dur) = frame_info(pad);
            f(buf, w, h, dur);
        }
        gst::PadProbeReturn::Ok
    });
}

/// A camera's latest counts: its frame (tritoninfer's number), timestamp and `detcount`'s results.
#[derive(Debug, Clone, Default)]
pub struct LastCounts {
    pub frame: Option<u64>,
    pub pts_ns: Option<u64>,
    pub counts: gsttriton::meta::Counts,
}

/// The counts as `GET /api/cameras/{name}/counts` shows them: `frame`, `pts_ns`, `lines`
/// (crossings so far per line, direction and class) and `zones` (objects in each zone now), the
/// words of the JSON lines. Built when asked for, not per frame.
pub fn counts_json(last: &LastCounts) -> serde_json::Value {
    let mut v = serde_json::json!({"frame": last.frame, "pts_ns": last.pts_ns});
    gsttriton::jsonsink::counts::add_counts(&mut v, &last.counts);
    if let Some(m) = v.as_object_mut() {
        m.remove("events");
    }
    v
}

/// Width, height and one frame's duration in ns from a pad's current caps, read once per frame
/// (0×0 before negotiation; duration 0 when the frame rate is unknown or variable).
pub fn frame_info(pad: &gst::Pad) -> (u32, u32, u64) {
    let Some(caps) = pad.current_caps() else {
        return (0, 0, 0);
    };
    let Some(s) = caps.structure(0) else {
        return (0, 0, 0);
    };
    let dur = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map_or(0, |f| {
            (1_000_000_000u128 * f.denom() as u128 / f.numer() as u128) as u64
        });
    (
        s.get::<i32>("width").unwrap_or(0) as u32,
        s.get::<i32>("height").unwrap_or(0) as u32,
        dur,
    )
}

/// Exit code of a run in which no frame could be decoded from VIDEO_PATH.
pub const EXIT_UNDECODABLE: i32 = 4;

/// Exit code of a run whose camera stayed away longer than CAMERA_GIVE_UP_SECS.
pub const EXIT_CAMERA_GONE: i32 = 5;

/// Whether a bus message comes from the camera source (`tritoncamerasrc`).
pub fn is_camera(src: &gst::Object) -> bool {
    src.type_().name() == "GstTritonCameraSrc"
}

/// Whether `src` (the origin of a bus message) is part of reading the input: the source and
/// what decodebin/uridecodebin made (named `source`/`input` by [`super::launch`]), as opposed
/// to our elements, the encoder or the sinks.
pub fn is_input_element(src: &gst::Object, pipeline: &gst::Pipeline) -> bool {
    let input: Vec<gst::Element> = ["source", "input"]
        .iter()
        .filter_map(|n| pipeline.by_name(n))
        .collect();
    let mut cur = Some(src.clone());
    while let Some(o) = cur {
        if input.iter().any(|i| i.upcast_ref::<gst::Object>() == &o) {
            return true;
        }
        cur = o.parent();
    }
    false
}

/// Frames in the whole input (duration × frame rate), capped by MAX_FRAMES; `None` when unknown.
pub fn total_frames(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    max_frames: Option<u64>,
) -> Option<u64> {
    let d = pipeline.query_duration::<gst::ClockTime>()?;
    let f = pad
        .current_caps()?
        .structure(0)?
        .get::<gst::Fraction>("framerate")
        .ok()?;
    let t = frames_in(d.nseconds(), f.numer(), f.denom());
    Some(max_frames.map_or(t, |m| t.min(m)))
}

/// Frames in `duration_ns` at `num`/`den` frames per second, to the nearest whole frame.
pub fn frames_in(duration_ns: u64, num: i32, den: i32) -> u64 {
    (duration_ns as f64 * num as f64 / (1e9 * den.max(1) as f64)).round() as u64
}

/// Counts the packets of video that `decodebin` demuxes in `pipeline`: those reaching its video
/// parsers, or its video decoders where there is no parser. Frames a decoder could not decode
/// are told apart so from frames a file never had (variable frame rate files and AVI's repeated
/// frames leave gaps in the timestamps too). Counted before the parser because a parser may
/// split one packet in two (MPEG-4 "packed B-frames") of which the decoder shows one.
pub fn count_decoder_packets(pipeline: &gst::Pipeline) -> Arc<DemuxedPackets> {
    let n = Arc::new(DemuxedPackets::default());
    let counter = n.clone();
    pipeline.connect_deep_element_added(move |_, _, e| {
        let klass = e
            .factory()
            .and_then(|f| f.metadata("klass").map(str::to_string))
            .unwrap_or_default();
        if !klass.contains("Video") {
            return;
        }
        let into_parsers = if klass.contains("Parser") {
            true
        } else if klass.contains("Decoder") {
            false
        } else {
            return;
        };
        if let Some(pad) = e.static_pad("sink") {
            let c = counter.clone();
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    let k = match &info.data {
                        Some(gst::PadProbeData::BufferList(l)) => l.len() as u64,
                        _ => 1,
                    };
                    let to = if into_parsers {
                        &c.parsers
                    } else {
                        &c.decoders
                    };
                    to.fetch_add(k, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
    });
    n
}

/// Packets of video into the parsers and into the decoders.
#[derive(Default)]
pub struct DemuxedPackets {
    parsers: AtomicU64,
    decoders: AtomicU64,
}

impl DemuxedPackets {
    /// The packets the demuxer gave: into the parsers when there are any.
    pub fn get(&self) -> u64 {
        match self.parsers.load(Ordering::Relaxed) {
            0 => self.decoders.load(Ordering::Relaxed),
            n => n,
        }
    }
}

/// The warning for a run whose decoders gave fewer frames than packets reached them (a decoder
/// drops what it cannot decode, silently); one frame of slack.
pub fn lost_frames_warning(video: &str, frames: u64, packets: u64) -> Option<String> {
    (frames + 1 < packets).then(|| {
        format!(
            "VIDEO_PATH: only {frames} of the {packets} frames in {video} could be decoded (damaged?); \
             the results cover the frames that decoded"
        )
    })
}

/// One progress line: a bar with ETA when the total is known, else a plain count.
pub fn progress_line(frames: u64, errors: u64, fps: f64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => {
            let pct = (frames as f64 / t as f64).min(1.0);
            let eta = if fps > 0.0 {
                t.saturating_sub(frames) as f64 / fps
            } else {
                0.0
            };
            let bar: String = (0..30)
                .map(|i| if (i as f64) < pct * 30.0 { '#' } else { '.' })
                .collect();
            format!("[{bar}] {frames}/{t} frames {fps:.1} fps ETA {eta:.0}s errors {errors}")
        }
        _ => format!("{frames} frames {fps:.1} fps errors {errors}"),
    }
}

/// Prints a line for the user on stderr, with the credentials of every URI the run was given
/// scrubbed (GStreamer's errors and parsers' messages may quote a URI or a line with one).
pub fn say(msg: impl std::fmt::Display) {
    eprintln!("{}", triton_endpoint::redact::scrub(&msg.to_string()));
}

/// Keeps the credentials in the run's URIs (VIDEO_PATH, the server address) for [`say`].
pub fn remember_secrets(a: &super::args::Args) {
    use triton_endpoint::redact::remember;
    for uri in [
        a.video_path.as_deref(),
        Some(a.triton_url.as_str()),
        Some(a.mm_addr.as_str()),
    ]
    .into_iter()
    .flatten()
    {
        remember(uri);
        if !uri.contains("://") {
            remember(&triton_endpoint::normalize_url(uri));
        }
    }
}

/// Prints a progress line: rewritten in place on a terminal, one line each otherwise.
pub fn print_progress(line: &str, tty: bool) {
    if tty {
        eprint!("\r{line}   ");
    } else {
        eprintln!("{line}");
    }
    let _ = std::io::stderr().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_mean_and_p95() {
        let mut s = Stats::default();
        assert_eq!(s.latency(), (0.0, 0.0));
        s.latencies = (1..=20).rev().map(f64::from).collect();
        assert_eq!(s.latency(), (10.5, 19.0));
    }

    #[test]
    fn summary_lists_classes_and_the_last_error() {
        let mut s = Stats {
            frames: 5,
            ok: 3,
            errors: 1,
            skipped: 1,
            last_error: "boom".into(),
            latencies: vec![2.0, 4.0, 6.0].into(),
            recording: "annotated.mp4",
            ..Default::default()
        };
        s.per_class.insert("red".into(), 3);
        s.per_class.insert("blue".into(), 1);
        let t = s.summary(Duration::from_millis(1500), "out/");
        assert_eq!(
            t,
            "frames:      5 (3 ok, 1 errors, 1 skipped) in 1.5 s\n\
             detections:  blue 1, red 3\n\
             latency:     mean 4.0 ms, p95 6.0 ms\n\
             last error:  boom\n\
             annotated:   out/annotated.mp4\n\
             counts:      out/frame_counts.jsonl"
        );
        let none = Stats::default().summary(Duration::ZERO, "r");
        assert!(none.contains("detections:  none\n"), "{none}");
        assert!(
            none.ends_with("annotated:   none (ENCODER=none)\ncounts:      r/frame_counts.jsonl"),
            "{none}"
        );
        assert!(!none.contains("last error"), "{none}");
        s.retimed = 2;
        assert!(
            s.summary(Duration::ZERO, "r").contains(
                "annotated:   r/annotated.mp4\ntimestamps:  2 frames retimed for the recording"
            ),
            "{}",
            s.summary(Duration::ZERO, "r")
        );
    }

    #[test]
    fn progress_with_and_without_a_total() {
        assert_eq!(
            progress_line(15, 2, 5.0, Some(30)),
            "[###############...............] 15/30 frames 5.0 fps ETA 3s errors 2"
        );
        assert_eq!(progress_line(7, 0, 2.5, None), "7 frames 2.5 fps errors 0");
        assert_eq!(
            progress_line(7, 0, 2.5, Some(0)),
            "7 frames 2.5 fps errors 0"
        );
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;

    #[test]
    fn frames_in_a_file_at_integer_and_ntsc_rates() {
        // 270 frames at 23.976 f/s (24000/1001): 11.26125 s.
        assert_eq!(frames_in(11_261_250_000, 24000, 1001), 270);
        assert_eq!(
            frames_in(11_250_000_000, 24000, 1001),
            270,
            "a duration to the last pts"
        );
        assert_eq!(frames_in(9_009_000_000, 30000, 1001), 270);
        assert_eq!(frames_in(3_000_000_000, 30, 1), 90);
        assert_eq!(frames_in(3_000_000_000, 30, 0), 90, "den 0 taken as 1");
    }

    #[test]
    fn lost_frames_are_packets_the_decoder_gave_no_frame_for() {
        assert_eq!(lost_frames_warning("v", 90, 90), None);
        assert_eq!(lost_frames_warning("v", 89, 90), None, "one frame of slack");
        assert_eq!(lost_frames_warning("v", 68, 0), None, "no decoder seen");
        let w = lost_frames_warning("in.mp4", 79, 90).unwrap();
        assert!(
            w.starts_with("VIDEO_PATH: only 79 of the 90 frames in in.mp4"),
            "{w}"
        );
    }
}

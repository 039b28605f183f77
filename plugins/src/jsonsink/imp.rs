use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::counts::{self, Summary};
use crate::meta;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "detjsonsink",
        gst::DebugColorFlags::empty(),
        Some("Detections as JSON lines"),
    )
});

#[derive(Clone)]
struct Settings {
    location: String,
    stream_id: String,
    include_detections: bool,
    report_interval: u32,
    flush_interval_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: "frame_counts.jsonl".into(),
            stream_id: "cam-001".into(),
            include_detections: true,
            report_interval: 0,
            flush_interval_ms: 0,
        }
    }
}

struct State {
    /// The settings as they were at start (all properties are mutable only in READY).
    settings: Settings,
    out: BufWriter<File>,
    width: u32,
    height: u32,
    next_frame: u64,
    /// `report-interval`: the interval being summed up.
    summary: Option<Summary>,
    /// When the lines were last handed to the file (`flush-interval-ms`).
    flushed: std::time::Instant,
}

#[derive(Default)]
pub struct DetJsonSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DetJsonSink {
    const NAME: &'static str = "GstDetJsonSink";
    type Type = super::DetJsonSink;
    type ParentType = gst_base::BaseSink;
}

impl DetJsonSink {
    fn line(&self, st: &mut State, buf: &gst::BufferRef) -> String {
        let result = meta::result_meta(buf);
        let frame = match &result {
            Some(r) if !r.status.is_empty() => r.frame,
            _ => st.next_frame,
        };
        st.next_frame = frame + 1;
        let dets = meta::detections(buf, st.width, st.height);
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &dets {
            *counts.entry(d.label.as_str()).or_default() += 1;
        }
        let r = result.unwrap_or(meta::ResultMeta {
            status: "none".into(),
            ..Default::default()
        });
        let round = |v: f64| (v * 100.0).round() / 100.0;
        let mut obj = serde_json::json!({
            "stream_id": st.settings.stream_id,
            "frame": frame,
            "pts_ns": buf.pts().map(|p| p.nseconds()),
            "timestamp": super::rfc3339(std::time::SystemTime::now()),
            "model": r.model,
            "model_version": r.model_version,
            "status": r.status,
            "latency_ms": round(r.latency_ms),
            "width": st.width,
            "height": st.height,
            "counts": counts,
        });
        if !r.error.is_empty() {
            obj["error"] = r.error.clone().into();
        }
        if let Some(c) = &r.classifier {
            let mut o = serde_json::json!({
                "model": c.model,
                "status": c.status,
                "sent": c.sent,
                "classified": c.classified,
                "cached": c.cached,
            });
            if !c.error.is_empty() {
                o["error"] = c.error.clone().into();
            }
            obj["classifier"] = o;
        }
        if st.settings.include_detections {
            let attrs = meta::attributes(buf);
            obj["detections"] = dets
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let mut o = serde_json::json!({
                        "label": d.label,
                        "class_id": d.class_id,
                        "confidence": (d.confidence * 10000.0).round() / 10000.0,
                        "box": d.bbox.map(round),
                    });
                    if let Some(t) = d.track {
                        o["track_id"] = t.id.into();
                        if t.predicted {
                            o["predicted"] = true.into();
                        }
                    }
                    if let Some(a) = attrs.get(i).filter(|a| !a.is_empty()) {
                        o["attributes"] = a
                            .iter()
                            .map(|a| {
                                let mut j = serde_json::json!({
                                    "model": a.model,
                                    "label": a.label,
                                    "confidence": (a.confidence * 10000.0).round() / 10000.0,
                                });
                                if a.cached {
                                    j["cached"] = true.into();
                                }
                                j
                            })
                            .collect::<Vec<_>>()
                            .into();
                    }
                    o
                })
                .collect::<Vec<_>>()
                .into();
        }
        let counts = meta::count_meta(buf);
        if let Some(c) = &counts {
            counts::add_counts(&mut obj, c);
        }
        let mut out = String::new();
        if let Some(s) = st.summary.as_mut() {
            let pts = buf.pts().map(|p| p.nseconds());
            if let Some(line) = s.observe(pts, &dets, counts) {
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
        out.push_str(&obj.to_string());
        out
    }
}

impl ObjectImpl for DetJsonSink {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("location")
                    .blurb("File to write (JSON lines)")
                    .default_value(Some(d.location.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("stream-id")
                    .blurb("Value of the stream_id field")
                    .default_value(Some(d.stream_id.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("include-detections")
                    .blurb("Write the detections array (counts are always written)")
                    .default_value(d.include_detections)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("flush-interval-ms")
                    .blurb("How long a written line may wait in memory before it reaches the file: 0 = every line at once (a reader tailing the file sees each frame as it is written); N = flushed with the first line N ms or more after the last flush (fewer writes for fast file inputs). The file is always complete at EOS and stop")
                    .maximum(60_000)
                    .default_value(d.flush_interval_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("report-interval")
                    .blurb("Every this many seconds of stream time, a summary line of that interval: frames, tracks seen, largest count per label, crossings per line, zones' peak occupancy (0 = none)")
                    .maximum(86_400)
                    .default_value(d.report_interval)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => {
                s.location = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "stream-id" => {
                s.stream_id = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "include-detections" => s.include_detections = value.get().expect("type checked"),
            "report-interval" => s.report_interval = value.get().expect("type checked"),
            "flush-interval-ms" => s.flush_interval_ms = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s.location.to_value(),
            "stream-id" => s.stream_id.to_value(),
            "include-detections" => s.include_detections.to_value(),
            "report-interval" => s.report_interval.to_value(),
            "flush-interval-ms" => s.flush_interval_ms.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for DetJsonSink {}

impl ElementImpl for DetJsonSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detections JSON lines sink",
                "Sink/Analyzer/Video",
                "Writes one JSON object per frame: status, latency, counts per label and detections (from tritoninfer's metas)",
                "gst-triton developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &gst::Caps::builder("video/x-raw").build(),
                )
                .unwrap(),
            ]
        });
        T.as_ref()
    }
}

impl BaseSinkImpl for DetJsonSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let loc = settings.location.clone();
        if loc.is_empty() {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("detjsonsink: location: expected a file path")
            ));
        }
        let f = File::create(&loc).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("detjsonsink: cannot write location '{}': {}", loc, e)
            )
        })?;
        let summary = (settings.report_interval > 0).then(|| {
            Summary::new(
                &settings.stream_id,
                u64::from(settings.report_interval) * 1_000_000_000,
            )
        });
        *self.state.lock().unwrap() = Some(State {
            settings,
            out: BufWriter::new(f),
            width: 0,
            height: 0,
            next_frame: 0,
            summary,
            flushed: std::time::Instant::now(),
        });
        gst::debug!(CAT, imp = self, "writing {loc}");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(mut st) = self.state.lock().unwrap().take() {
            st.out.flush().map_err(|e| {
                gst::error_msg!(gst::ResourceError::Write, ("detjsonsink: flush: {}", e))
            })?;
        }
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = caps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let mut st = self.state.lock().unwrap();
        if let Some(st) = st.as_mut() {
            st.width = s.get::<i32>("width").unwrap_or(0).max(0) as u32;
            st.height = s.get::<i32>("height").unwrap_or(0).max(0) as u32;
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let mut line = self.line(st, buffer);
        line.push('\n');
        let every = std::time::Duration::from_millis(st.settings.flush_interval_ms.into());
        let written = st.out.write_all(line.as_bytes()).and_then(|()| {
            if st.flushed.elapsed() < every {
                return Ok(());
            }
            st.flushed = std::time::Instant::now();
            st.out.flush()
        });
        written.map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                (
                    "detjsonsink: cannot write '{}': {}",
                    st.settings.location,
                    e
                )
            );
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view()
            && let Some(st) = self.state.lock().unwrap().as_mut()
        {
            // The interval the stream ended in, marked partial.
            let last = st.summary.as_mut().and_then(Summary::finish);
            let written = match last {
                Some(l) => writeln!(st.out, "{l}"),
                None => Ok(()),
            };
            let synced = written
                .and_then(|_| st.out.flush())
                .and_then(|_| st.out.get_ref().sync_all());
            if let Err(e) = synced {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Write,
                    ("detjsonsink: flush on EOS: {}", e)
                );
            }
        }
        self.parent_event(event)
    }
}

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::meta::{self, Detection, TrackTag};
use crate::track::{self, Params, State as TrackState, Tracker};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "dettrack",
        gst::DebugColorFlags::empty(),
        Some("Track detections across frames"),
    )
});

/// One stream's tracker and what the frames need to be read.
struct State {
    tracker: Tracker,
    width: u32,
    height: u32,
    /// The label of each track (predicted boxes carry it).
    labels: HashMap<u64, String>,
    /// The stream times each track was first and last seen (the analytics tracking mtd carries
    /// them).
    #[cfg(feature = "v1_24")]
    seen: HashMap<u64, meta::analytics::Seen>,
    /// The tracks matched on the last analysed frame: one of them not matched now was lost now.
    #[cfg(feature = "v1_24")]
    matched: std::collections::HashSet<u64>,
    /// Class keys for detections without a class id (analytics metas from other elements): one
    /// per label, so that `per-class` still keeps them apart.
    label_keys: HashMap<String, i32>,
}

#[derive(Default)]
pub struct DetTrack {
    settings: Mutex<Params>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DetTrack {
    const NAME: &'static str = "GstDetTrack";
    type Type = super::DetTrack;
    type ParentType = gst_base::BaseTransform;
}

/// What a frame's result meta says about it.
enum Kind {
    /// Detections to follow (inference ran, or another element made them).
    Detected,
    /// No inference was asked for (`interval`): the tracks' predictions stand in.
    Skipped,
    /// Inference failed, or the camera was away: the tracks age, nothing is drawn.
    Unknown,
}

fn kind(buf: &gst::BufferRef) -> Kind {
    if meta::no_signal(buf).is_some() {
        return Kind::Unknown;
    }
    match meta::result_meta(buf).map(|r| r.status) {
        Some(s) if s == "skipped" => Kind::Skipped,
        Some(s) if s == "error" || s == "no-signal" => Kind::Unknown,
        _ => Kind::Detected,
    }
}

impl State {
    fn class_key(&mut self, d: &Detection) -> i32 {
        if d.class_id >= 0 {
            return d.class_id;
        }
        let n = self.label_keys.len() as i32;
        *self
            .label_keys
            .entry(d.label.clone())
            .or_insert(i32::MIN + n)
    }

    /// Follows the frame's detections and tags them with their tracks.
    fn detected(&mut self, buf: &mut gst::BufferRef) {
        let dets = meta::detections(buf, self.width, self.height);
        let input: Vec<track::Detection> = dets
            .iter()
            .map(|d| track::Detection {
                bbox: d.bbox.map(|v| v as f32),
                score: d.confidence as f32,
                class_id: self.class_key(d),
            })
            .collect();
        let frame = self.tracker.update(&input);
        for (d, id) in dets.iter().zip(&frame.ids) {
            if let Some(id) = id {
                self.labels.insert(*id, d.label.clone());
            }
        }
        self.labels
            .retain(|id, _| frame.tracks.iter().any(|t| t.id == *id));
        #[cfg(feature = "v1_24")]
        self.add_tracking_mtds(buf, &frame);
        let tags: Vec<Option<TrackTag>> = frame
            .ids
            .iter()
            .map(|i| {
                i.map(|id| TrackTag {
                    id,
                    predicted: false,
                })
            })
            .collect();
        let has_rois = buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .next()
            .is_some();
        if has_rois {
            meta::roi::tag(buf, &tags);
        } else {
            // Detections from an analytics meta only: ROI metas carry their tracks.
            for (d, t) in dets.iter().zip(&tags) {
                let d = Detection {
                    track: *t,
                    ..d.clone()
                };
                meta::add_detection(buf, &d, self.width, self.height);
            }
        }
        meta::set_tracks(buf, &frame.ids, 0);
    }

    /// The analytics tracking mtds of the frame's tracked detections (when it has a relation
    /// meta: made by tritoninfer or another element), and one marked lost for each track lost on
    /// this frame.
    #[cfg(feature = "v1_24")]
    fn add_tracking_mtds(&mut self, buf: &mut gst::BufferRef, frame: &track::Frame) {
        let now = buf.pts().unwrap_or(gst::ClockTime::ZERO);
        let seen: Vec<Option<meta::analytics::Seen>> = frame
            .ids
            .iter()
            .map(|i| {
                i.map(|id| {
                    let s = self.seen.entry(id).or_insert(meta::analytics::Seen {
                        id,
                        first: now,
                        last: now,
                    });
                    s.last = now;
                    *s
                })
            })
            .collect();
        let matched: std::collections::HashSet<u64> = frame.ids.iter().flatten().copied().collect();
        let lost: Vec<meta::analytics::Seen> = frame
            .tracks
            .iter()
            .filter(|t| t.state == TrackState::Lost)
            .filter(|t| self.matched.contains(&t.id) && !matched.contains(&t.id))
            .filter_map(|t| self.seen.get(&t.id).copied())
            .collect();
        self.matched = matched;
        let alive: std::collections::HashSet<u64> = self.labels.keys().copied().collect();
        self.seen.retain(|id, _| alive.contains(id));
        if let Err(e) = meta::analytics::add_tracks(buf, &seen) {
            gst::warning!(CAT, "GstAnalyticsTrackingMtd: {e}");
        }
        if let Err(e) = meta::analytics::add_lost(buf, &lost) {
            gst::warning!(CAT, "GstAnalyticsTrackingMtd (lost): {e}");
        }
    }

    /// A frame without inference: each followed track's predicted box, marked as predicted.
    fn skipped(&mut self, buf: &mut gst::BufferRef) {
        let (w, h) = (self.width as f32, self.height as f32);
        let mut ids = Vec::new();
        for t in self.tracker.predict() {
            if t.state != TrackState::Tracked {
                continue;
            }
            let [x1, y1, x2, y2] = t.bbox;
            let bbox = [
                x1.clamp(0.0, w),
                y1.clamp(0.0, h),
                x2.clamp(0.0, w),
                y2.clamp(0.0, h),
            ];
            if bbox[2] <= bbox[0] || bbox[3] <= bbox[1] {
                continue;
            }
            let d = Detection {
                label: self.labels.get(&t.id).cloned().unwrap_or_default(),
                class_id: t.class_id.max(-1),
                confidence: f64::from(t.score),
                bbox: bbox.map(f64::from),
                track: Some(TrackTag {
                    id: t.id,
                    predicted: true,
                }),
            };
            meta::add_detection(buf, &d, self.width, self.height);
            ids.push(Some(t.id));
        }
        let n = ids.len() as u32;
        meta::set_tracks(buf, &ids, n);
    }
}

/// The property names, in the order of [`Params`]' fields.
const PROPS: [(&str, &str); 6] = [
    (
        "high-threshold",
        "Detections at or above this confidence are matched first",
    ),
    (
        "low-threshold",
        "Detections below this confidence are ignored; between it and high-threshold they only keep existing tracks",
    ),
    (
        "new-track-threshold",
        "An unmatched detection starts a track when its confidence is at least this",
    ),
    (
        "match-cost",
        "Largest 1 - IoU of a match between a track and a high-confidence detection",
    ),
    (
        "low-match-cost",
        "Largest 1 - IoU of a match between a track and a low-confidence detection",
    ),
    (
        "unconfirmed-cost",
        "Largest 1 - IoU of a match between a track born on the last frame and a detection",
    ),
];

fn field<'a>(p: &'a mut Params, name: &str) -> &'a mut f32 {
    match name {
        "high-threshold" => &mut p.high,
        "low-threshold" => &mut p.low,
        "new-track-threshold" => &mut p.new_track,
        "match-cost" => &mut p.match_cost,
        "low-match-cost" => &mut p.low_match_cost,
        "unconfirmed-cost" => &mut p.unconfirmed_cost,
        other => unreachable!("unknown property {other}"),
    }
}

/// Settings that cannot work together, named by property.
pub fn check(p: &Params) -> Result<(), String> {
    if p.low > p.high {
        return Err(format!(
            "low-threshold ({}) must not be above high-threshold ({})",
            p.low, p.high
        ));
    }
    if p.new_track < p.high {
        return Err(format!(
            "new-track-threshold ({}) must be at least high-threshold ({}): only high-confidence detections start tracks",
            p.new_track, p.high
        ));
    }
    Ok(())
}

impl ObjectImpl for DetTrack {
    fn properties() -> &'static [glib::ParamSpec] {
        static SPECS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut d = Params::default();
            let mut v: Vec<glib::ParamSpec> = PROPS
                .iter()
                .map(|(name, blurb)| {
                    glib::ParamSpecFloat::builder(name)
                        .blurb(blurb)
                        .minimum(0.0)
                        .maximum(1.0)
                        .default_value(*field(&mut d, name))
                        .mutable_ready()
                        .build()
                })
                .collect();
            v.push(
                glib::ParamSpecUInt::builder("track-buffer")
                    .blurb("Frames a lost track is kept, at 30 frames/s (scaled by the stream's frame rate)")
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(d.buffer)
                    .mutable_ready()
                    .build(),
            );
            v.push(
                glib::ParamSpecBoolean::builder("per-class")
                    .blurb("Tracks only match detections of their own class")
                    .default_value(d.per_class)
                    .mutable_ready()
                    .build(),
            );
            v
        });
        SPECS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "track-buffer" => s.buffer = value.get().expect("type checked"),
            "per-class" => s.per_class = value.get().expect("type checked"),
            name => *field(&mut s, name) = value.get().expect("type checked"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "track-buffer" => s.buffer.to_value(),
            "per-class" => s.per_class.to_value(),
            name => field(&mut s, name).to_value(),
        }
    }
}

impl GstObjectImpl for DetTrack {}

impl ElementImpl for DetTrack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection tracker",
                "Filter/Analyzer/Video",
                "Gives each detection (ROI metas, or the analytics meta) a track id that stays with the object (ByteTrack); predicted boxes on frames without inference",
                "gst-triton developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(crate::video::any_raw_templates);
        T.as_ref()
    }
}

impl BaseTransformImpl for DetTrack {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let p = self.settings.lock().unwrap().clone();
        check(&p).map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("dettrack: {}", e)))?;
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let (width, height) =
            crate::video::frame_size(incaps).map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let s = incaps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        // Variable or unknown frame rates count as 30 f/s.
        let rate = s
            .get::<gst::Fraction>("framerate")
            .ok()
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map_or(30.0, |f| f64::from(f.numer()) / f64::from(f.denom()));
        let params = Params {
            frame_rate: rate,
            ..self.settings.lock().unwrap().clone()
        };
        let mut guard = self.state.lock().unwrap();
        match guard.as_mut() {
            // A new frame size keeps the tracks (boxes are in pixels of the frames they came
            // from; a resize mid-stream is rare); a new rate changes how long lost ones live.
            Some(st) if st.tracker.params() == &params => {
                st.width = width;
                st.height = height;
            }
            _ => {
                gst::debug!(CAT, imp = self, "tracking at {rate} f/s: {params:?}");
                *guard = Some(State {
                    tracker: Tracker::new(params),
                    width,
                    height,
                    labels: HashMap::new(),
                    label_keys: HashMap::new(),
                    #[cfg(feature = "v1_24")]
                    seen: HashMap::new(),
                    #[cfg(feature = "v1_24")]
                    matched: Default::default(),
                });
            }
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // After a seek or a new stream the objects are elsewhere: start again (with new ids).
        if matches!(
            event.type_(),
            gst::EventType::FlushStop | gst::EventType::StreamStart
        ) && let Some(st) = self.state.lock().unwrap().as_mut()
        {
            st.tracker.reset();
            st.labels.clear();
            #[cfg(feature = "v1_24")]
            {
                st.seen.clear();
                st.matched.clear();
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        match kind(buf) {
            Kind::Detected => st.detected(buf),
            Kind::Skipped => st.skipped(buf),
            Kind::Unknown => {
                st.tracker.predict();
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

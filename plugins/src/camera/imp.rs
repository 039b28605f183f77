use std::sync::{LazyLock, Mutex, Once};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{MESSAGE, Outage, redacted};
use crate::meta;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tritoncamerasrc",
        gst::DebugColorFlags::empty(),
        Some("Camera source that survives outages"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    uri: Option<String>,
    timeout_ms: u32,
    restart_ms: u32,
    give_up_secs: u32,
    on_outage: Outage,
    latency_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            uri: None,
            timeout_ms: 2000,
            restart_ms: 3000,
            give_up_secs: 0,
            on_outage: Outage::Black,
            latency_ms: 200,
        }
    }
}

/// What the element knows of the camera while it runs.
#[derive(Default)]
struct Watch {
    /// When the current outage began (the first frame made without the camera).
    away_since: Option<Instant>,
    /// Whether the camera has sent a frame yet (before that, black frames are no outage).
    seen: bool,
    outages: u64,
    gave_up: bool,
    /// The first caps of the camera itself: the output keeps them.
    fixed: bool,
    /// The application's EOS has been sent downstream: no frame follows it.
    eos_sent: bool,
}

/// The elements made at NULL→READY.
struct Parts {
    source: gst::Element,
    chain: Vec<gst::Element>,
    /// fallbacksrc's switch, found on the first frame (it is made inside fallbacksrc).
    switch: Option<gst::Element>,
    /// The camera's URI as it may be shown (credentials removed), made once.
    uri: String,
}

pub struct CameraSrc {
    srcpad: gst::GhostPad,
    settings: Mutex<Settings>,
    watch: Mutex<Watch>,
    parts: Mutex<Option<Parts>>,
}

#[glib::object_subclass]
impl ObjectSubclass for CameraSrc {
    const NAME: &'static str = "GstTritonCameraSrc";
    type Type = super::CameraSrc;
    type ParentType = gst::Bin;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("src").expect("src template");
        CameraSrc {
            srcpad: gst::GhostPad::builder_from_template(&templ)
                .name("src")
                .build(),
            settings: Mutex::new(Settings::default()),
            watch: Mutex::new(Watch::default()),
            parts: Mutex::new(None),
        }
    }
}

/// fallbacksrc comes from gst-plugins-rs, linked in; registered once per process (an installed
/// gst-plugins-rs with the same element is used as it is).
fn fallbacksrc_available() -> bool {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if gst::ElementFactory::find("fallbacksrc").is_none() {
            let _ = gstfallbackswitch::plugin_register_static();
        }
    });
    gst::ElementFactory::find("fallbacksrc").is_some()
}

impl CameraSrc {
    fn shown_uri(&self) -> String {
        let parts = self.parts.lock().unwrap();
        parts.as_ref().map(|p| p.uri.clone()).unwrap_or_default()
    }

    /// fallbacksrc (pad added later) ! videoconvert ! videoscale ! videorate ! capsfilter → src.
    fn build(&self) -> Result<(), gst::StateChangeError> {
        let s = self.settings.lock().unwrap().clone();
        let Some(uri) = s.uri.clone().filter(|u| !u.trim().is_empty()) else {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Settings,
                ("tritoncamerasrc: uri is not set; expected the camera's URI, e.g. uri=rtsp://host:554/stream")
            );
            return Err(gst::StateChangeError);
        };
        if !fallbacksrc_available() {
            gst::element_imp_error!(
                self,
                gst::CoreError::MissingPlugin,
                ("tritoncamerasrc: the fallbacksrc element could not be registered")
            );
            return Err(gst::StateChangeError);
        }
        let ms = |v: u32| gst::ClockTime::from_mseconds(v as u64).nseconds();
        let source = gst::ElementFactory::make("fallbacksrc")
            .name("camera")
            .property("uri", &uri)
            .property("enable-audio", false)
            .property("timeout", ms(s.timeout_ms))
            .property("restart-timeout", ms(s.restart_ms))
            .property("restart-on-eos", true)
            .build()
            .map_err(|_| gst::StateChangeError)?;
        let make = |f: &str| {
            gst::ElementFactory::make(f)
                .build()
                .map_err(|_| gst::StateChangeError)
        };
        let chain = vec![
            make("videoconvert")?,
            make("videoscale")?,
            // Only drops (black frames come at 30 f/s): a gap stays a gap, never a repeated
            // camera frame that would look live.
            gst::ElementFactory::make("videorate")
                .property("drop-only", true)
                .build()
                .map_err(|_| gst::StateChangeError)?,
            make("capsfilter")?,
        ];
        let obj = self.obj();
        // An RTSP source inside gets our jitter-buffer latency (rtspsrc's own is 2 s, which a
        // restart would have to wait through before the camera counts as back).
        let latency = s.latency_ms;
        obj.connect_deep_element_added(move |_, _, e| {
            match e.factory().map(|f| f.name()).as_deref() {
                Some("rtspsrc") => e.set_property("latency", latency),
                Some("uridecodebin3") => end_of_stream_restarts(e),
                _ => {}
            }
        });
        obj.add(&source).map_err(|_| gst::StateChangeError)?;
        obj.add_many(&chain).map_err(|_| gst::StateChangeError)?;
        gst::Element::link_many(&chain).map_err(|_| gst::StateChangeError)?;
        let out = chain[3].static_pad("src").expect("capsfilter src");
        self.srcpad
            .set_target(Some(&out))
            .map_err(|_| gst::StateChangeError)?;
        let sink = chain[0].static_pad("sink").expect("videoconvert sink");
        let weak = self.downgrade();
        source.connect_pad_added(move |_, pad| {
            if !pad.name().starts_with("video") {
                return;
            }
            let Some(imp) = weak.upgrade() else { return };
            imp.watch_pad(pad);
            if let Err(e) = pad.link(&sink) {
                gst::error!(CAT, imp = imp, "linking the camera's video: {e:?}");
            }
        });
        *self.parts.lock().unwrap() = Some(Parts {
            source,
            chain,
            switch: None,
            uri: redacted(&uri),
        });
        Ok(())
    }

    fn teardown(&self) {
        let _ = self.srcpad.set_target(None::<&gst::Pad>);
        if let Some(p) = self.parts.lock().unwrap().take() {
            let obj = self.obj();
            for e in std::iter::once(&p.source).chain(&p.chain) {
                let _ = e.set_state(gst::State::Null);
                let _ = obj.remove(e);
            }
        }
        *self.watch.lock().unwrap() = Watch::default();
    }

    fn watch_pad(&self, pad: &gst::Pad) {
        let weak = self.downgrade();
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| match weak.upgrade() {
                Some(imp) => imp.on_data(info),
                None => gst::PadProbeReturn::Ok,
            },
        );
    }

    /// Whether fallbacksrc's switch is showing its fallback (black) input now: its active pad
    /// has a priority other than 0 (0 is the camera).
    fn showing_fallback(&self) -> bool {
        let mut parts = self.parts.lock().unwrap();
        let Some(p) = parts.as_mut() else {
            return false;
        };
        if p.switch.is_none() {
            p.switch = p.source.downcast_ref::<gst::Bin>().and_then(|b| {
                b.iterate_all_by_element_factory_name("fallbackswitch")
                    .into_iter()
                    .flatten()
                    .next()
            });
        }
        p.switch
            .as_ref()
            .and_then(|s| s.property::<Option<gst::Pad>>("active-pad"))
            .is_some_and(|p| p.property::<u32>("priority") != 0)
    }

    fn on_data(&self, info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data {
            if let gst::EventView::Caps(c) = ev.view() {
                self.keep_first_caps(c.caps());
            }
            return gst::PadProbeReturn::Ok;
        }
        if self.watch.lock().unwrap().eos_sent {
            return drop_buffer(info);
        }
        let away = self.showing_fallback();
        let (give_up_secs, on_outage) = {
            let s = self.settings.lock().unwrap();
            (s.give_up_secs, s.on_outage)
        };
        let mut w = self.watch.lock().unwrap();
        let seen = w.seen;
        let outage_ms = match (away, w.away_since) {
            (true, None) => {
                w.away_since = Some(Instant::now());
                if w.seen {
                    w.outages += 1;
                    let n = w.outages;
                    drop(w);
                    let uri = self.shown_uri();
                    gst::warning!(CAT, imp = self, "camera {uri} lost (outage {n})");
                    self.post(&uri, "lost", n, 0);
                }
                0
            }
            (true, Some(t)) => {
                let ms = t.elapsed().as_millis() as u64;
                let give_up = Duration::from_secs(give_up_secs as u64);
                if give_up_secs > 0 && t.elapsed() >= give_up && !w.gave_up {
                    w.gave_up = true;
                    drop(w);
                    let uri = self.shown_uri();
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::NotFound,
                        (
                            "tritoncamerasrc: camera {uri} did not come back within {} s (give-up-secs)",
                            give_up_secs
                        )
                    );
                    return drop_buffer(info);
                }
                ms
            }
            (false, Some(t)) => {
                let ms = t.elapsed().as_millis() as u64;
                w.away_since = None;
                let first = !std::mem::replace(&mut w.seen, true);
                let n = w.outages;
                drop(w);
                let uri = self.shown_uri();
                if first {
                    gst::info!(CAT, imp = self, "camera {uri} up after {ms} ms");
                    self.post(&uri, "up", n, ms);
                } else {
                    gst::info!(CAT, imp = self, "camera {uri} back after {ms} ms");
                    self.post(&uri, "back", n, ms);
                }
                return gst::PadProbeReturn::Ok;
            }
            (false, None) => {
                if !w.seen {
                    w.seen = true;
                    drop(w);
                    self.post(&self.shown_uri(), "up", 0, 0);
                }
                return gst::PadProbeReturn::Ok;
            }
        };
        if on_outage == Outage::Pause || !seen {
            return drop_buffer(info);
        }
        if let Some(gst::PadProbeData::Buffer(b)) = &mut info.data {
            let uri = self.shown_uri();
            meta::add_no_signal(b.make_mut(), &meta::NoSignal { uri, outage_ms });
        }
        gst::PadProbeReturn::Ok
    }

    /// The first caps of the camera itself fix the output's size (a camera that returns at
    /// another size is scaled into it, with borders where the aspect differs) and cap its frame
    /// rate.
    fn keep_first_caps(&self, caps: &gst::CapsRef) {
        if self.showing_fallback() || self.watch.lock().unwrap().fixed {
            return;
        }
        let Some(st) = caps.structure(0) else { return };
        let mut b = gst::Caps::builder("video/x-raw");
        for f in ["width", "height", "pixel-aspect-ratio"] {
            if let Ok(v) = st.value(f) {
                b = b.field(f, v.clone());
            }
        }
        // The frame rate is capped at the camera's first, not fixed: videorate only drops, so a
        // camera that returns slower keeps its own rate (a caps change downstream) instead of
        // failing to negotiate, and the black frames follow the camera's rate.
        let max_rate = st
            .get::<gst::Fraction>("framerate")
            .ok()
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map(|f| (f.numer() as f64 / f.denom() as f64).ceil() as i32);
        let fixed = b.build();
        gst::info!(
            CAT,
            imp = self,
            "output fixed to {fixed}, at most {max_rate:?} f/s"
        );
        if let Some(p) = self.parts.lock().unwrap().as_ref() {
            if let Some(r) = max_rate {
                p.chain[2].set_property("max-rate", r.max(1));
            }
            p.chain[3].set_property("caps", &fixed);
        }
        self.watch.lock().unwrap().fixed = true;
    }

    fn post(&self, uri: &str, state: &str, outages: u64, outage_ms: u64) {
        let s = gst::Structure::builder(MESSAGE)
            .field("uri", uri)
            .field("state", state)
            .field("outages", outages)
            .field("outage-ms", outage_ms)
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }
}

/// A camera that ends its stream is restarted, as `restart-on-eos` would, but without its EOS
/// reaching fallbacksrc: fallbacksrc drops that EOS with `PadProbeReturn::Drop`, which GStreamer
/// 1.22 answers with `gst_mini_object_unref: assertion 'mini_object != NULL' failed` (the Rust
/// binding has already released the event). Our probe sits one pad upstream of fallbacksrc's (on
/// the target of the decoder's ghost pad, so it runs first), takes the EOS, and tells fallbacksrc
/// that its source failed: an error from inside its source is answered with a restart.
fn end_of_stream_restarts(decoder: &gst::Element) {
    decoder.connect_pad_added(|decoder, pad| {
        let inner = pad
            .downcast_ref::<gst::GhostPad>()
            .and_then(|g| g.target())
            .unwrap_or_else(|| pad.clone());
        let decoder = decoder.downgrade();
        inner.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if !matches!(info.event().map(|e| e.type_()), Some(gst::EventType::Eos)) {
                return gst::PadProbeReturn::Ok;
            }
            if let Some(decoder) = decoder.upgrade() {
                gst::info!(
                    CAT,
                    obj = decoder,
                    "the camera ended its stream: restarting it"
                );
                gst::element_error!(
                    decoder,
                    gst::ResourceError::Read,
                    ("the camera ended its stream")
                );
            }
            drop_buffer(info)
        });
    });
}

/// Takes the buffer (or event) and says it was handled (GStreamer 1.22 answers a plain Drop from a Rust
/// probe with a critical: the binding has already given the buffer back).
fn drop_buffer(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    drop(info.data.take());
    gst::PadProbeReturn::Handled
}

impl ObjectImpl for CameraSrc {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj()
            .add_pad(&self.srcpad)
            .expect("adding the src pad");
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("uri")
                    .nick("URI")
                    .blurb("The camera: rtsp://, rtsps://, srt://, http(s):// ... (credentials are never shown)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("timeout-ms")
                    .nick("Stall timeout")
                    .blurb("No data from the camera for this long counts as an outage")
                    .minimum(100)
                    .default_value(d.timeout_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("restart-ms")
                    .nick("Restart after")
                    .blurb("How long a (re)started camera has to bring frames before it is tried again (and again, until it is back); longer than the camera takes to start")
                    .minimum(100)
                    .default_value(d.restart_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency-ms")
                    .nick("RTSP latency")
                    .blurb("Jitter buffer of an rtsp:// camera (rtspsrc latency)")
                    .default_value(d.latency_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("give-up-secs")
                    .nick("Give up after")
                    .blurb("End with an error when the camera has been away this long (0: never)")
                    .default_value(d.give_up_secs)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("on-outage", d.on_outage)
                    .nick("On outage")
                    .blurb("black: black frames marked no-signal at the camera's rate; pause: no frames until it is back")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("outages")
                    .nick("Outages")
                    .blurb("How many times the camera went away")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "uri" => {
                s.uri = value.get().expect("type checked upstream");
                // Its credentials are scrubbed from every message that passes this bin.
                if let Some(uri) = &s.uri {
                    triton_endpoint::redact::remember(uri);
                }
            }
            "timeout-ms" => s.timeout_ms = value.get().expect("type checked upstream"),
            "restart-ms" => s.restart_ms = value.get().expect("type checked upstream"),
            "give-up-secs" => s.give_up_secs = value.get().expect("type checked upstream"),
            "on-outage" => s.on_outage = value.get().expect("type checked upstream"),
            "latency-ms" => s.latency_ms = value.get().expect("type checked upstream"),
            other => unreachable!("no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "uri" => s.uri.as_deref().map(redacted).to_value(),
            "timeout-ms" => s.timeout_ms.to_value(),
            "restart-ms" => s.restart_ms.to_value(),
            "give-up-secs" => s.give_up_secs.to_value(),
            "on-outage" => s.on_outage.to_value(),
            "latency-ms" => s.latency_ms.to_value(),
            "outages" => self.watch.lock().unwrap().outages.to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for CameraSrc {}

impl ElementImpl for CameraSrc {
    fn send_event(&self, event: gst::Event) -> bool {
        // The application's EOS (Ctrl-C under gst-launch-1.0 -e): fallbacksrc would take it for a
        // camera that ended and restart it, so it goes past fallbacksrc, into our own chain
        // (serialised there after the frame in flight); the camera's frames stop at the probe.
        if let gst::EventView::Eos(_) = event.view() {
            let first = !std::mem::replace(&mut self.watch.lock().unwrap().eos_sent, true);
            let sink = self
                .parts
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|p| p.chain[0].static_pad("sink"));
            gst::debug!(CAT, imp = self, "EOS from the application");
            return match sink {
                Some(sink) if first => sink.send_event(event),
                Some(_) => true,
                None => self.parent_send_event(event),
            };
        }
        self.parent_send_event(event)
    }

    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Triton camera source",
                "Source/Video",
                "A live camera that keeps the pipeline running while it is away: restarts it every restart-ms until it is back, treats a stalled stream as an outage, fills the gap with black frames marked no-signal (or pauses), keeps the first size and frame rate",
                "gst-triton developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_empty_simple("video/x-raw"),
                )
                .expect("src template"),
            ]
        });
        T.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            self.build()?;
        }
        let r = self.parent_change_state(transition);
        if transition == gst::StateChange::ReadyToNull || r.is_err() {
            self.teardown();
        }
        r
    }
}

impl BinImpl for CameraSrc {
    /// Messages from inside (a source that quotes the URI in an error's debug text or a progress
    /// message) leave the bin with the camera's credentials scrubbed.
    fn handle_message(&self, message: gst::Message) {
        self.parent_handle_message(super::scrub::scrubbed(message))
    }
}

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::count::{Counter, Event, Object, Rules};
use crate::meta;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "detcount",
        gst::DebugColorFlags::empty(),
        Some("Count tracked objects on lines and in zones"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    lines: String,
    zones: String,
    rules_file: String,
    normalized: bool,
    post_messages: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lines: String::new(),
            zones: String::new(),
            rules_file: String::new(),
            normalized: false,
            post_messages: true,
        }
    }
}

struct State {
    /// The rules as given (normalized or in pixels), checked at start.
    rules: Rules,
    counter: Option<Counter>,
    size: (u32, u32),
}

#[derive(Default)]
pub struct DetCount {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DetCount {
    const NAME: &'static str = "GstDetCount";
    type Type = super::DetCount;
    type ParentType = gst_base::BaseTransform;
}

/// The rules of the settings; an error names the property (or the file and its line).
fn read_rules(s: &Settings) -> Result<Rules, String> {
    let mut r = Rules {
        normalized: s.normalized,
        ..Default::default()
    };
    r.add(&s.lines, "lines", Some("line"))?;
    r.add(&s.zones, "zones", Some("zone"))?;
    if !s.rules_file.is_empty() {
        let text = std::fs::read_to_string(&s.rules_file)
            .map_err(|e| format!("rules-file {}: {e}", s.rules_file))?;
        r.add(&text, &format!("rules-file {}", s.rules_file), None)?;
    }
    if r.is_empty() {
        return Err("no rules: set lines, zones or rules-file".into());
    }
    Ok(r)
}

/// The bus message of one event: `triton-count` with `event` (the kind), the event's fields and
/// `pts` (stream time of the frame; `u64::MAX` when it has none).
fn message(e: &Event, pts: Option<gst::ClockTime>) -> gst::Structure {
    let s = meta::count::event_structure(e).build();
    let mut m = gst::Structure::new_empty("triton-count");
    m.set("event", s.name().as_str());
    for (k, v) in s.iter() {
        m.set_value(k, v.clone());
    }
    m.set("pts", pts.map_or(u64::MAX, |p| p.nseconds()));
    m
}

/// A string property's value; unset is empty.
fn text(value: &glib::Value) -> String {
    value
        .get::<Option<String>>()
        .expect("type checked")
        .unwrap_or_default()
}

impl ObjectImpl for DetCount {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("lines")
                    .blurb("Directed lines, ';' between them: NAME X1,Y1 X2,Y2 [classes=a,b]; crossing from the line's left to its right (as seen on screen going from the first point to the second) is 'in'. Changed while playing, the rules apply from the next frame: a line or zone that keeps its name keeps its counts; rules that do not parse are refused (a warning) and the old ones kept")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("zones")
                    .blurb("Polygon zones, ';' between them: NAME X1,Y1 X2,Y2 X3,Y3 ... [classes=a,b]")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("rules-file")
                    .blurb("A file of rules, one per line: 'line NAME ...' or 'zone NAME ...' ('#' comments)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("normalized")
                    .blurb("Coordinates are fractions (0-1) of the frame's width and height, not pixels")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .blurb("Post a 'triton-count' element message on the bus for every crossing, entry and exit")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if ["lines", "zones", "rules-file"].contains(&pspec.name()) {
            return self.set_rules(text(value), pspec.name());
        }
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "normalized" => s.normalized = value.get().expect("type checked"),
            "post-messages" => s.post_messages = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_string()).to_value();
        match pspec.name() {
            "lines" => opt(&s.lines),
            "zones" => opt(&s.zones),
            "rules-file" => opt(&s.rules_file),
            "normalized" => s.normalized.to_value(),
            "post-messages" => s.post_messages.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl DetCount {
    /// `lines`, `zones` or `rules-file`. Stopped, the text is kept for the next start. Running,
    /// the new rules replace the old ones from the next frame ([`Counter::replace_rules`]), or
    /// are refused with a warning that names the property, the old ones kept.
    fn set_rules(&self, text: String, name: &str) {
        let mut next = self.settings.lock().unwrap().clone();
        match name {
            "lines" => next.lines = text,
            "zones" => next.zones = text,
            _ => next.rules_file = text,
        }
        let mut guard = self.state.lock().unwrap();
        let Some(st) = guard.as_mut() else {
            *self.settings.lock().unwrap() = next;
            return;
        };
        let applied = read_rules(&next).and_then(|rules| {
            if let Some(c) = st.counter.as_mut() {
                c.replace_rules(rules.to_pixels(st.size.0, st.size.1)?);
            }
            st.rules = rules;
            Ok(())
        });
        drop(guard);
        match applied {
            Ok(()) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "{name} changed while running: new rules from the next frame"
                );
                *self.settings.lock().unwrap() = next;
            }
            Err(e) => gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                ("detcount: {name} refused while running, the rules in force kept: {e}")
            ),
        }
    }
}

impl GstObjectImpl for DetCount {}

impl ElementImpl for DetCount {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection counter",
                "Filter/Analyzer/Video",
                "Counts tracked objects (after dettrack) crossing directed lines and inside polygon zones",
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

impl BaseTransformImpl for DetCount {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().unwrap().clone();
        let rules = read_rules(&s)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("detcount: {}", e)))?;
        *self.state.lock().unwrap() = Some(State {
            rules,
            counter: None,
            size: (0, 0),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = incaps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height")) else {
            return Err(gst::loggable_error!(
                CAT,
                "caps without a frame size: {incaps}"
            ));
        };
        let size = (w as u32, h as u32);
        let mut guard = self.state.lock().unwrap();
        let st = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "not started"))?;
        if st.counter.is_some() && st.size == size {
            return Ok(());
        }
        match st.rules.to_pixels(size.0, size.1) {
            Ok(px) => {
                // A new frame size starts the positions again (the totals would mix two
                // geometries otherwise, so they start again too).
                st.counter = Some(Counter::new(px));
                st.size = size;
                Ok(())
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::LibraryError::Settings, ("detcount: {}", e));
                Err(gst::loggable_error!(CAT, "{e}"))
            }
        }
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if event.type_() == gst::EventType::FlushStop
            && let Some(c) = self
                .state
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|s| s.counter.as_mut())
        {
            c.reset();
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let post = self.settings.lock().unwrap().post_messages;
        let counts = {
            let mut guard = self.state.lock().unwrap();
            let Some(st) = guard.as_mut() else {
                return Err(gst::FlowError::NotNegotiated);
            };
            let Some(counter) = st.counter.as_mut() else {
                return Err(gst::FlowError::NotNegotiated);
            };
            let objects: Vec<Object> = meta::detections(buf, st.size.0, st.size.1)
                .into_iter()
                .filter_map(|d| {
                    Some(Object {
                        track_id: d.track?.id,
                        label: d.label,
                        bbox: d.bbox,
                    })
                })
                .collect();
            let counts = counter.frame(&objects);
            meta::add_count_meta(buf, &counts, counter.totals());
            counts
        };
        if post {
            let obj = self.obj();
            for e in &counts.events {
                let s = message(e, buf.pts());
                let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::Retimer;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "ptsrepair",
        gst::DebugColorFlags::empty(),
        Some("Gives every buffer a PTS later than the one before"),
    )
});

pub struct PtsRepair {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    retimer: Retimer,
    segment_start: u64,
}

impl PtsRepair {
    fn chain(&self, mut buf: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let pts = buf.pts().map(|t| t.nseconds());
        let fixed = {
            let mut s = self.state.lock().unwrap();
            let start = s.segment_start;
            let before = s.retimer.repaired();
            let out = s
                .retimer
                .retime(pts, buf.duration().map(|d| d.nseconds()), start);
            if s.retimer.repaired() > before {
                gst::debug!(CAT, imp = self, "PTS {:?} becomes {out} ns", pts);
            }
            out
        };
        if pts != Some(fixed) {
            // Only a repaired buffer is made writable (a copy of its header and metas when it
            // is shared, as after a tee); the pixels are never copied.
            buf.make_mut().set_pts(gst::ClockTime::from_nseconds(fixed));
        }
        self.srcpad.push(buf)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => self.state.lock().unwrap().retimer.reset(),
            gst::EventView::Segment(e) => {
                let mut s = self.state.lock().unwrap();
                s.retimer.reset();
                s.segment_start = e
                    .segment()
                    .downcast_ref::<gst::ClockTime>()
                    .and_then(|seg| seg.start())
                    .map(|t| t.nseconds())
                    .unwrap_or(0);
            }
            gst::EventView::Caps(c) => {
                if let Some(rate) = c
                    .caps()
                    .structure(0)
                    .and_then(|st| st.get::<gst::Fraction>("framerate").ok())
                {
                    self.state
                        .lock()
                        .unwrap()
                        .retimer
                        .set_framerate(rate.numer(), rate.denom());
                }
            }
            _ => {}
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for PtsRepair {
    const NAME: &'static str = "GstPtsRepair";
    type Type = super::PtsRepair;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").unwrap();
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buf| {
                PtsRepair::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |me| me.chain(buf),
                )
            })
            .event_function(|pad, parent, event| {
                PtsRepair::catch_panic_pad_function(
                    parent,
                    || false,
                    |me| me.sink_event(pad, event),
                )
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let templ = klass.pad_template("src").unwrap();
        let srcpad = gst::Pad::builder_from_template(&templ)
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        PtsRepair {
            sinkpad,
            srcpad,
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for PtsRepair {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![glib::ParamSpecUInt64::builder("repaired")
                .nick("Repaired")
                .blurb("How many buffers got a PTS of this element's (missing, repeated or going back)")
                .read_only()
                .build()]
        });
        PROPS.as_ref()
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "repaired" => self.state.lock().unwrap().retimer.repaired().to_value(),
            other => unreachable!("no property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for PtsRepair {}

impl ElementImpl for PtsRepair {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "PTS repair",
                "Filter/Video",
                "Gives every buffer a presentation timestamp later than the one before (missing, repeated or backward PTS repaired; no frame dropped)",
                "gst-triton",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            *self.state.lock().unwrap() = State::default();
        }
        self.parent_change_state(transition)
    }
}

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::record::{self, Frame};
use crate::meta::{self, Detection};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "detjsonreplay",
        gst::DebugColorFlags::empty(),
        Some("Detections recorded by detjsonsink, attached again"),
    )
});

struct State {
    frames: Vec<Frame>,
    /// The line the next frame gets.
    next: usize,
    /// After a flush (a seek) the next frame is found by its time instead.
    resync: bool,
    width: u32,
    height: u32,
    /// Half a frame, the tolerance of that search.
    half_frame_ns: u64,
    warned_end: bool,
}

#[derive(Default)]
pub struct DetJsonReplay {
    location: Mutex<String>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DetJsonReplay {
    const NAME: &'static str = "GstDetJsonReplay";
    type Type = super::DetJsonReplay;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for DetJsonReplay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .blurb("detjsonsink file to replay (JSON lines, written with include-detections=true)")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, _pspec: &glib::ParamSpec) {
        *self.location.lock().unwrap() = value
            .get::<Option<String>>()
            .expect("type checked")
            .unwrap_or_default();
    }

    fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
        self.location.lock().unwrap().to_value()
    }
}

impl GstObjectImpl for DetJsonReplay {}

impl ElementImpl for DetJsonReplay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection replay",
                "Filter/Analyzer/Video",
                "Attaches to the k-th frame the detections recorded on the k-th frame line of a detjsonsink file (tracking and counting without inference)",
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

impl State {
    /// The recorded frame for this buffer, if the file has one.
    fn take(&mut self, buf: &gst::BufferRef) -> Option<&Frame> {
        if self.resync {
            self.resync = false;
            if let Some(pts) = buf.pts() {
                // A file without times (or a time it lacks) leaves the count as it was.
                if let Some(i) = record::find_pts(&self.frames, pts.nseconds(), self.half_frame_ns)
                {
                    self.next = i;
                }
            }
        }
        let i = self.next;
        self.next += 1;
        self.frames.get(i)
    }
}

/// The recorded boxes in this stream's pixels (a file recorded at another size is scaled).
fn scaled(f: &Frame, width: u32, height: u32) -> Vec<Detection> {
    let sx = if f.width > 0 {
        f64::from(width) / f64::from(f.width)
    } else {
        1.0
    };
    let sy = if f.height > 0 {
        f64::from(height) / f64::from(f.height)
    } else {
        1.0
    };
    f.detections
        .iter()
        .map(|d| {
            let [x1, y1, x2, y2] = d.bbox;
            Detection {
                bbox: [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
                ..d.clone()
            }
        })
        .collect()
}

impl BaseTransformImpl for DetJsonReplay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let loc = self.location.lock().unwrap().clone();
        if loc.is_empty() {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("detjsonreplay: location: expected the path of a detjsonsink file")
            ));
        }
        let file = std::fs::File::open(&loc).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("detjsonreplay: cannot read location '{}': {}", loc, e)
            )
        })?;
        let frames = record::read(std::io::BufReader::new(file)).map_err(|e| {
            gst::error_msg!(gst::StreamError::Format, ("detjsonreplay: {}: {}", loc, e))
        })?;
        gst::debug!(CAT, imp = self, "{} frames recorded in {loc}", frames.len());
        *self.state.lock().unwrap() = Some(State {
            frames,
            next: 0,
            resync: false,
            width: 0,
            height: 0,
            half_frame_ns: 1_000_000_000 / 60,
            warned_end: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let (width, height) =
            crate::video::frame_size(incaps).map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let half = incaps
            .structure(0)
            .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map(|f| 500_000_000 * f.denom() as u64 / f.numer() as u64);
        if let Some(st) = self.state.lock().unwrap().as_mut() {
            st.width = width;
            st.height = height;
            if let Some(h) = half {
                st.half_frame_ns = h;
            }
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if event.type_() == gst::EventType::FlushStop
            && let Some(st) = self.state.lock().unwrap().as_mut()
        {
            st.resync = true;
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let (w, h) = (st.width, st.height);
        let Some(f) = st.take(buf) else {
            if !st.warned_end {
                st.warned_end = true;
                gst::warning!(
                    CAT,
                    imp = self,
                    "the file has {} frames; later frames pass without detections",
                    st.frames.len()
                );
            }
            return Ok(gst::FlowSuccess::Ok);
        };
        let dets = scaled(f, w, h);
        if meta::result_meta(buf).is_none() {
            meta::add_result_meta(
                buf,
                &meta::ResultMeta {
                    status: f.status.clone(),
                    model: f.model.clone(),
                    frame: f.frame,
                    detections: dets.len() as u32,
                    labels: dets.iter().map(|d| d.label.clone()).collect(),
                    ..Default::default()
                },
            );
        }
        if let Err(e) = meta::add_detections(buf, &dets, w, h) {
            gst::warning!(CAT, imp = self, "{e}");
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use super::draw::{Canvas, RgbToYuv, TextRenderer, class_colour, draw_box};
use crate::pixel::PixelFormat;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "detoverlay",
        gst::DebugColorFlags::empty(),
        Some("Draw detections"),
    )
});

/// Debian's fonts-dejavu-core.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

#[derive(Clone)]
struct Settings {
    thickness: u32,
    show_labels: bool,
    show_confidence: bool,
    font_file: String,
    font_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            thickness: 2,
            show_labels: true,
            show_confidence: true,
            font_file: DEFAULT_FONT.into(),
            font_size: 0,
        }
    }
}

struct State {
    info: gst_video::VideoInfo,
    format: PixelFormat,
    yuv: RgbToYuv,
    text: Option<TextRenderer>,
}

#[derive(Default)]
pub struct DetOverlay {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DetOverlay {
    const NAME: &'static str = "GstDetOverlay";
    type Type = super::DetOverlay;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for DetOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecUInt::builder("thickness")
                    .blurb("Box line width in pixels")
                    .minimum(1)
                    .maximum(100)
                    .default_value(d.thickness)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-labels")
                    .blurb("Draw the label above each box")
                    .default_value(d.show_labels)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-confidence")
                    .blurb("Add the confidence to the label")
                    .default_value(d.show_confidence)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("font-file")
                    .blurb("TrueType font for labels")
                    .default_value(Some(DEFAULT_FONT))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("font-size")
                    .blurb("Label text height in pixels (0 = frame height / 40, at least 12)")
                    .maximum(512)
                    .default_value(d.font_size)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "thickness" => s.thickness = value.get().expect("type checked"),
            "show-labels" => s.show_labels = value.get().expect("type checked"),
            "show-confidence" => s.show_confidence = value.get().expect("type checked"),
            "font-file" => {
                s.font_file = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_else(|| DEFAULT_FONT.into())
            }
            "font-size" => s.font_size = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "thickness" => s.thickness.to_value(),
            "show-labels" => s.show_labels.to_value(),
            "show-confidence" => s.show_confidence.to_value(),
            "font-file" => s.font_file.to_value(),
            "font-size" => s.font_size.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for DetOverlay {}

impl ElementImpl for DetOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection overlay",
                "Filter/Effect/Video",
                "Draws GstVideoRegionOfInterestMeta boxes, labels and confidences on the frame, one colour per class (per track, with #id, after dettrack)",
                "gst-triton developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(crate::video::FORMATS)
                .build();
            crate::video::src_sink_templates(&caps)
        });
        T.as_ref()
    }
}

impl BaseTransformImpl for DetOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "bad caps {incaps}"))?;
        let format = crate::video::pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format"))?;
        let (matrix, full) = crate::video::colorimetry(&info);
        let yuv = RgbToYuv::new(matrix, full);
        let s = self.settings.lock().unwrap().clone();
        let mut guard = self.state.lock().unwrap();
        // Keep the font across caps changes.
        let text = match guard.take().and_then(|st| st.text) {
            Some(t) => Some(t),
            None if s.show_labels => match TextRenderer::from_file(&s.font_file) {
                Ok(t) => Some(t),
                Err(e) => {
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::OpenRead,
                        (
                            "detoverlay: {}; drawing boxes without labels (apt-get install fonts-dejavu-core)",
                            e
                        )
                    );
                    None
                }
            },
            None => None,
        };
        *guard = Some(State {
            info,
            format,
            yuv,
            text,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Only the per-frame style, without cloning the font path every frame.
        let (thickness, show_labels, show_confidence, font_size) = {
            let s = self.settings.lock().unwrap();
            (s.thickness, s.show_labels, s.show_confidence, s.font_size)
        };
        let mut guard = self.state.lock().unwrap();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let (fw, fh) = (st.info.width(), st.info.height());
        let attrs = crate::meta::attributes(buf);
        let boxes: Vec<(i64, i64, i64, i64, i64, String, String)> =
            crate::meta::detections(buf, fw, fh)
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    // One colour per track where dettrack followed the object, else per class.
                    let id = match d.track {
                        Some(t) => t.id as i64,
                        None if d.class_id >= 0 => d.class_id as i64,
                        None => d.label.bytes().map(|b| b as i64).sum(),
                    };
                    let mut text = if show_confidence && d.class_id >= 0 {
                        format!("{} {:.2}", d.label, d.confidence)
                    } else {
                        d.label.clone()
                    };
                    if let Some(t) = d.track {
                        text = format!("#{} {text}", t.id);
                    }
                    // A second model's classes of the object, drawn under the label.
                    let classes = attrs
                        .get(i)
                        .map(|a| {
                            a.iter()
                                .map(|a| {
                                    if show_confidence {
                                        format!("{} {:.2}", a.label, a.confidence)
                                    } else {
                                        a.label.clone()
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    let (x1, y1) = (d.bbox[0].round() as i64, d.bbox[1].round() as i64);
                    (
                        x1,
                        y1,
                        d.bbox[2].round() as i64 - x1,
                        d.bbox[3].round() as i64 - y1,
                        id,
                        text,
                        classes,
                    )
                })
                .collect();
        if boxes.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &st.info)
            .map_err(|_| gst::FlowError::Error)?;
        let strides: Vec<usize> = frame.plane_stride().iter().map(|s| *s as usize).collect();
        // Planes the format lacks come back empty.
        let [p0, p1, p2, _] = frame.planes_data_mut();
        let mut canvas = Canvas {
            format: st.format,
            width: fw as usize,
            height: fh as usize,
            planes: [p0, p1, p2],
            strides: [
                strides[0],
                strides.get(1).copied().unwrap_or(0),
                strides.get(2).copied().unwrap_or(0),
            ],
            yuv: st.yuv,
        };
        let px = if font_size > 0 {
            font_size
        } else {
            (fh / 40).max(12)
        };
        for (x, y, w, h, id, text, classes) in &boxes {
            let colour = class_colour(*id);
            draw_box(&mut canvas, *x, *y, *w, *h, thickness as i64, colour);
            if show_labels && let Some(t) = st.text.as_mut() {
                let (_, th) = t.measure(text, px);
                // Above the box when there is room, else just inside its top edge.
                let base = if *y - th >= 0 { *y } else { *y + th };
                t.draw_label(&mut canvas, *x, base, text, px, colour);
                if !classes.is_empty() {
                    // Under the label: the first line inside the box (or the next one down).
                    let (_, ch) = t.measure(classes, px);
                    let under = if base > *y { base + ch } else { *y + ch };
                    t.draw_label(&mut canvas, *x, under, classes, px, colour);
                }
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

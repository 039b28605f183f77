use std::sync::atomic::Ordering;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use super::Resizer;
use super::region::{Region, RoiSpec};
use super::tensor::{DType, Layout, TensorSpec};
use crate::pixel::{PixelFormat, SrcImage, YuvToRgb};
use crate::video::{self, FORMATS, pixel_format};
use crate::{meta, model_query};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tritonletterbox",
        gst::DebugColorFlags::empty(),
        Some("Letterbox frames into model tensors"),
    )
});

/// Tensor element type property values.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonTensorDType")]
pub enum TensorDType {
    #[enum_value(name = "32-bit float", nick = "FP32")]
    Fp32 = 0,
    #[enum_value(name = "16-bit float", nick = "FP16")]
    Fp16 = 1,
    #[enum_value(name = "8-bit unsigned (raw pixels)", nick = "UINT8")]
    Uint8 = 2,
    #[enum_value(
        name = "The model's input type, asked of tritoninfer downstream (FP32 when nothing answers)",
        nick = "auto"
    )]
    Auto = 3,
}

impl TensorDType {
    /// The property value for a model input datatype this element can make.
    fn of_model(datatype: &str) -> Option<TensorDType> {
        match datatype {
            "FP32" => Some(TensorDType::Fp32),
            "FP16" => Some(TensorDType::Fp16),
            "UINT8" => Some(TensorDType::Uint8),
            _ => None,
        }
    }
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonTensorLayout")]
pub enum TensorLayout {
    #[enum_value(name = "Planar: batch, channel, height, width", nick = "NCHW")]
    Nchw = 0,
    #[enum_value(name = "Interleaved: batch, height, width, channel", nick = "NHWC")]
    Nhwc = 1,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonChannelOrder")]
pub enum ChannelOrder {
    #[enum_value(name = "Red, green, blue", nick = "RGB")]
    Rgb = 0,
    #[enum_value(name = "Blue, green, red", nick = "BGR")]
    Bgr = 1,
}

#[derive(Debug, Clone)]
struct Settings {
    width: u32,
    height: u32,
    pad_value: u32,
    scale_up: bool,
    dtype: TensorDType,
    layout: TensorLayout,
    channel_order: ChannelOrder,
    scale: f64,
    mean: String,
    std: String,
    threads: u32,
    interval: u32,
    roi: String,
    roi_normalized: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            width: 640,
            height: 640,
            pad_value: 114,
            scale_up: true,
            dtype: TensorDType::Auto,
            layout: TensorLayout::Nchw,
            channel_order: ChannelOrder::Rgb,
            scale: 1.0 / 255.0,
            mean: String::new(),
            std: String::new(),
            threads: 1,
            interval: 1,
            roi: String::new(),
            roi_normalized: false,
        }
    }
}

fn parse_triple(name: &str, s: &str, default: f32) -> Result<[f32; 3], String> {
    if s.trim().is_empty() {
        return Ok([default; 3]);
    }
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{name}: '{s}' is not a list of numbers; expected three comma-separated values, e.g. 0.485,0.456,0.406"))?;
    match v.as_slice() {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(format!(
            "{name}: '{s}' has {} values; expected 1 or 3",
            v.len()
        )),
    }
}

impl Settings {
    fn spec(&self) -> Result<TensorSpec, String> {
        let std = parse_triple("std", &self.std, 1.0)?;
        if std.iter().any(|v| *v == 0.0 || !v.is_finite()) {
            return Err(format!(
                "std: '{}' contains zero; expected non-zero values",
                self.std
            ));
        }
        Ok(TensorSpec {
            width: self.width,
            height: self.height,
            dtype: match self.dtype {
                TensorDType::Fp32 | TensorDType::Auto => DType::F32,
                TensorDType::Fp16 => DType::F16,
                TensorDType::Uint8 => DType::U8,
            },
            layout: if self.layout == TensorLayout::Nchw {
                Layout::Nchw
            } else {
                Layout::Nhwc
            },
            bgr: self.channel_order == ChannelOrder::Bgr,
            scale: self.scale as f32,
            mean: parse_triple("mean", &self.mean, 0.0)?,
            std,
            pad_value: self.pad_value as u8,
            scale_up: self.scale_up,
        })
    }
}

struct State {
    info: gst_video::VideoInfo,
    format: PixelFormat,
    yuv: YuvToRgb,
    resizer: Resizer,
    pool: gst::BufferPool,
    /// `roi`: the part of each frame the tensor is made from (`None`: the whole frame).
    region: Option<Region>,
}

#[derive(Default)]
pub struct TritonLetterbox {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Frames since start or the last flush (`interval` counts from the first frame after it).
    frames: std::sync::atomic::AtomicU64,
}

#[glib::object_subclass]
impl ObjectSubclass for TritonLetterbox {
    const NAME: &'static str = "GstTritonLetterbox";
    type Type = super::TritonLetterbox;
    type ParentType = gst_base::BaseTransform;
}

fn yuv_for(info: &gst_video::VideoInfo) -> YuvToRgb {
    let (matrix, full) = video::colorimetry(info);
    YuvToRgb::new(matrix, full)
}

impl TritonLetterbox {
    /// `dtype=auto`: the model's input type, asked of tritoninfer downstream
    /// ([`crate::model_query`]); FP32 when nothing answers or the model takes a type this element
    /// cannot make (said once per caps).
    fn model_dtype(&self) -> TensorDType {
        let asked = model_query::ask(self.obj().static_pad("src").as_ref().expect("src pad"));
        match asked.as_deref().map(|d| (d, TensorDType::of_model(d))) {
            Some((d, Some(t))) => {
                gst::info!(CAT, imp = self, "dtype=auto: the model takes {d}");
                t
            }
            Some((d, None)) => {
                gst::warning!(
                    CAT,
                    imp = self,
                    "dtype=auto: the model takes {d}, which tritonletterbox cannot make (FP32, FP16 or UINT8); making FP32"
                );
                TensorDType::Fp32
            }
            None => {
                gst::info!(
                    CAT,
                    imp = self,
                    "dtype=auto: no tritoninfer downstream knows the model; making FP32"
                );
                TensorDType::Fp32
            }
        }
    }

    fn make_state(
        &self,
        info: gst_video::VideoInfo,
        spec: &TensorSpec,
        threads: u32,
        roi: Option<RoiSpec>,
    ) -> Result<State, gst::LoggableError> {
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        let region = match roi.map(|r| r.resolve(info.width(), info.height(), format)) {
            None => None,
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => return Err(self.settings_error(e)),
        };
        let (src_w, src_h) = region.map_or((info.width(), info.height()), |r| (r.width, r.height));
        let mut resizer = Resizer::new(src_w, src_h, spec);
        if let Some(r) = region {
            resizer.geometry = resizer.geometry.at(r.x, r.y, info.width(), info.height());
            gst::info!(
                CAT,
                imp = self,
                "roi: the tensor is made from {r:?} of the frame"
            );
        }
        resizer.set_threads(threads as usize);
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(None, spec.byte_size() as u32, 2, 0);
        pool.set_config(config)
            .map_err(|e| gst::loggable_error!(CAT, "tensor pool config: {e}"))?;
        pool.set_active(true)
            .map_err(|e| gst::loggable_error!(CAT, "tensor pool: {e}"))?;
        gst::debug!(
            CAT,
            imp = self,
            "{}x{} {:?} -> {:?}: {:?}, {} thread(s), {} row loops",
            info.width(),
            info.height(),
            format,
            spec,
            resizer.geometry,
            resizer.threads(),
            resizer.simd_path()
        );
        Ok(State {
            yuv: yuv_for(&info),
            format,
            info,
            resizer,
            pool,
            region,
        })
    }

    /// A property that cannot be used with these caps: an element error naming it (the
    /// pipeline's error message), and the caps refused.
    fn settings_error(&self, e: String) -> gst::LoggableError {
        gst::element_imp_error!(
            self,
            gst::LibraryError::Settings,
            ("tritonletterbox: {}", e)
        );
        gst::loggable_error!(CAT, "{e}")
    }
}

impl ObjectImpl for TritonLetterbox {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecUInt::builder("width").nick("Width").blurb("Tensor width in pixels").minimum(1).maximum(16384).default_value(d.width).mutable_ready().build(),
                glib::ParamSpecUInt::builder("height").nick("Height").blurb("Tensor height in pixels").minimum(1).maximum(16384).default_value(d.height).mutable_ready().build(),
                glib::ParamSpecUInt::builder("pad-value").nick("Pad value").blurb("Padding pixel value (0-255, before normalisation)").maximum(255).default_value(d.pad_value).mutable_ready().build(),
                glib::ParamSpecBoolean::builder("scale-up").nick("Scale up").blurb("Enlarge frames smaller than the tensor (false: only shrink)").default_value(d.scale_up).mutable_ready().build(),
                glib::ParamSpecEnum::builder_with_default("dtype", d.dtype).nick("Data type").blurb("Tensor element type (UINT8 holds raw pixels, no normalisation); auto: the model's input type, asked of tritoninfer downstream").mutable_ready().build(),
                glib::ParamSpecEnum::builder_with_default("layout", d.layout).nick("Layout").blurb("Tensor layout").mutable_ready().build(),
                glib::ParamSpecEnum::builder_with_default("channel-order", d.channel_order).nick("Channel order").blurb("Order of the colour channels in the tensor").mutable_ready().build(),
                glib::ParamSpecDouble::builder("scale").nick("Scale").blurb("Pixel multiplier before mean/std (default 1/255)").minimum(-1e6).maximum(1e6).default_value(d.scale).mutable_ready().build(),
                glib::ParamSpecString::builder("mean").nick("Mean").blurb("Per-channel mean subtracted after scaling, in tensor channel order: 'm' or 'r,g,b' (empty = 0)").mutable_ready().build(),
                glib::ParamSpecString::builder("std").nick("Std").blurb("Per-channel divisor after the mean: 's' or 'r,g,b' (empty = 1)").mutable_ready().build(),
                glib::ParamSpecUInt::builder("threads").nick("Threads").blurb("Threads that share each frame's rows (for 4K inputs; 1 = the streaming thread only)").minimum(1).maximum(64).default_value(d.threads).mutable_ready().build(),
                glib::ParamSpecString::builder("roi").nick("Region of interest").blurb("Make the tensor from this part of the frame only: 'x,y,width,height' in pixels (fractions of the frame with roi-normalized=true); tritoninfer maps the boxes back into full-frame coordinates, clipped to the region. Empty: the whole frame").mutable_ready().build(),
                glib::ParamSpecBoolean::builder("roi-normalized").nick("ROI normalized").blurb("roi is given as fractions (0..1) of the frame's width and height").default_value(d.roi_normalized).mutable_ready().build(),
                glib::ParamSpecUInt::builder("interval").nick("Interval").blurb("Make a tensor for every Nth frame only, counted from the start and from each flush (seek); the others get a TritonSkippedMeta and tritoninfer passes them as skipped without a request").minimum(1).maximum(100_000).default_value(d.interval).mutable_ready().build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "width" => s.width = value.get().expect("type checked"),
            "height" => s.height = value.get().expect("type checked"),
            "pad-value" => s.pad_value = value.get().expect("type checked"),
            "scale-up" => s.scale_up = value.get().expect("type checked"),
            "dtype" => s.dtype = value.get().expect("type checked"),
            "layout" => s.layout = value.get().expect("type checked"),
            "channel-order" => s.channel_order = value.get().expect("type checked"),
            "scale" => s.scale = value.get().expect("type checked"),
            "mean" => {
                s.mean = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "std" => {
                s.std = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "threads" => s.threads = value.get().expect("type checked"),
            "interval" => s.interval = value.get().expect("type checked"),
            "roi" => {
                s.roi = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "roi-normalized" => s.roi_normalized = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "width" => s.width.to_value(),
            "height" => s.height.to_value(),
            "pad-value" => s.pad_value.to_value(),
            "scale-up" => s.scale_up.to_value(),
            "dtype" => s.dtype.to_value(),
            "layout" => s.layout.to_value(),
            "channel-order" => s.channel_order.to_value(),
            "scale" => s.scale.to_value(),
            "mean" => s.mean.to_value(),
            "std" => s.std.to_value(),
            "threads" => s.threads.to_value(),
            "interval" => s.interval.to_value(),
            "roi" => s.roi.to_value(),
            "roi-normalized" => s.roi_normalized.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for TritonLetterbox {}

impl ElementImpl for TritonLetterbox {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Triton letterbox",
                "Filter/Video",
                "Attaches the letterboxed, normalised model input tensor to each frame (TritonTensorMeta); the video passes unchanged",
                "gst-triton developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            video::src_sink_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for TritonLetterbox {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        meta::register();
        let s = self.settings.lock().unwrap().clone();
        s.spec().map_err(|e| {
            gst::error_msg!(gst::LibraryError::Settings, ("tritonletterbox: {}", e))
        })?;
        self.frames.store(0, Ordering::SeqCst);
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // After a seek the next frame is analysed (a tracker after tritoninfer starts again).
        if matches!(
            event.type_(),
            gst::EventType::FlushStop | gst::EventType::StreamStart
        ) {
            self.frames.store(0, Ordering::SeqCst);
        }
        self.parent_sink_event(event)
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(st) = self.state.lock().unwrap().take() {
            let _ = st.pool.set_active(false);
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "bad caps {incaps}"))?;
        let mut s = self.settings.lock().unwrap().clone();
        if s.dtype == TensorDType::Auto {
            s.dtype = self.model_dtype();
        }
        let spec = s.spec().map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let roi = RoiSpec::parse(&s.roi, s.roi_normalized).map_err(|e| self.settings_error(e))?;
        let new = self.make_state(info, &spec, s.threads, roi)?;
        if let Some(old) = self.state.lock().unwrap().replace(new) {
            let _ = old.pool.set_active(false);
        }
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let interval = self.settings.lock().unwrap().interval.max(1);
        if !self
            .frames
            .fetch_add(1, Ordering::SeqCst)
            .is_multiple_of(u64::from(interval))
        {
            meta::add_skipped(buf, interval);
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("tritonletterbox: no caps before the first buffer")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let mut tensor = state.pool.acquire_buffer(None).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                ("tritonletterbox: tensor pool: {:?}", e)
            );
            gst::FlowError::Error
        })?;
        {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&*buf, &state.info)
                .map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        (
                            "tritonletterbox: cannot map the frame as {:?}",
                            state.info.format()
                        )
                    );
                    gst::FlowError::Error
                })?;
            let n = frame.n_planes() as usize;
            let mut planes: [&[u8]; 3] = [&[], &[], &[]];
            let mut strides = [0usize; 3];
            for i in 0..n.min(3) {
                planes[i] = frame
                    .plane_data(i as u32)
                    .map_err(|_| gst::FlowError::Error)?;
                strides[i] = frame.plane_stride()[i] as usize;
            }
            let mut src = SrcImage {
                format: state.format,
                width: frame.width() as usize,
                height: frame.height() as usize,
                planes,
                strides,
            };
            if let Some(r) = state.region {
                src = r.crop(&src);
            }
            let tbuf = tensor.get_mut().expect("fresh pool buffer is writable");
            let mut map = tbuf.map_writable().map_err(|_| gst::FlowError::Error)?;
            state.resizer.run(&src, &state.yuv, map.as_mut_slice());
        }
        tensor.get_mut().expect("writable").set_pts(buf.pts());
        meta::add_tensor_meta(buf, tensor, state.resizer.spec(), &state.resizer.geometry);
        Ok(gst::FlowSuccess::Ok)
    }
}

use std::sync::atomic::Ordering;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use super::Resizer;
use super::objects::{self, Schedule, Selection};
use super::region::{Region, RoiSpec};
use super::settings::{Settings, TensorDType};
use super::tensor::TensorSpec;
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

struct State {
    info: gst_video::VideoInfo,
    format: PixelFormat,
    yuv: YuvToRgb,
    resizer: Resizer,
    pool: gst::BufferPool,
    /// `roi`: the parts of each frame the tensor is made from (none: the whole frame, through
    /// `resizer`), each with its resizer; several go as a batch of one item per region.
    regions: Vec<(Region, Resizer)>,
    /// `roi-drop-cut`, told to tritoninfer in the tensor meta.
    drop_cut: bool,
    /// `objects=true`: which detections become crops.
    objects: Option<Selection>,
    /// `objects=true`: when a tracked object is cropped again (`reclassify-interval`).
    schedule: Schedule,
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
    /// `dtype=auto`: the model's input type, as tritoninfer downstream answered
    /// ([`crate::model_query`]); FP32 when nothing answers or the model takes a type this element
    /// cannot make (said once per caps).
    fn model_dtype(&self, asked: Option<&model_query::ModelInput>) -> TensorDType {
        let asked = asked.and_then(|a| a.datatype.as_deref());
        match asked.map(|d| (d, TensorDType::of_model(d))) {
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
        s: &Settings,
        roi: &[RoiSpec],
        objects: Option<Selection>,
    ) -> Result<State, gst::LoggableError> {
        let threads = s.threads as usize;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        let (fw, fh) = (info.width(), info.height());
        let mut regions = Vec::with_capacity(roi.len());
        for spec_r in roi {
            let r = spec_r
                .resolve(fw, fh, format)
                .map_err(|e| self.settings_error(e))?;
            let mut resizer = Resizer::new(r.width, r.height, spec);
            resizer.geometry = resizer.geometry.at(r.x, r.y, fw, fh);
            resizer.set_threads(threads);
            regions.push((r, resizer));
        }
        if !regions.is_empty() {
            let list: Vec<Region> = regions.iter().map(|(r, _)| *r).collect();
            gst::info!(
                CAT,
                imp = self,
                "roi: the tensor is made from {list:?} of the frame ({} item(s) per batch)",
                list.len()
            );
        }
        // The whole frame's (objects=true maps nothing back through it).
        let mut resizer = Resizer::new(fw, fh, spec);
        resizer.set_threads(threads);
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
            regions,
            drop_cut: s.roi_drop_cut,
            objects,
            schedule: Schedule::new(s.reclassify_interval),
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

/// The planes of a mapped frame as a source image.
fn src_image<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    format: PixelFormat,
) -> Result<SrcImage<'a>, gst::FlowError> {
    let n = frame.n_planes() as usize;
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for i in 0..n.min(3) {
        planes[i] = frame
            .plane_data(i as u32)
            .map_err(|_| gst::FlowError::Error)?;
        strides[i] = frame.plane_stride()[i] as usize;
    }
    Ok(SrcImage {
        format,
        width: frame.width() as usize,
        height: frame.height() as usize,
        planes,
        strides,
    })
}

impl TritonLetterbox {
    /// The frame mapped for reading; an element error when it cannot be.
    fn map_frame<'a>(
        &self,
        buf: &'a gst::BufferRef,
        info: &gst_video::VideoInfo,
    ) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, gst::FlowError> {
        gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info).map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                (
                    "tritonletterbox: cannot map the frame as {:?}",
                    info.format()
                )
            );
            gst::FlowError::Error
        })
    }

    /// A batch of `n` tensors of the element's tensor size, item `i` written by `fill(i, frame,
    /// yuv, item)` from the mapped frame (the crops of `objects=true`, the regions of `roi=`),
    /// with the frame's timestamp. `what` names the items in the error when it cannot be made.
    fn stack(
        &self,
        buf: &gst::BufferRef,
        state: &State,
        n: usize,
        what: &str,
        mut fill: impl FnMut(usize, &SrcImage<'_>, &YuvToRgb, &mut [u8]),
    ) -> Result<gst::Buffer, gst::FlowError> {
        let size = state.resizer.spec().byte_size();
        let mut tensor = gst::Buffer::with_size(size * n).map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                ("tritonletterbox: cannot allocate {} {} tensors", n, what)
            );
            gst::FlowError::Error
        })?;
        {
            let frame = self.map_frame(buf, &state.info)?;
            let src = src_image(&frame, state.format)?;
            let tbuf = tensor.get_mut().expect("a new buffer is writable");
            let mut map = tbuf.map_writable().map_err(|_| gst::FlowError::Error)?;
            for (i, out) in map.as_mut_slice().chunks_exact_mut(size).enumerate() {
                fill(i, &src, &state.yuv, out);
            }
        }
        tensor.get_mut().expect("writable").set_pts(buf.pts());
        Ok(tensor)
    }

    /// `objects=true`: one crop per chosen object, stacked into one tensor (an empty batch when
    /// the frame has none), with the objects' places in the tensor meta. `frame`: the frame's
    /// number, for `reclassify-interval`.
    fn object_crops(
        &self,
        buf: &mut gst::BufferRef,
        state: &mut State,
        sel: &Selection,
        frame: u64,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (w, h) = (state.info.width(), state.info.height());
        let dets = meta::detections(buf, w, h);
        let schedule = &state.schedule;
        let (chosen, left_out) = sel.pick(&dets, w, h, state.format, |d| schedule.due(d, frame));
        state
            .schedule
            .sent(chosen.iter().map(|(i, _)| &dets[*i as usize]), frame);
        if left_out > 0 {
            gst::warning!(
                CAT,
                imp = self,
                "objects: {left_out} of {} objects left out of this frame's batch (at most {} per frame: max-objects, or the model's max_batch_size)",
                chosen.len() + left_out,
                sel.max
            );
        }
        let spec = state.resizer.spec().clone();
        let tensor = self.stack(buf, state, chosen.len(), "object", |i, src, yuv, out| {
            let r = chosen[i].1;
            Resizer::new(r.width, r.height, &spec).run(&r.crop(src), yuv, out);
        })?;
        let places: Vec<u32> = chosen.iter().map(|c| c.0).collect();
        meta::add_tensor_meta(
            buf,
            tensor,
            &spec,
            &state.resizer.geometry,
            meta::Items::Objects(&places),
            false,
        );
        Ok(gst::FlowSuccess::Ok)
    }

    /// `roi=` with several regions: one item per region, stacked into one tensor (one batched
    /// request), with each region's geometry in the tensor meta.
    fn region_batch(
        &self,
        buf: &mut gst::BufferRef,
        state: &mut State,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let spec = state.resizer.spec().clone();
        let mut regions = std::mem::take(&mut state.regions);
        let tensor = self.stack(buf, state, regions.len(), "region", |i, src, yuv, out| {
            let (r, z) = &mut regions[i];
            z.run(&r.crop(src), yuv, out);
        });
        state.regions = regions;
        let tensor = tensor?;
        let geometries: Vec<_> = state.regions.iter().map(|(_, z)| z.geometry).collect();
        meta::add_tensor_meta(
            buf,
            tensor,
            &spec,
            &geometries[0],
            meta::Items::Regions(&geometries),
            state.drop_cut,
        );
        Ok(gst::FlowSuccess::Ok)
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
                glib::ParamSpecString::builder("roi").nick("Region of interest").blurb("Make the tensor from these parts of the frame only: 'x,y,width,height' in pixels (fractions of the frame with roi-normalized=true), several separated by ';' (one batched request, one item per region); tritoninfer maps the boxes back into full-frame coordinates, clipped to their region. Empty: the whole frame").mutable_ready().build(),
                glib::ParamSpecBoolean::builder("roi-normalized").nick("ROI normalized").blurb("roi is given as fractions (0..1) of the frame's width and height").default_value(d.roi_normalized).mutable_ready().build(),
                glib::ParamSpecBoolean::builder("roi-drop-cut").nick("ROI drop cut objects").blurb("Drop detections that touch an edge of their region inside the frame (objects the region cuts) instead of clipping them to the region").default_value(d.roi_drop_cut).mutable_ready().build(),
                glib::ParamSpecBoolean::builder("objects").nick("Objects").blurb("Make one tensor per detected object on the frame (its ROI meta's box) instead of one of the frame, stacked into a batch for a second model (tritoninfer decoder=classify); a frame without objects gets an empty batch and no request").default_value(d.objects).mutable_ready().build(),
                glib::ParamSpecString::builder("object-classes").nick("Object classes").blurb("objects=true: only objects with these labels, comma-separated (empty: all)").mutable_ready().build(),
                glib::ParamSpecUInt::builder("object-min-size").nick("Object min size").blurb("objects=true: only objects whose box is at least this many pixels wide and high").default_value(d.object_min_size).mutable_ready().build(),
                glib::ParamSpecDouble::builder("object-margin").nick("Object margin").blurb("objects=true: grow each box by this fraction of its width and height on every side before cropping").minimum(0.0).maximum(10.0).default_value(d.object_margin).mutable_ready().build(),
                glib::ParamSpecUInt::builder("reclassify-interval").nick("Reclassify interval").blurb("objects=true: an object with a track (dettrack before this element) is sent once, then again every N frames, its answer kept for the frames between (marked cached); 0: every object on every frame").maximum(100_000).default_value(d.reclassify_interval).mutable_ready().build(),
                glib::ParamSpecUInt::builder("max-objects").nick("Max objects").blurb("objects=true: at most this many objects per frame, the largest first (a warning says how many were left out); 0: the model's max_batch_size, asked of tritoninfer downstream (8 when nothing answers); never more than the model's max_batch_size").minimum(0).maximum(1024).default_value(d.max_objects).mutable_ready().build(),
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
            "roi-drop-cut" => s.roi_drop_cut = value.get().expect("type checked"),
            "objects" => s.objects = value.get().expect("type checked"),
            "object-classes" => {
                s.object_classes = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "object-min-size" => s.object_min_size = value.get().expect("type checked"),
            "object-margin" => s.object_margin = value.get().expect("type checked"),
            "max-objects" => s.max_objects = value.get().expect("type checked"),
            "reclassify-interval" => s.reclassify_interval = value.get().expect("type checked"),
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
            "roi-drop-cut" => s.roi_drop_cut.to_value(),
            "objects" => s.objects.to_value(),
            "object-classes" => s.object_classes.to_value(),
            "object-min-size" => s.object_min_size.to_value(),
            "object-margin" => s.object_margin.to_value(),
            "max-objects" => s.max_objects.to_value(),
            "reclassify-interval" => s.reclassify_interval.to_value(),
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
            // Frame numbers start again: so do the tracks' schedules.
            if let Some(st) = self.state.lock().unwrap().as_mut() {
                st.schedule.clear();
            }
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
        let asked = (s.dtype == TensorDType::Auto || s.objects)
            .then(|| model_query::ask(self.obj().static_pad("src").as_ref().expect("src pad")))
            .flatten();
        if s.dtype == TensorDType::Auto {
            s.dtype = self.model_dtype(asked.as_ref());
        }
        let spec = s.spec().map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let roi =
            RoiSpec::parse_list(&s.roi, s.roi_normalized).map_err(|e| self.settings_error(e))?;
        if s.objects && !roi.is_empty() {
            return Err(self.settings_error(
                "roi: cannot be used with objects=true (the crops are the objects' boxes); set one of them".into(),
            ));
        }
        let objects = s.objects.then(|| {
            let model_max = asked.as_ref().and_then(|a| a.max_batch_size);
            let (max, lowered) = objects::limit(s.max_objects, model_max);
            if let Some(w) = lowered {
                gst::warning!(CAT, imp = self, "{w}");
            }
            Selection {
                classes: Selection::classes_from(&s.object_classes),
                min_size: s.object_min_size,
                margin: s.object_margin,
                max,
            }
        });
        let new = self.make_state(info, &spec, &s, &roi, objects)?;
        if let Some(old) = self.state.lock().unwrap().replace(new) {
            let _ = old.pool.set_active(false);
        }
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let interval = self.settings.lock().unwrap().interval.max(1);
        let frame = self.frames.fetch_add(1, Ordering::SeqCst);
        if !frame.is_multiple_of(u64::from(interval)) {
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
        if let Some(sel) = state.objects.clone() {
            return self.object_crops(buf, state, &sel, frame);
        }
        if state.regions.len() > 1 {
            return self.region_batch(buf, state);
        }
        let mut tensor = state.pool.acquire_buffer(None).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                ("tritonletterbox: tensor pool: {:?}", e)
            );
            gst::FlowError::Error
        })?;
        let resizer = {
            let frame = self.map_frame(buf, &state.info)?;
            let src = src_image(&frame, state.format)?;
            let (src, resizer) = match state.regions.first_mut() {
                Some((r, z)) => (r.crop(&src), z),
                None => (src, &mut state.resizer),
            };
            let tbuf = tensor.get_mut().expect("fresh pool buffer is writable");
            let mut map = tbuf.map_writable().map_err(|_| gst::FlowError::Error)?;
            resizer.run(&src, &state.yuv, map.as_mut_slice());
            resizer
        };
        tensor.get_mut().expect("writable").set_pts(buf.pts());
        meta::add_tensor_meta(
            buf,
            tensor,
            resizer.spec(),
            &resizer.geometry,
            meta::Items::One,
            state.drop_cut,
        );
        Ok(gst::FlowSuccess::Ok)
    }
}

//! `TritonTensorMeta`: the tensor `tritonletterbox` made from the frame, and the geometry that
//! maps tensor coordinates back to the frame.

use gst::meta::CustomMeta;

use super::{SKIPPED_META, TENSOR_META, register};
use crate::letterbox::geometry::Letterbox;
use crate::letterbox::tensor::{Layout, TensorSpec};

/// The tensor meta, read back.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    pub tensor: gst::Buffer,
    pub dtype: String,
    pub layout: String,
    pub shape: Vec<i64>,
    pub geometry: Letterbox,
    /// `tritonletterbox objects=true`: the tensor is a batch of one crop per object, and these
    /// are the objects' ROI metas (their places in the frame's ROI metas, in batch order).
    pub objects: Option<Vec<u32>>,
    /// `tritonletterbox roi=` with several regions: the tensor is a batch of one item per
    /// region, and these are their geometries in batch order (empty for a single tensor, whose
    /// geometry is `geometry`).
    pub regions: Vec<Letterbox>,
    /// `roi-edges=drop`: detections touching an edge of their region inside the frame (objects
    /// the region cuts) are dropped rather than clipped.
    pub drop_cut: bool,
}

/// How a tensor of several items was made, for [`add_tensor_meta`].
#[derive(Debug, Clone, Copy, Default)]
pub enum Items<'a> {
    /// One tensor from the frame or its region.
    #[default]
    One,
    /// One item per object: the places of the objects' ROI metas, in batch order.
    Objects(&'a [u32]),
    /// One item per region: their geometries, in batch order.
    Regions(&'a [Letterbox]),
}

/// Attaches (or replaces) the tensor meta. `spec` is one item's tensor; `g` is the geometry of
/// the (first) item, or of the whole frame for object crops (boxes are not mapped back from a
/// crop); `drop_cut`: see [`TensorMeta::drop_cut`].
pub fn add_tensor_meta(
    buffer: &mut gst::BufferRef,
    tensor: gst::Buffer,
    spec: &TensorSpec,
    g: &Letterbox,
    items: Items,
    drop_cut: bool,
) {
    register();
    if let Ok(old) = CustomMeta::from_mut_buffer(buffer, TENSOR_META) {
        let _ = old.remove();
    }
    let mut meta = CustomMeta::add(buffer, TENSOR_META).expect("TritonTensorMeta is registered");
    let s = meta.mut_structure();
    s.set("tensor", tensor);
    s.set("dtype", spec.dtype.triton_name());
    s.set(
        "layout",
        if spec.layout == Layout::Nchw {
            "NCHW"
        } else {
            "NHWC"
        },
    );
    let mut shape = spec.shape();
    write_geometry(s, g);
    match items {
        Items::One => {}
        Items::Objects(objects) => {
            shape[0] = objects.len() as i64;
            s.set(
                "objects",
                gst::Array::new(objects.iter().map(|&i| i as i32)),
            );
        }
        Items::Regions(regions) => {
            shape[0] = regions.len() as i64;
            s.set(
                "regions",
                gst::Array::new(regions.iter().map(|r| {
                    let mut st = gst::Structure::new_empty("region");
                    write_geometry(&mut st, r);
                    st
                })),
            );
        }
    }
    s.set("shape", gst::Array::new(shape));
    if drop_cut {
        s.set("drop-cut", true);
    }
}

fn write_geometry(s: &mut gst::StructureRef, g: &Letterbox) {
    s.set("scale", g.scale);
    s.set("scale-x", g.scale_x());
    s.set("scale-y", g.scale_y());
    s.set("pad-x", g.left as f64);
    s.set("pad-y", g.top as f64);
    s.set("src-width", g.src_w as i32);
    s.set("src-height", g.src_h as i32);
    s.set("tensor-width", g.dst_w as i32);
    s.set("tensor-height", g.dst_h as i32);
    s.set("resized-width", g.new_w as i32);
    s.set("resized-height", g.new_h as i32);
    s.set("origin-x", g.origin_x as i32);
    s.set("origin-y", g.origin_y as i32);
    s.set("frame-width", g.frame_w as i32);
    s.set("frame-height", g.frame_h as i32);
}

fn read_geometry(s: &gst::StructureRef) -> Option<Letterbox> {
    let int = |k: &str| s.get::<i32>(k).ok().and_then(|v| u32::try_from(v).ok());
    let (src_w, src_h, dst_w, dst_h) = (
        int("src-width")?,
        int("src-height")?,
        int("tensor-width")?,
        int("tensor-height")?,
    );
    let (new_w, new_h) = (int("resized-width")?, int("resized-height")?);
    Some(Letterbox {
        src_w,
        src_h,
        dst_w,
        dst_h,
        scale: s.get("scale").ok()?,
        new_w,
        new_h,
        pad_x: (dst_w.saturating_sub(new_w)) as f64 / 2.0,
        pad_y: (dst_h.saturating_sub(new_h)) as f64 / 2.0,
        left: s.get::<f64>("pad-x").ok()? as u32,
        top: s.get::<f64>("pad-y").ok()? as u32,
        origin_x: int("origin-x").unwrap_or(0),
        origin_y: int("origin-y").unwrap_or(0),
        frame_w: int("frame-width").unwrap_or(src_w),
        frame_h: int("frame-height").unwrap_or(src_h),
    })
}

/// Reads the tensor meta, `None` when absent or malformed.
pub fn tensor_meta(buffer: &gst::BufferRef) -> Option<TensorMeta> {
    let meta = CustomMeta::from_buffer(buffer, TENSOR_META).ok()?;
    let s = meta.structure();
    let shape = s
        .get::<gst::Array>("shape")
        .ok()?
        .iter()
        .filter_map(|v| v.get::<i64>().ok())
        .collect();
    let objects = s.get::<gst::Array>("objects").ok().map(|a| {
        a.iter()
            .filter_map(|v| v.get::<i32>().ok())
            .map(|i| i as u32)
            .collect()
    });
    let regions = match s.get::<gst::Array>("regions") {
        Ok(a) => a
            .iter()
            .map(|v| read_geometry(v.get::<&gst::StructureRef>().ok()?))
            .collect::<Option<Vec<_>>>()?,
        Err(_) => vec![],
    };
    Some(TensorMeta {
        objects,
        regions,
        drop_cut: s.get("drop-cut").unwrap_or(false),
        tensor: s.get("tensor").ok()?,
        dtype: s.get("dtype").ok()?,
        layout: s.get("layout").ok()?,
        shape,
        geometry: read_geometry(s)?,
    })
}

/// Marks a frame `tritonletterbox interval=N` made no tensor for (`interval`: N), so that
/// `tritoninfer` passes it as skipped.
pub fn add_skipped(buffer: &mut gst::BufferRef, interval: u32) {
    register();
    let mut meta = CustomMeta::add(buffer, SKIPPED_META).expect("TritonSkippedMeta is registered");
    meta.mut_structure().set("interval", interval);
}

/// The `interval` of a frame `tritonletterbox` made no tensor for.
pub fn skipped(buffer: &gst::BufferRef) -> Option<u32> {
    let meta = CustomMeta::from_buffer(buffer, SKIPPED_META).ok()?;
    meta.structure().get("interval").ok()
}

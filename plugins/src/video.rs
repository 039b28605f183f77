//! Video helpers shared by the filters: the formats they take, GStreamer format → pixel
//! format, the caps' colorimetry, and the src/sink pad templates.

use gst_video::VideoFormat;

use crate::pixel::{PixelFormat, YuvMatrix};

pub fn pixel_format(f: VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::Rgba => PixelFormat::Rgba,
        VideoFormat::Bgra => PixelFormat::Bgra,
        VideoFormat::Rgbx => PixelFormat::Rgbx,
        VideoFormat::Bgrx => PixelFormat::Bgrx,
        VideoFormat::I420 => PixelFormat::I420,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

/// The formats both `tritonletterbox` and `detoverlay` handle.
pub const FORMATS: [VideoFormat; 8] = [
    VideoFormat::I420,
    VideoFormat::Nv12,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
];

/// The YUV matrix and range (`true` = full) a frame's caps declare.
pub fn colorimetry(info: &gst_video::VideoInfo) -> (YuvMatrix, bool) {
    let c = info.colorimetry();
    let matrix = match c.matrix() {
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
        gst_video::VideoColorMatrix::Bt2020 => YuvMatrix::Bt2020,
        _ => YuvMatrix::Bt601,
    };
    (matrix, c.range() == gst_video::VideoColorRange::Range0_255)
}

/// An always-present `src` and `sink` pad template with the same caps (all our filters).
pub fn src_sink_templates(caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("src", gst::PadDirection::Src),
        ("sink", gst::PadDirection::Sink),
    ]
    .into_iter()
    .map(|(name, dir)| {
        gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps)
            .expect("valid pad template")
    })
    .collect()
}

/// Templates for the metadata-only filters (`dettrack`, `detcount`): any raw video, any memory.
pub fn any_raw_templates() -> Vec<gst::PadTemplate> {
    let caps = gst::Caps::builder_full()
        .structure_with_any_features(gst::Structure::new_empty("video/x-raw"))
        .build();
    src_sink_templates(&caps)
}

/// Width and height of raw video caps (what the metadata-only filters need of them).
pub fn frame_size(caps: &gst::Caps) -> Result<(u32, u32), String> {
    let s = caps.structure(0).ok_or("empty caps")?;
    match (s.get::<i32>("width"), s.get::<i32>("height")) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w as u32, h as u32)),
        _ => Err(format!("caps without a frame size: {caps}")),
    }
}

//! `tritonletterbox`'s settings: the property values (tensor type, layout, channel order as
//! GObject enums), their defaults, and the tensor they describe.

use gst::glib;

use super::tensor::{DType, Layout, TensorSpec};

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
    pub(super) fn of_model(datatype: &str) -> Option<TensorDType> {
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
pub(super) struct Settings {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) pad_value: u32,
    pub(super) scale_up: bool,
    pub(super) dtype: TensorDType,
    pub(super) layout: TensorLayout,
    pub(super) channel_order: ChannelOrder,
    pub(super) scale: f64,
    pub(super) mean: String,
    pub(super) std: String,
    pub(super) threads: u32,
    pub(super) interval: u32,
    pub(super) roi: String,
    pub(super) roi_normalized: bool,
    pub(super) roi_drop_cut: bool,
    pub(super) objects: bool,
    pub(super) object_classes: String,
    pub(super) object_min_size: u32,
    pub(super) object_margin: f64,
    pub(super) max_objects: u32,
    pub(super) reclassify_interval: u32,
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
            roi_drop_cut: false,
            objects: false,
            object_classes: String::new(),
            object_min_size: 0,
            object_margin: 0.0,
            max_objects: 0,
            reclassify_interval: 0,
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
    pub(super) fn spec(&self) -> Result<TensorSpec, String> {
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

//! The model tensor `tritonletterbox` writes: element type, layout, size, normalisation.
//!
//! Sampling is OpenCV's `INTER_LINEAR` with half-pixel centres: output pixel `i` samples source
//! `(i + 0.5)·(w/new_w) − 0.5`, clamped to the edge pixels. Colour conversion happens at source
//! resolution (YUV 4:2:0 chroma taken from the co-sited 2×2 block, as OpenCV's `cvtColor` does),
//! so every source format of the same picture yields the same tensor up to conversion rounding.
//! The resizer ([`super::Resizer`]) precomputes its taps once per geometry and reuses its row
//! buffers: no allocation per frame.

/// Tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    U8,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::U8 => 1,
        }
    }

    /// Triton datatype name.
    pub fn triton_name(self) -> &'static str {
        match self {
            DType::F32 => "FP32",
            DType::F16 => "FP16",
            DType::U8 => "UINT8",
        }
    }
}

/// Tensor memory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// What tensor to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub width: u32,
    pub height: u32,
    pub dtype: DType,
    pub layout: Layout,
    /// Channel order BGR instead of RGB.
    pub bgr: bool,
    /// `value = (pixel·scale − mean[c]) / std[c]` for float tensors; UINT8 tensors hold raw pixels.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Padding pixel value (0..255, before normalisation).
    pub pad_value: u8,
    pub scale_up: bool,
}

impl Default for TensorSpec {
    fn default() -> Self {
        TensorSpec {
            width: 640,
            height: 640,
            dtype: DType::F32,
            layout: Layout::Nchw,
            bgr: false,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            pad_value: 114,
            scale_up: true,
        }
    }
}

impl TensorSpec {
    /// Bytes of one tensor.
    pub fn byte_size(&self) -> usize {
        self.width as usize * self.height as usize * 3 * self.dtype.size()
    }

    /// Shape in the tensor's layout, batch 1.
    pub fn shape(&self) -> [i64; 4] {
        let (w, h) = (self.width as i64, self.height as i64);
        match self.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        }
    }
}

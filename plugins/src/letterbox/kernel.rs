//! Colour conversion + bilinear resize + normalisation into a model tensor, in one pass.
//!
//! Sampling is OpenCV's `INTER_LINEAR` with half-pixel centres: output pixel `i` samples source
//! `(i + 0.5)·(w/new_w) − 0.5`, clamped to the edge pixels. Colour conversion happens at source
//! resolution (YUV 4:2:0 chroma taken from the co-sited 2×2 block, as OpenCV's `cvtColor` does),
//! so every source format of the same picture yields the same tensor up to conversion rounding.
//! The resizer precomputes its taps once per geometry and reuses its row buffers: no allocation
//! per frame.

use super::geometry::Letterbox;

/// Source pixel formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
    I420,
    Nv12,
}

impl PixelFormat {
    /// (bytes per pixel, offsets of R, G, B) for packed formats.
    fn packed(self) -> Option<(usize, [usize; 3])> {
        Some(match self {
            PixelFormat::Rgb => (3, [0, 1, 2]),
            PixelFormat::Bgr => (3, [2, 1, 0]),
            PixelFormat::Rgba | PixelFormat::Rgbx => (4, [0, 1, 2]),
            PixelFormat::Bgra | PixelFormat::Bgrx => (4, [2, 1, 0]),
            PixelFormat::I420 | PixelFormat::Nv12 => return None,
        })
    }
}

/// A borrowed source image: up to three planes with their strides.
#[derive(Debug, Clone, Copy)]
pub struct SrcImage<'a> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

/// YUV → RGB matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvMatrix {
    Bt601,
    Bt709,
    Bt2020,
}

/// YUV → RGB conversion (RGB in 0..255), as lookup tables of each component's contribution.
#[derive(Debug, Clone, PartialEq)]
pub struct YuvToRgb {
    y: [f32; 256],
    r_v: [f32; 256],
    g_u: [f32; 256],
    g_v: [f32; 256],
    b_u: [f32; 256],
}

impl YuvToRgb {
    /// Constants for a matrix and range (`full_range` = 0..255 luma, else 16..235).
    pub fn new(matrix: YuvMatrix, full_range: bool) -> YuvToRgb {
        let (kr, kb) = match matrix {
            YuvMatrix::Bt601 => (0.299f64, 0.114f64),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        };
        let kg = 1.0 - kr - kb;
        let (y_off, y_mul, c_mul) = if full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        let (r_v, g_u, g_v, b_u) = (
            2.0 * (1.0 - kr),
            -2.0 * (1.0 - kb) * kb / kg,
            -2.0 * (1.0 - kr) * kr / kg,
            2.0 * (1.0 - kb),
        );
        let table =
            |f: &dyn Fn(f64) -> f64| std::array::from_fn::<f32, 256, _>(|i| f(i as f64) as f32);
        YuvToRgb {
            y: table(&|v| (v - y_off) * y_mul),
            r_v: table(&|v| r_v * (v - 128.0) * c_mul),
            g_u: table(&|v| g_u * (v - 128.0) * c_mul),
            g_v: table(&|v| g_v * (v - 128.0) * c_mul),
            b_u: table(&|v| b_u * (v - 128.0) * c_mul),
        }
    }

    /// One pixel; RGB clamped to 0..255.
    #[inline(always)]
    pub fn convert(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        let yy = self.y[y as usize];
        [
            (yy + self.r_v[v as usize]).clamp(0.0, 255.0),
            (yy + self.g_u[u as usize] + self.g_v[v as usize]).clamp(0.0, 255.0),
            (yy + self.b_u[u as usize]).clamp(0.0, 255.0),
        ]
    }
}

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

/// One output column/row tap: source index and weight of the next source pixel.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let s = (o as f64 + 0.5) * scale - 0.5;
            let mut i0 = s.floor();
            let mut f = s - i0;
            if i0 < 0.0 {
                i0 = 0.0;
                f = 0.0;
            }
            let mut i0 = i0 as usize;
            if i0 >= src - 1 {
                i0 = src - 1;
                f = 0.0;
            }
            Tap {
                i0,
                i1: (i0 + 1).min(src - 1),
                f: f as f32,
            }
        })
        .collect()
}

/// Reusable letterbox resizer for one (source size, tensor spec) pair.
pub struct Resizer {
    pub geometry: Letterbox,
    spec: TensorSpec,
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    /// Source row converted to RGB, 3·w.
    rgb: Vec<f32>,
    /// Two horizontally resampled rows (3·new_w each) and which source rows they hold.
    hrows: [Vec<f32>; 2],
    hrow_src: [usize; 2],
    /// One output row before normalisation (3·new_w).
    outrow: Vec<f32>,
    /// Normalisation: out = v·a[c] + b[c] (per output channel).
    a: [f32; 3],
    b: [f32; 3],
}

impl Resizer {
    pub fn new(src_w: u32, src_h: u32, spec: &TensorSpec) -> Resizer {
        let geometry = Letterbox::new(src_w, src_h, spec.width, spec.height, spec.scale_up);
        let xs = taps(src_w as usize, geometry.new_w as usize);
        let ys = taps(src_h as usize, geometry.new_h as usize);
        let nw = geometry.new_w as usize;
        let mut a = [1.0; 3];
        let mut b = [0.0; 3];
        if spec.dtype != DType::U8 {
            for c in 0..3 {
                a[c] = spec.scale / spec.std[c];
                b[c] = -spec.mean[c] / spec.std[c];
            }
        }
        Resizer {
            geometry,
            spec: spec.clone(),
            xs,
            ys,
            rgb: vec![0.0; 3 * src_w as usize],
            hrows: [vec![0.0; 3 * nw], vec![0.0; 3 * nw]],
            hrow_src: [usize::MAX; 2],
            outrow: vec![0.0; 3 * nw],
            a,
            b,
        }
    }

    /// The spec this resizer was built for.
    pub fn spec(&self) -> &TensorSpec {
        &self.spec
    }

    /// Converts, resizes and normalises `src` into `out` (exactly `spec.byte_size()` bytes).
    pub fn run(&mut self, src: &SrcImage, yuv: &YuvToRgb, out: &mut [u8]) {
        assert_eq!(
            src.width, self.geometry.src_w as usize,
            "source width changed; build a new Resizer"
        );
        assert_eq!(
            src.height, self.geometry.src_h as usize,
            "source height changed; build a new Resizer"
        );
        assert_eq!(out.len(), self.spec.byte_size(), "tensor buffer size");
        self.hrow_src = [usize::MAX; 2];
        self.fill_padding(out);
        let (left, top) = (self.geometry.left as usize, self.geometry.top as usize);
        for oy in 0..self.geometry.new_h as usize {
            let t = self.ys[oy];
            self.ensure_rows(src, yuv, t.i0, t.i1);
            let k0 = if self.hrow_src[0] == t.i0 { 0 } else { 1 };
            let k1 = if self.hrow_src[0] == t.i1 { 0 } else { 1 };
            let (f, g) = (t.f, 1.0 - t.f);
            let Resizer { hrows, outrow, .. } = self;
            for (o, (p, q)) in outrow
                .iter_mut()
                .zip(hrows[k0].iter().zip(hrows[k1].iter()))
            {
                *o = p * g + q * f;
            }
            self.write_row(out, top + oy, left, &self.outrow);
        }
    }

    /// Makes sure source rows i0 and i1 are converted and horizontally resampled.
    fn ensure_rows(&mut self, src: &SrcImage, yuv: &YuvToRgb, i0: usize, i1: usize) {
        for want in [i0, i1] {
            if self.hrow_src.contains(&want) {
                continue;
            }
            // Replace the slot not holding the other needed row.
            let other = if want == i0 { i1 } else { i0 };
            let slot = if self.hrow_src[0] == other { 1 } else { 0 };
            let dst = &mut self.hrows[slot];
            if 2 * self.xs.len() <= src.width {
                // Strong downscale: convert just the two taps of each output pixel.
                for (o, t) in dst.chunks_exact_mut(3).zip(&self.xs) {
                    let (p, q) = (pixel(src, yuv, t.i0, want), pixel(src, yuv, t.i1, want));
                    let g = 1.0 - t.f;
                    o[0] = p[0] * g + q[0] * t.f;
                    o[1] = p[1] * g + q[1] * t.f;
                    o[2] = p[2] * g + q[2] * t.f;
                }
                self.hrow_src[slot] = want;
                continue;
            }
            convert_row(src, yuv, want, &mut self.rgb);
            for (o, t) in dst.chunks_exact_mut(3).zip(&self.xs) {
                let p = &self.rgb[3 * t.i0..3 * t.i0 + 3];
                let q = &self.rgb[3 * t.i1..3 * t.i1 + 3];
                let g = 1.0 - t.f;
                o[0] = p[0] * g + q[0] * t.f;
                o[1] = p[1] * g + q[1] * t.f;
                o[2] = p[2] * g + q[2] * t.f;
            }
            self.hrow_src[slot] = want;
        }
    }

    /// Output channel k holds RGB channel `src_channel(k)`.
    fn src_channel(&self, k: usize) -> usize {
        if self.spec.bgr { 2 - k } else { k }
    }

    fn write_row(&self, out: &mut [u8], y: usize, x0: usize, rgb: &[f32]) {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let n = rgb.len() / 3;
        for k in 0..3 {
            let c = self.src_channel(k);
            let (a, b) = (self.a[c], self.b[c]);
            let vals = rgb.chunks_exact(3).map(|p| p[c] * a + b);
            match self.spec.layout {
                Layout::Nchw => {
                    let start = k * w * h + y * w + x0;
                    store(out, start, 1, vals, self.spec.dtype, n);
                }
                Layout::Nhwc => {
                    let start = (y * w + x0) * 3 + k;
                    store(out, start, 3, vals, self.spec.dtype, n);
                }
            }
        }
    }

    fn fill_padding(&self, out: &mut [u8]) {
        let g = &self.geometry;
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let (left, top, nw, nh) = (
            g.left as usize,
            g.top as usize,
            g.new_w as usize,
            g.new_h as usize,
        );
        let pv = self.spec.pad_value as f32;
        for k in 0..3 {
            let c = self.src_channel(k);
            let v = pv * self.a[c] + self.b[c];
            let mut fill = |y: usize, x0: usize, x1: usize| {
                if x1 > x0 {
                    match self.spec.layout {
                        Layout::Nchw => store(
                            out,
                            k * w * h + y * w + x0,
                            1,
                            std::iter::repeat(v),
                            self.spec.dtype,
                            x1 - x0,
                        ),
                        Layout::Nhwc => store(
                            out,
                            (y * w + x0) * 3 + k,
                            3,
                            std::iter::repeat(v),
                            self.spec.dtype,
                            x1 - x0,
                        ),
                    }
                }
            };
            for y in 0..h {
                if y < top || y >= top + nh {
                    fill(y, 0, w);
                } else {
                    fill(y, 0, left);
                    fill(y, left + nw, w);
                }
            }
        }
    }
}

/// Writes `n` values at element index `start` with element step `step`.
#[inline]
fn store(
    out: &mut [u8],
    start: usize,
    step: usize,
    vals: impl Iterator<Item = f32>,
    dtype: DType,
    n: usize,
) {
    match dtype {
        DType::F32 if step == 1 && cfg!(target_endian = "little") => {
            let dst = &mut out[start * 4..(start + n) * 4];
            // SAFETY: any byte pattern is a valid f32; align_to_mut hands back only the aligned middle.
            let (head, mid, tail) = unsafe { dst.align_to_mut::<f32>() };
            if head.is_empty() && tail.is_empty() {
                for (d, v) in mid.iter_mut().zip(vals) {
                    *d = v;
                }
            } else {
                for (c, v) in dst.chunks_exact_mut(4).zip(vals) {
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        DType::F32 => {
            let dst = &mut out[start * 4..];
            for (i, v) in vals.take(n).enumerate() {
                dst[i * step * 4..i * step * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            let dst = &mut out[start * 2..];
            for (i, v) in vals.take(n).enumerate() {
                dst[i * step * 2..i * step * 2 + 2]
                    .copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
        }
        DType::U8 => {
            let dst = &mut out[start..];
            for (i, v) in vals.take(n).enumerate() {
                dst[i * step] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Source pixel (x, y) as RGB floats (0..255).
#[inline(always)]
fn pixel(src: &SrcImage, yuv: &YuvToRgb, x: usize, y: usize) -> [f32; 3] {
    match src.format {
        PixelFormat::I420 => yuv.convert(
            src.planes[0][y * src.strides[0] + x],
            src.planes[1][(y / 2) * src.strides[1] + x / 2],
            src.planes[2][(y / 2) * src.strides[2] + x / 2],
        ),
        PixelFormat::Nv12 => {
            let c = (y / 2) * src.strides[1] + 2 * (x / 2);
            yuv.convert(
                src.planes[0][y * src.strides[0] + x],
                src.planes[1][c],
                src.planes[1][c + 1],
            )
        }
        f => {
            let (bpp, [r, g, b]) = f.packed().expect("packed format");
            let i = y * src.strides[0] + x * bpp;
            let p = &src.planes[0][i..i + bpp];
            [p[r] as f32, p[g] as f32, p[b] as f32]
        }
    }
}

/// Source row `y` as RGB floats (0..255) into `rgb` (3·width).
fn convert_row(src: &SrcImage, yuv: &YuvToRgb, y: usize, rgb: &mut [f32]) {
    let w = src.width;
    if let Some((bpp, [r, g, b])) = src.format.packed() {
        let row = &src.planes[0][y * src.strides[0]..y * src.strides[0] + w * bpp];
        for (o, p) in rgb.chunks_exact_mut(3).zip(row.chunks_exact(bpp)) {
            o[0] = p[r] as f32;
            o[1] = p[g] as f32;
            o[2] = p[b] as f32;
        }
        return;
    }
    let yrow = &src.planes[0][y * src.strides[0]..y * src.strides[0] + w];
    let cy = y / 2;
    match src.format {
        PixelFormat::I420 => {
            let urow = &src.planes[1][cy * src.strides[1]..];
            let vrow = &src.planes[2][cy * src.strides[2]..];
            for (x, o) in rgb.chunks_exact_mut(3).enumerate() {
                o.copy_from_slice(&yuv.convert(yrow[x], urow[x / 2], vrow[x / 2]));
            }
        }
        PixelFormat::Nv12 => {
            let uv = &src.planes[1][cy * src.strides[1]..];
            for (x, o) in rgb.chunks_exact_mut(3).enumerate() {
                let c = 2 * (x / 2);
                o.copy_from_slice(&yuv.convert(yrow[x], uv[c], uv[c + 1]));
            }
        }
        _ => unreachable!("packed formats handled above"),
    }
}

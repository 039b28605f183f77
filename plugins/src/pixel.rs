//! Pixel formats and colour: the raw video formats the elements read and write, a source image
//! view, and YUV → RGB conversion (BT.601/BT.709, limited or full range). Shared by the
//! letterbox, the overlay and the video helpers; no GStreamer types.

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
    pub(crate) fn packed(self) -> Option<(usize, [usize; 3])> {
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
    /// The same conversion as arithmetic (f32): luma offset and gain, and the chroma gains
    /// R←V, G←U, G←V, B←U (chroma centred on 128), for the vectorised row conversion.
    k: [f32; 6],
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
            k: [
                y_off,
                y_mul,
                r_v * c_mul,
                g_u * c_mul,
                g_v * c_mul,
                b_u * c_mul,
            ]
            .map(|v| v as f32),
        }
    }

    /// Converts rows of samples (`y[i]`, `u[i]`, `v[i]`) into planar RGB rows (0..255, clamped),
    /// in arithmetic the compiler vectorises (within 1e-3 of [`YuvToRgb::convert`]).
    #[inline(always)]
    pub fn convert_rows(&self, y: &[u8], u: &[u8], v: &[u8], out: [&mut [f32]; 3]) {
        let [y_off, y_mul, rv, gu, gv, bu] = self.k;
        let [r, g, b] = out;
        let n = r
            .len()
            .min(g.len())
            .min(b.len())
            .min(y.len())
            .min(u.len())
            .min(v.len());
        for i in 0..n {
            let yy = (y[i] as f32 - y_off) * y_mul;
            let (cu, cv) = (u[i] as f32 - 128.0, v[i] as f32 - 128.0);
            r[i] = (yy + rv * cv).clamp(0.0, 255.0);
            g[i] = (yy + gu * cu + gv * cv).clamp(0.0, 255.0);
            b[i] = (yy + bu * cu).clamp(0.0, 255.0);
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

//! Drawing boxes and labels directly into raw frames of the eight supported formats. Pure
//! functions over plane slices, no GStreamer types.

use std::collections::HashMap;

use crate::pixel::{PixelFormat, YuvMatrix};

/// A stable, distinct colour per class id (RGB).
pub fn class_colour(class_id: i64) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 12] = [
        [255, 56, 56],
        [72, 249, 10],
        [0, 112, 255],
        [255, 178, 29],
        [207, 210, 49],
        [146, 204, 23],
        [61, 219, 134],
        [26, 147, 52],
        [0, 212, 187],
        [44, 153, 168],
        [255, 55, 199],
        [132, 56, 255],
    ];
    PALETTE[class_id.rem_euclid(PALETTE.len() as i64) as usize]
}

/// RGB → YUV for drawing on YUV frames.
#[derive(Debug, Clone, Copy)]
pub struct RgbToYuv {
    kr: f32,
    kb: f32,
    full: bool,
}

impl RgbToYuv {
    pub fn new(matrix: YuvMatrix, full_range: bool) -> Self {
        let (kr, kb) = match matrix {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        };
        RgbToYuv {
            kr,
            kb,
            full: full_range,
        }
    }

    pub fn convert(&self, rgb: [u8; 3]) -> [u8; 3] {
        let [r, g, b] = rgb.map(|v| v as f32 / 255.0);
        let y = self.kr * r + (1.0 - self.kr - self.kb) * g + self.kb * b;
        let pb = (b - y) / (2.0 * (1.0 - self.kb));
        let pr = (r - y) / (2.0 * (1.0 - self.kr));
        let (ys, yo, cs) = if self.full {
            (255.0, 0.0, 255.0)
        } else {
            (219.0, 16.0, 224.0)
        };
        let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        [q(yo + ys * y), q(128.0 + cs * pb), q(128.0 + cs * pr)]
    }
}

/// A writable frame.
pub struct Canvas<'a> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
    pub yuv: RgbToYuv,
}

impl Canvas<'_> {
    fn packed(&self) -> Option<(usize, [usize; 3])> {
        Some(match self.format {
            PixelFormat::Rgb => (3, [0, 1, 2]),
            PixelFormat::Bgr => (3, [2, 1, 0]),
            PixelFormat::Rgba | PixelFormat::Rgbx => (4, [0, 1, 2]),
            PixelFormat::Bgra | PixelFormat::Bgrx => (4, [2, 1, 0]),
            _ => return None,
        })
    }

    /// Fills `[x0,x1) × [y0,y1)`, clipped to the frame. On 4:2:0 formats every chroma sample whose
    /// 2×2 block touches the rectangle takes the colour.
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, rgb: [u8; 3]) {
        let (w, h) = (self.width as i64, self.height as i64);
        let (x0, x1, y0, y1) = (
            x0.clamp(0, w) as usize,
            x1.clamp(0, w) as usize,
            y0.clamp(0, h) as usize,
            y1.clamp(0, h) as usize,
        );
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        if let Some((bpp, o)) = self.packed() {
            let s = self.strides[0];
            for y in y0..y1 {
                let row = &mut self.planes[0][y * s..];
                for x in x0..x1 {
                    for c in 0..3 {
                        row[x * bpp + o[c]] = rgb[c];
                    }
                }
            }
            return;
        }
        let [yv, u, v] = self.yuv.convert(rgb);
        let s = self.strides[0];
        for y in y0..y1 {
            self.planes[0][y * s + x0..y * s + x1].fill(yv);
        }
        let (cx0, cx1, cy0, cy1) = (x0 / 2, x1.div_ceil(2), y0 / 2, y1.div_ceil(2));
        match self.format {
            PixelFormat::I420 => {
                for cy in cy0..cy1 {
                    let (su, sv) = (self.strides[1], self.strides[2]);
                    self.planes[1][cy * su + cx0..cy * su + cx1].fill(u);
                    self.planes[2][cy * sv + cx0..cy * sv + cx1].fill(v);
                }
            }
            PixelFormat::Nv12 => {
                let s = self.strides[1];
                for cy in cy0..cy1 {
                    for cx in cx0..cx1 {
                        self.planes[1][cy * s + 2 * cx] = u;
                        self.planes[1][cy * s + 2 * cx + 1] = v;
                    }
                }
            }
            _ => unreachable!("packed handled above"),
        }
    }

    /// Blends `rgb` over one pixel with `alpha` (0..1); on YUV only luma is blended.
    pub fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || alpha <= 0.0 {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        let mix =
            |dst: u8, src: u8| (dst as f32 * (1.0 - alpha) + src as f32 * alpha).round() as u8;
        if let Some((bpp, o)) = self.packed() {
            let i = y * self.strides[0] + x * bpp;
            for c in 0..3 {
                self.planes[0][i + o[c]] = mix(self.planes[0][i + o[c]], rgb[c]);
            }
        } else {
            let yv = self.yuv.convert(rgb)[0];
            let i = y * self.strides[0] + x;
            self.planes[0][i] = mix(self.planes[0][i], yv);
        }
    }
}

/// Draws a box outline of `thickness` pixels inside `[x, x+w) × [y, y+h)`, clipped.
pub fn draw_box(c: &mut Canvas, x: i64, y: i64, w: i64, h: i64, thickness: i64, rgb: [u8; 3]) {
    let t = thickness.max(1).min(w.max(1)).min(h.max(1));
    let (x1, y1) = (x + w, y + h);
    c.fill_rect(x, y, x1, y + t, rgb);
    c.fill_rect(x, y1 - t, x1, y1, rgb);
    c.fill_rect(x, y, x + t, y1, rgb);
    c.fill_rect(x1 - t, y, x1, y1, rgb);
}

/// Text rasteriser with a glyph cache.
pub struct TextRenderer {
    font: fontdue::Font,
    cache: HashMap<(char, u32), (fontdue::Metrics, Vec<u8>)>,
}

impl TextRenderer {
    pub fn from_file(path: &str) -> Result<Self, String> {
        let data =
            std::fs::read(path).map_err(|e| format!("font-file: cannot read {path}: {e}"))?;
        let font = fontdue::Font::from_bytes(data, fontdue::FontSettings::default())
            .map_err(|e| format!("font-file: {path}: {e}"))?;
        Ok(TextRenderer {
            font,
            cache: HashMap::new(),
        })
    }

    fn glyph(&mut self, ch: char, px: u32) -> &(fontdue::Metrics, Vec<u8>) {
        let font = &self.font;
        self.cache
            .entry((ch, px))
            .or_insert_with(|| font.rasterize(ch, px as f32))
    }

    /// Width and height of `text` at `px` pixels.
    pub fn measure(&mut self, text: &str, px: u32) -> (i64, i64) {
        let w: f32 = text
            .chars()
            .map(|c| self.glyph(c, px).0.advance_width)
            .sum();
        (w.ceil() as i64, (px as f64 * 1.2).ceil() as i64)
    }

    /// Draws a label: a filled background in `bg` with white (or, on light colours, black) text,
    /// its bottom-left at (x, y).
    pub fn draw_label(&mut self, c: &mut Canvas, x: i64, y: i64, text: &str, px: u32, bg: [u8; 3]) {
        let (tw, th) = self.measure(text, px);
        let top = y - th;
        c.fill_rect(x, top, x + tw + 4, y, bg);
        let baseline = top + px as i64;
        let luma = 0.299 * bg[0] as f32 + 0.587 * bg[1] as f32 + 0.114 * bg[2] as f32;
        let ink = if luma > 150.0 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        };
        let mut pen = x as f32 + 2.0;
        for ch in text.chars() {
            let (m, bitmap) = self.glyph(ch, px).clone();
            let gx = pen.round() as i64 + m.xmin as i64;
            let gy = baseline - m.height as i64 - m.ymin as i64;
            for row in 0..m.height {
                for col in 0..m.width {
                    let a = bitmap[row * m.width + col] as f32 / 255.0;
                    c.blend(gx + col as i64, gy + row as i64, ink, a);
                }
            }
            pen += m.advance_width;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas_rgb(buf: &mut [u8], w: usize, h: usize) -> Canvas<'_> {
        Canvas {
            format: PixelFormat::Rgb,
            width: w,
            height: h,
            planes: [buf, &mut [], &mut []],
            strides: [w * 3, 0, 0],
            yuv: RgbToYuv::new(YuvMatrix::Bt601, false),
        }
    }

    #[test]
    fn boxes_are_clipped_never_panic() {
        let (w, h) = (32, 24);
        let mut buf = vec![0u8; w * h * 3];
        let mut c = canvas_rgb(&mut buf, w, h);
        for (x, y, bw, bh) in [
            (-10, -10, 20, 20),
            (25, 20, 100, 100),
            (-100, -100, 10, 10),
            (40, 40, 5, 5),
            (0, 0, 0, 0),
            (5, 5, 1, 1),
            (-5, 3, 1000, 2),
        ] {
            draw_box(&mut c, x, y, bw, bh, 3, [255, 0, 0]);
        }
        // (-10,-10,20,20) → its right edge columns 7..10 are drawn for rows 0..10.
        assert_eq!(&buf[(5 * w + 8) * 3..][..3], &[255, 0, 0]);
        assert_eq!(&buf[(15 * w + 15) * 3..][..3], &[0, 0, 0]);
    }

    #[test]
    fn yuv_colours_round_trip() {
        let to = RgbToYuv::new(YuvMatrix::Bt601, false);
        let back = crate::pixel::YuvToRgb::new(YuvMatrix::Bt601, false);
        for rgb in [
            [255u8, 56, 56],
            [0, 112, 255],
            [72, 249, 10],
            [0, 0, 0],
            [255, 255, 255],
        ] {
            let [y, u, v] = to.convert(rgb);
            let r = back.convert(y, u, v);
            for c in 0..3 {
                assert!((r[c] - rgb[c] as f32).abs() <= 3.0, "{rgb:?} -> {:?}", r);
            }
        }
    }

    #[test]
    fn colours_are_stable_and_distinct() {
        assert_eq!(class_colour(3), class_colour(3));
        assert_ne!(class_colour(0), class_colour(1));
        assert_eq!(class_colour(-1), class_colour(11));
    }
}

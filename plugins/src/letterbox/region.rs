//! `tritonletterbox roi=`: the region of interest, parsed from the property, checked against the
//! frame at caps time, and cut out of each frame as a view (no copy).
//!
//! `roi=x,y,width,height` in pixels, or with `roi-normalized=true` as fractions of the frame's
//! width and height (`0.25,0.5,0.5,0.5` is the lower middle quarter). Normalised values are turned
//! into pixels by rounding the corners. For YUV 4:2:0 frames the corners move to even pixels
//! (outwards, inside the frame), so that the region's chroma is the frame's: the region actually
//! used is the one the tensor meta records, so boxes map back exactly.

use crate::pixel::{PixelFormat, SrcImage};

/// The most regions one `roi` may name (they go as one batch; models rarely batch more).
pub const MAX_REGIONS: usize = 16;

/// A region of the frame in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The `roi` property as written: four numbers, pixels or fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiSpec {
    values: [f64; 4],
    normalized: bool,
}

impl RoiSpec {
    /// Parses `roi`: regions separated by `;` (empty: the whole frame, no region).
    pub fn parse_list(s: &str, normalized: bool) -> Result<Vec<RoiSpec>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<&str> = s.split(';').map(str::trim).collect();
        if list.len() > MAX_REGIONS {
            return Err(format!(
                "roi: '{s}' names {} regions; expected at most {MAX_REGIONS}",
                list.len()
            ));
        }
        list.into_iter()
            .map(|r| {
                Self::parse(r, normalized)?.ok_or_else(|| {
                    format!(
                        "roi: '{s}' has an empty region; expected x,y,width,height between the ';'"
                    )
                })
            })
            .collect()
    }

    /// Parses one region (empty: the whole frame, `None`).
    pub fn parse(s: &str, normalized: bool) -> Result<Option<RoiSpec>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let v: Vec<f64> = s
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!("roi: '{s}' is not a list of numbers; expected x,y,width,height, e.g. 100,50,640,480")
            })?;
        let values: [f64; 4] = v.as_slice().try_into().map_err(|_| {
            format!(
                "roi: '{s}' has {} values; expected 4 (x,y,width,height)",
                v.len()
            )
        })?;
        if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(format!(
                "roi: '{s}' has a negative or non-finite value; expected x,y,width,height ≥ 0"
            ));
        }
        if values[2] == 0.0 || values[3] == 0.0 {
            return Err(format!(
                "roi: '{s}' has zero width or height; expected a region of at least one pixel"
            ));
        }
        if normalized {
            if values.iter().any(|v| *v > 1.0)
                || values[0] + values[2] > 1.0 + 1e-9
                || values[1] + values[3] > 1.0 + 1e-9
            {
                return Err(format!(
                    "roi: '{s}' with roi-normalized=true reaches outside the frame; expected fractions with x+width ≤ 1 and y+height ≤ 1"
                ));
            }
        } else if values.iter().any(|v| v.fract() != 0.0) {
            return Err(format!(
                "roi: '{s}' has fractional pixels; expected whole pixels, or set roi-normalized=true for fractions of the frame"
            ));
        }
        Ok(Some(RoiSpec { values, normalized }))
    }

    /// The region in a `frame_w×frame_h` frame of `format`, or why it does not fit.
    pub fn resolve(
        &self,
        frame_w: u32,
        frame_h: u32,
        format: PixelFormat,
    ) -> Result<Region, String> {
        let [x, y, w, h] = self.values;
        let (x0, y0, x1, y1) = if self.normalized {
            let (fw, fh) = (frame_w as f64, frame_h as f64);
            (
                (x * fw).round(),
                (y * fh).round(),
                ((x + w) * fw).round().min(fw),
                ((y + h) * fh).round().min(fh),
            )
        } else {
            (x, y, x + w, y + h)
        };
        if x1 > frame_w as f64 || y1 > frame_h as f64 {
            return Err(format!(
                "roi: the region x {x0}..{x1}, y {y0}..{y1} reaches outside the {frame_w}×{frame_h} frame"
            ));
        }
        if x1 <= x0 || y1 <= y0 {
            return Err(format!(
                "roi: the region x {x0}..{x1}, y {y0}..{y1} is empty in the {frame_w}×{frame_h} frame"
            ));
        }
        Ok(Region::snapped(
            [x0 as u32, y0 as u32, x1 as u32, y1 as u32],
            frame_w,
            frame_h,
            format,
        )
        .expect("a non-empty region stays non-empty when it grows"))
    }
}

impl Region {
    /// The region `x0..x1, y0..y1` of a `frame_w×frame_h` frame of `format` (corners inside the
    /// frame), `None` when empty. For YUV 4:2:0 the corners move outwards to even pixels (whole
    /// chroma blocks, so that the region's first column and row are co-sited), staying inside
    /// the frame.
    pub fn snapped(
        [mut x0, mut y0, mut x1, mut y1]: [u32; 4],
        frame_w: u32,
        frame_h: u32,
        format: PixelFormat,
    ) -> Option<Region> {
        if format.packed().is_none() {
            x0 &= !1;
            y0 &= !1;
            x1 = (x1 + (x1 & 1)).min(frame_w);
            y1 = (y1 + (y1 & 1)).min(frame_h);
        }
        (x1 > x0 && y1 > y0).then_some(Region {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        })
    }

    /// The region of `src` as an image of its own: the same planes from the region's corner on.
    pub fn crop<'a>(&self, src: &SrcImage<'a>) -> SrcImage<'a> {
        let (x, y) = (self.x as usize, self.y as usize);
        let mut planes = src.planes;
        match src.format.packed() {
            Some((bpp, _)) => planes[0] = &src.planes[0][y * src.strides[0] + x * bpp..],
            None => {
                planes[0] = &src.planes[0][y * src.strides[0] + x..];
                let (cx, cy) = (x / 2, y / 2);
                if src.format == PixelFormat::Nv12 {
                    planes[1] = &src.planes[1][cy * src.strides[1] + 2 * cx..];
                } else {
                    planes[1] = &src.planes[1][cy * src.strides[1] + cx..];
                    planes[2] = &src.planes[2][cy * src.strides[2] + cx..];
                }
            }
        }
        SrcImage {
            format: src.format,
            width: self.width as usize,
            height: self.height as usize,
            planes,
            strides: src.strides,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(s: &str, normalized: bool, w: u32, h: u32, f: PixelFormat) -> Result<Region, String> {
        RoiSpec::parse(s, normalized)?
            .expect("a region")
            .resolve(w, h, f)
    }

    #[test]
    fn pixels_and_fractions_name_the_same_region() {
        let r = region("480,270,960,540", false, 1920, 1080, PixelFormat::Rgb).unwrap();
        assert_eq!(
            r,
            Region {
                x: 480,
                y: 270,
                width: 960,
                height: 540
            }
        );
        let n = region("0.25,0.25,0.5,0.5", true, 1920, 1080, PixelFormat::Rgb).unwrap();
        assert_eq!(n, r);
        assert_eq!(RoiSpec::parse("  ", false), Ok(None));
        assert_eq!(RoiSpec::parse_list("  ", false), Ok(vec![]));
        let two = RoiSpec::parse_list("480,270,960,540 ; 0,0,10,20", false).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].resolve(1920, 1080, PixelFormat::Rgb), Ok(r));
        assert_eq!(
            two[1].resolve(1920, 1080, PixelFormat::Rgb),
            Ok(Region {
                x: 0,
                y: 0,
                width: 10,
                height: 20
            })
        );
    }

    #[test]
    fn yuv_420_regions_start_and_end_on_even_pixels() {
        let r = region("101,51,200,99", false, 320, 240, PixelFormat::I420).unwrap();
        assert_eq!(
            r,
            Region {
                x: 100,
                y: 50,
                width: 202,
                height: 100
            }
        );
        // At the frame's odd edge the end stays inside the frame.
        let r = region("1,1,318,238", false, 319, 239, PixelFormat::Nv12).unwrap();
        assert_eq!((r.x, r.y, r.x + r.width, r.y + r.height), (0, 0, 319, 239));
        // Packed formats keep the region as written.
        let r = region("101,51,200,99", false, 320, 240, PixelFormat::Bgrx).unwrap();
        assert_eq!(
            r,
            Region {
                x: 101,
                y: 51,
                width: 200,
                height: 99
            }
        );
    }

    #[test]
    fn bad_regions_are_refused_naming_the_property_and_what_was_expected() {
        let cases = [
            ("1,2,3", false, "has 3 values; expected 4"),
            ("a,b,c,d", false, "not a list of numbers"),
            ("0,0,0,10", false, "zero width or height"),
            ("0,0,10,0", false, "zero width or height"),
            ("-1,0,10,10", false, "negative"),
            ("0.5,0,10,10", false, "fractional pixels"),
            ("0.5,0,0.6,1", true, "reaches outside the frame"),
        ];
        for (s, n, want) in cases {
            let e = RoiSpec::parse(s, n).unwrap_err();
            assert!(e.starts_with("roi: ") && e.contains(want), "{s}: {e}");
        }
        let e = RoiSpec::parse_list("0,0,10,10;;20,20,10,10", false).unwrap_err();
        assert!(e.starts_with("roi: ") && e.contains("empty region"), "{e}");
        let e = RoiSpec::parse_list("0,0,10,10;20,20,10", false).unwrap_err();
        assert!(e.contains("has 3 values; expected 4"), "{e}");
        let e =
            RoiSpec::parse_list(&vec!["0,0,1,1"; MAX_REGIONS + 1].join(";"), false).unwrap_err();
        assert!(e.contains("17 regions; expected at most 16"), "{e}");
        let e = region("300,0,100,100", false, 320, 240, PixelFormat::Rgb).unwrap_err();
        assert!(e.contains("reaches outside the 320×240 frame"), "{e}");
        let e = region("0,200,10,41", false, 320, 240, PixelFormat::Rgb).unwrap_err();
        assert!(e.contains("reaches outside"), "{e}");
        // A fraction too small to cover a pixel of this frame.
        let e = region("0.1,0.1,0.001,0.5", true, 320, 240, PixelFormat::Rgb).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn a_crop_reads_the_regions_pixels_in_every_format() {
        // A 6×4 frame whose every byte names its plane, row and column.
        let (w, h) = (6usize, 4usize);
        let region = Region {
            x: 2,
            y: 2,
            width: 4,
            height: 2,
        };
        let packed: Vec<u8> = (0..h)
            .flat_map(|y| (0..w * 3).map(move |i| (y * 100 + i) as u8))
            .collect();
        let src = SrcImage {
            format: PixelFormat::Rgb,
            width: w,
            height: h,
            planes: [&packed, &[], &[]],
            strides: [w * 3, 0, 0],
        };
        let c = region.crop(&src);
        assert_eq!((c.width, c.height), (4, 2));
        assert_eq!(c.planes[0][0], (2 * 100 + 2 * 3) as u8);
        assert_eq!(c.planes[0][c.strides[0]], (3 * 100 + 2 * 3) as u8);
        let luma: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (y * 10 + x) as u8))
            .collect();
        let u: Vec<u8> = (0..h / 2)
            .flat_map(|y| (0..w / 2).map(move |x| (100 + y * 10 + x) as u8))
            .collect();
        let v: Vec<u8> = u.iter().map(|b| b + 100).collect();
        let i420 = SrcImage {
            format: PixelFormat::I420,
            width: w,
            height: h,
            planes: [&luma, &u, &v],
            strides: [w, w / 2, w / 2],
        };
        let c = region.crop(&i420);
        assert_eq!(
            (c.planes[0][0], c.planes[1][0], c.planes[2][0]),
            (22, 111, 211)
        );
        let uv: Vec<u8> = (0..h / 2)
            .flat_map(|y| (0..w).map(move |x| (100 + y * 10 + x) as u8))
            .collect();
        let nv12 = SrcImage {
            format: PixelFormat::Nv12,
            width: w,
            height: h,
            planes: [&luma, &uv, &[]],
            strides: [w, w, 0],
        };
        let c = region.crop(&nv12);
        assert_eq!(
            (c.planes[0][0], c.planes[1][0], c.planes[1][1]),
            (22, 112, 113)
        );
    }
}

//! Row-level pieces of the letterbox resizer (`resize.rs`): the taps, reading them from source
//! rows (gathered, or in fixed chunks where they are regular), colour conversion of a row, the
//! blend and the UINT8 rounding. Each is `#[inline(always)]` where the row loops use it, so the
//! AVX2 build of those loops compiles it for AVX2 too.

use super::kernel::{PixelFormat, SrcImage, YuvToRgb};

/// One output column/row tap: source index and weight of the next source pixel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tap {
    pub(super) i0: usize,
    pub(super) i1: usize,
    pub(super) f: f32,
}

pub(super) fn taps(src: usize, dst: usize) -> Vec<Tap> {
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

/// `out[x] = (h0[x]·g + h1[x]·f)·a + b` (or `h0[x]·a + b` when f is 0: same value, one read).
#[inline(always)]
pub(super) fn blend(out: &mut [f32], h0: &[f32], h1: &[f32], g: f32, f: f32, a: f32, b: f32) {
    if f == 0.0 {
        for (o, p) in out.iter_mut().zip(h0) {
            *o = (p * g) * a + b;
        }
    } else {
        for ((o, p), q) in out.iter_mut().zip(h0).zip(h1) {
            *o = (p * g + q * f) * a + b;
        }
    }
}

/// `v.round().clamp(0.0, 255.0) as u8` (half away from zero), in operations that vectorise.
#[inline(always)]
pub(super) fn round_u8(v: f32) -> u8 {
    // Not `clamp`: that keeps NaN, which the unchecked cast below must never see; `max` maps NaN
    // to 0, as `NaN as u8` did before.
    #[allow(clippy::manual_clamp)]
    let v = v.max(0.0).min(255.0);
    // SAFETY: v is finite and in 0..=255, so the truncation is exact and in i32's range (the
    // unchecked cast is a plain cvttps2dq, which vectorises; `as` adds saturation checks).
    let t = unsafe { v.to_int_unchecked::<i32>() };
    (t + (v - t as f32 >= 0.5) as i32) as u8
}

/// Row `y` of plane `k`, from its start to the end of the plane.
#[inline(always)]
pub(super) fn src_row<'a>(src: &SrcImage<'a>, k: usize, y: usize) -> &'a [u8] {
    &src.planes[k][y * src.strides[k]..]
}

/// See `Plan::regular` (resize.rs): the step is at least 2, so both taps lie inside one chunk.
pub(super) fn regular(xs: &[Tap], src_w: usize) -> Option<(usize, usize, f32)> {
    let (t0, t1) = (xs.first()?, xs.get(1)?);
    let step = t1.i0.checked_sub(t0.i0)?;
    let ok = step >= 2
        && xs.last()?.i1 < src_w
        && xs.iter().enumerate().all(|(x, t)| {
            t.i0 == t0.i0 + step * x && t.i1 == t.i0 + 1 && t.f.to_bits() == t0.f.to_bits()
        });
    ok.then_some((step, t0.i0, t0.f))
}

/// Splits `BPP`-byte pixels into planes of their bytes (plane i: byte i of every pixel; the 4th
/// byte of 4-byte pixels is dropped). Constant offsets, so the compiler vectorises the split.
#[inline(always)]
pub(super) fn deinterleave<const BPP: usize>(row: &[u8], out: [&mut [u8]; 3]) {
    let [p0, p1, p2] = out;
    for (((p, a), b), c) in row.chunks_exact(BPP).zip(p0).zip(p1).zip(p2) {
        (*a, *b, *c) = (p[0], p[1], p[2]);
    }
}

/// Source row `y` as RGB floats (0..255) into `rgb` (3·width).
#[inline(always)]
pub(super) fn convert_row(src: &SrcImage, yuv: &YuvToRgb, y: usize, rgb: &mut [f32]) {
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

/// `vals` as IEEE half floats (round to nearest even, as `half` rounds), 8 at a time by F16C,
/// into `d` (2 bytes each, little-endian).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn f16_row_f16c(vals: &[f32], d: &mut [u8]) {
    use std::arch::x86_64::*;
    assert_eq!(d.len(), vals.len() * 2, "half row size");
    let full = vals.len() / 8;
    for i in 0..full {
        // SAFETY: reads vals[8i..8i + 8] and writes d[16i..16i + 16], both inside (full·8 ≤ len).
        unsafe {
            let v = _mm256_loadu_ps(vals.as_ptr().add(8 * i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(d.as_mut_ptr().add(16 * i).cast(), h);
        }
    }
    for (v, o) in vals[8 * full..]
        .iter()
        .zip(d[16 * full..].chunks_exact_mut(2))
    {
        o.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_u8_is_round_then_clamp() {
        let edge = [
            0.49999997f32,
            0.5,
            1.5,
            2.5,
            254.5,
            254.49998,
            255.0,
            255.5,
            300.0,
            -0.4,
            -3.0,
        ];
        let all = (0..=2600)
            .map(|i| i as f32 / 10.0 - 1.0)
            .chain(edge)
            .chain([f32::NAN]);
        for v in all {
            assert_eq!(round_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn f16c_rows_round_as_the_software_conversion() {
        if !std::is_x86_feature_detected!("f16c") {
            // CI's processors have F16C: there this test must run.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI's CPU lacks F16C: the F16C rows are untested"
            );
            eprintln!("SKIPPED: this CPU has no F16C");
            return;
        }
        // Pixel values, normalised ones, halfway cases between two halves, subnormals, the
        // largest half and beyond, infinities; 8 at a time and a tail.
        let mut vals: Vec<f32> = (0..=255).map(|v| v as f32 / 255.0).collect();
        vals.extend((0..=255).map(|v| v as f32 * 1.7 - 100.0));
        vals.extend([
            1.0 + 1.0 / 2048.0,
            1.0 + 3.0 / 2048.0,
            2.0f32.powi(-20),
            -6.1e-5,
        ]);
        vals.extend([
            65504.0,
            65520.0,
            1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.333,
        ]);
        let mut d = vec![0u8; vals.len() * 2];
        // SAFETY: the CPU has F16C (checked above); every F16C CPU has AVX.
        unsafe { f16_row_f16c(&vals, &mut d) };
        for (v, h) in vals.iter().zip(d.chunks_exact(2)) {
            let want = half::f16::from_f32_const(*v).to_bits();
            assert_eq!(u16::from_le_bytes([h[0], h[1]]), want, "{v}");
        }
    }

    #[test]
    fn regular_taps_are_recognised_only_where_every_column_follows() {
        // 2×: column x reads 2x and 2x+1 with f ½; 3×: 3x+1 (f 0); 6×: 6x+2 (f ½).
        assert_eq!(regular(&taps(1280, 640), 1280), Some((2, 0, 0.5)));
        assert_eq!(regular(&taps(1920, 640), 1920), Some((3, 1, 0.0)));
        assert_eq!(regular(&taps(3840, 640), 3840), Some((6, 2, 0.5)));
        // Not an integer ratio, an upscale, equal sizes, too few columns: no.
        assert_eq!(regular(&taps(1000, 640), 1000), None);
        assert_eq!(regular(&taps(320, 640), 320), None);
        assert_eq!(regular(&taps(640, 640), 640), None);
        assert_eq!(regular(&taps(2, 1), 2), None);
        // Hand-made lists: each condition on its own.
        let t = |i0, i1, f| Tap { i0, i1, f };
        let even = [t(0, 1, 0.5), t(2, 3, 0.5), t(4, 5, 0.5)];
        assert_eq!(regular(&even, 6), Some((2, 0, 0.5)));
        assert_eq!(
            regular(&even, 5),
            None,
            "the last second tap outside the row"
        );
        let uneven = [t(0, 1, 0.5), t(2, 3, 0.5), t(5, 6, 0.5)];
        assert_eq!(regular(&uneven, 7), None, "first taps not evenly spaced");
        let clamped = [t(0, 1, 0.5), t(2, 3, 0.5), t(4, 4, 0.5)];
        assert_eq!(
            regular(&clamped, 5),
            None,
            "a second tap that is not the next pixel"
        );
        let weights = [t(0, 1, 0.5), t(2, 3, 0.5), t(4, 5, 0.25)];
        assert_eq!(regular(&weights, 6), None, "weights differ");
    }
}

//! Finished rows into the tensor: the vertical blend with normalisation, rounding to UINT8,
//! FP16 conversion (F16C where the CPU has it) and the store of a channel row in the tensor's
//! type and layout. `#[inline(always)]` where the row loops use them, so that the AVX2 build of
//! those loops compiles them for AVX2 too.

use super::tensor::DType;

/// The tensor rows `y0..y1` of one band: per channel plane (NCHW) or interleaved (NHWC).
pub(super) enum Band<'a> {
    Planar([&'a mut [u8]; 3]),
    Packed(&'a mut [u8]),
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

/// Stores one finished channel row `vals` at band row `r`, tensor column `x0`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn store_row(
    dtype: DType,
    out: &mut Band,
    k: usize,
    r: usize,
    w: usize,
    x0: usize,
    vals: &[f32],
    simd: bool,
) {
    let n = vals.len();
    let (dst, start, step) = match out {
        Band::Planar(p) => (&mut *p[k], r * w + x0, 1),
        Band::Packed(p) => (&mut **p, (r * w + x0) * 3 + k, 3),
    };
    match dtype {
        DType::F32 => {
            let d = &mut dst[start * 4..];
            for (i, v) in vals.iter().enumerate() {
                d[i * step * 4..i * step * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        #[cfg(target_arch = "x86_64")]
        DType::F16 if step == 1 && simd && std::is_x86_feature_detected!("f16c") => {
            let d = &mut dst[start * 2..start * 2 + n * 2];
            // SAFETY: the CPU has F16C (checked) and AVX (implied by `simd`, set only with AVX2).
            unsafe { f16_row_f16c(vals, d) };
        }
        DType::F16 => {
            // Converted 64 at a time by `half` (F16C where the CPU has it; same rounding).
            use half::slice::HalfFloatSliceExt;
            let d = &mut dst[start * 2..];
            let mut tmp = [half::f16::ZERO; 64];
            for (c, chunk) in vals.chunks(64).enumerate() {
                let t = &mut tmp[..chunk.len()];
                t.convert_from_f32_slice(chunk);
                for (j, v) in t.iter().enumerate() {
                    let i = (c * 64 + j) * step * 2;
                    d[i..i + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        DType::U8 if step == 1 => {
            for (d, v) in dst[start..start + n].iter_mut().zip(vals) {
                *d = round_u8(*v);
            }
        }
        DType::U8 => {
            let d = &mut dst[start..];
            for i in 0..n {
                d[i * step] = round_u8(vals[i]);
            }
        }
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
}

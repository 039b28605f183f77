//! Source rows into RGB: a row of any supported pixel format as RGB floats (YUV converted at
//! source resolution), and packed pixels split into byte planes. `#[inline(always)]` so that the
//! AVX2 build of the row loops compiles them for AVX2 too.

use crate::pixel::{PixelFormat, SrcImage, YuvToRgb};

/// Row `y` of plane `k`, from its start to the end of the plane.
#[inline(always)]
pub(super) fn src_row<'a>(src: &SrcImage<'a>, k: usize, y: usize) -> &'a [u8] {
    &src.planes[k][y * src.strides[k]..]
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

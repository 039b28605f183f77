//! Test inputs shared by the decoders' tests: tensors as bytes, named outputs, raw YOLO heads.

use super::Output;

pub(super) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn out<'a>(
    name: &'a str,
    dtype: &'a str,
    shape: &'a [i64],
    data: &'a [u8],
) -> Output<'a> {
    Output {
        name,
        dtype,
        shape,
        data,
    }
}

/// Builds a [1, 4+nc, n] raw head from (cx, cy, w, h, class, score) anchors.
pub(super) fn yolo(nc: usize, n: usize, anchors: &[(f32, f32, f32, f32, usize, f32)]) -> Vec<f32> {
    let mut v = vec![0.0; (4 + nc) * n];
    for (i, &(cx, cy, w, h, c, s)) in anchors.iter().enumerate() {
        v[i] = cx;
        v[n + i] = cy;
        v[2 * n + i] = w;
        v[3 * n + i] = h;
        v[(4 + c) * n + i] = s;
    }
    v
}

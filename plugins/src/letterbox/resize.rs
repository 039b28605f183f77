//! The letterbox resizer: colour conversion + bilinear resize + normalisation into a model tensor,
//! in one pass over the output rows.
//!
//! Sampling is OpenCV's `INTER_LINEAR` with half-pixel centres (see [`super::tensor`]). Per output
//! row, the one or two source rows it needs are converted and resampled horizontally into planar
//! channel rows (kept for the next output row when it needs them too); the vertical blend, the
//! normalisation and the store then run as one contiguous loop per channel, which the compiler
//! vectorises. A tap whose weight is exactly zero is skipped (an integer downscale such as
//! 1920×1080 → 640×360 reads one source row and one pixel per output pixel), which leaves every
//! value bit-identical.
//!
//! Strong downscales read the column taps' bytes through gathers planned once per geometry
//! (`gather.rs`); packed rows blended two at a time are split into byte planes first.
//!
//! Speed paths, all producing bit-identical tensors (IEEE operations in the same order, no fused
//! multiply-add): on x86-64 the row loops are compiled a second time for AVX2 and chosen at run
//! time when the CPU has it, with SSSE3 shuffles for the gathers and F16C for FP16 rows
//! ([`Resizer::set_simd`] forces the portable path, for tests); aarch64 gets NEON from the
//! baseline target. [`Resizer::set_threads`] splits the output rows into bands
//! run on scoped threads, each with its own row buffers.

use super::convert::{convert_row, deinterleave, src_row};
use super::gather::{PackedGathers, YuvGathers};
use super::geometry::Letterbox;
use super::store::{Band, blend, store_row};
use super::taps::{Tap, regular, taps};
use super::tensor::{DType, Layout, TensorSpec};
use crate::pixel::{SrcImage, YuvToRgb};

/// What every band reads: taps, normalisation, the spec. Immutable during a run.
struct Plan {
    geometry: Letterbox,
    spec: TensorSpec,
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    /// Normalisation per output channel k: out = v·a[k] + b[k], v from RGB channel `chan[k]`.
    a: [f32; 3],
    b: [f32; 3],
    chan: [usize; 3],
    /// A tensor row of the padding value, per output channel (normalised).
    pad: [Vec<f32>; 3],
    /// The column taps' weights as rows (1 − f, f), and whether any f is non-zero.
    gx: Vec<f32>,
    fx: Vec<f32>,
    x_blend: bool,
    /// `Some((step, first, f))` when column x's taps are `first + step·x` and the next pixel,
    /// with the same weight f, for every x (integer downscales: 2× → step 2, f ½): packed rows
    /// that need two source rows then blend those first (`vertical_first`), then the taps.
    regular: Option<(usize, usize, f32)>,
    /// The column taps' byte gathers for YUV and packed sources (strong downscales only).
    yuv_taps: Option<YuvGathers>,
    packed_taps: Option<PackedGathers>,
    avx2: bool,
}

/// Row buffers of one band (one thread).
struct Scratch {
    /// Source row converted to RGB, 3·src_w (used when the downscale is mild).
    rgb: Vec<f32>,
    /// Two horizontally resampled source rows, planar R, G, B (new_w each), and their source rows.
    h: [[Vec<f32>; 3]; 2],
    h_src: [usize; 2],
    /// One finished output channel row (F16/U8 stores and NHWC interleave go through it).
    vals: Vec<f32>,
    /// YUV samples gathered at the taps (Y, U, V; new_w each), and the second taps converted.
    taps: [Vec<u8>; 3],
    taps1: [Vec<u8>; 3],
    /// Two packed source rows split into planes of their bytes (src_w each), and one channel of
    /// the two blended (vertical first).
    planes: [[Vec<u8>; 3]; 2],
    vrow: Vec<f32>,
    rgb1: [Vec<f32>; 3],
}

impl Scratch {
    fn new(src_w: usize, nw: usize) -> Scratch {
        let row = || [vec![0.0; nw], vec![0.0; nw], vec![0.0; nw]];
        Scratch {
            rgb: vec![0.0; 3 * src_w],
            h: [row(), row()],
            h_src: [usize::MAX; 2],
            vals: vec![0.0; nw],
            taps: [vec![0; nw], vec![0; nw], vec![0; nw]],
            taps1: [vec![0; nw], vec![0; nw], vec![0; nw]],
            planes: std::array::from_fn(|_| std::array::from_fn(|_| vec![0; src_w])),
            vrow: vec![0.0; src_w],
            rgb1: [vec![0.0; nw], vec![0.0; nw], vec![0.0; nw]],
        }
    }
}

/// What one band computes: tensor rows `y0..y1` of `src`.
struct Job<'a> {
    src: &'a SrcImage<'a>,
    yuv: &'a YuvToRgb,
    y0: usize,
    y1: usize,
}

/// Reusable letterbox resizer for one (source size, tensor spec) pair.
pub struct Resizer {
    pub geometry: Letterbox,
    plan: Plan,
    scratch: Vec<Scratch>,
    /// Tensor rows where each thread's band starts, and the end (`threads() + 1` values).
    edges: Vec<usize>,
}

impl Resizer {
    pub fn new(src_w: u32, src_h: u32, spec: &TensorSpec) -> Resizer {
        let geometry = Letterbox::new(src_w, src_h, spec.width, spec.height, spec.scale_up);
        let xs = taps(src_w as usize, geometry.new_w as usize);
        let ys = taps(src_h as usize, geometry.new_h as usize);
        let chan = if spec.bgr { [2, 1, 0] } else { [0, 1, 2] };
        let mut a = [1.0; 3];
        let mut b = [0.0; 3];
        if spec.dtype != DType::U8 {
            for k in 0..3 {
                let c = chan[k];
                a[k] = spec.scale / spec.std[c];
                b[k] = -spec.mean[c] / spec.std[c];
            }
        }
        let pad =
            std::array::from_fn(|k| vec![spec.pad_value as f32 * a[k] + b[k]; spec.width as usize]);
        let plan = Plan {
            gx: xs.iter().map(|t| 1.0 - t.f).collect(),
            fx: xs.iter().map(|t| t.f).collect(),
            x_blend: xs.iter().any(|t| t.f != 0.0),
            regular: regular(&xs, src_w as usize),
            yuv_taps: (2 * xs.len() <= src_w as usize).then(|| YuvGathers::new(&xs)),
            packed_taps: (2 * xs.len() <= src_w as usize).then(|| PackedGathers::new(&xs)),
            pad,
            geometry,
            spec: spec.clone(),
            xs,
            ys,
            a,
            b,
            chan,
            avx2: false,
        };
        let mut r = Resizer {
            geometry,
            scratch: Vec::new(),
            edges: Vec::new(),
            plan,
        };
        r.set_threads(1);
        r.set_simd(true);
        r
    }

    /// The spec this resizer was built for.
    pub fn spec(&self) -> &TensorSpec {
        &self.plan.spec
    }

    /// Splits the output rows across `n` threads (1 = the calling thread only).
    pub fn set_threads(&mut self, n: usize) {
        let g = self.geometry;
        let (w, nw) = (g.src_w as usize, g.new_w as usize);
        let n = n.max(1);
        self.scratch.resize_with(n, || Scratch::new(w, nw));
        // Band edges: the content rows split evenly, padding above/below to the first/last band.
        let (h, top, nh) = (
            self.plan.spec.height as usize,
            g.top as usize,
            g.new_h as usize,
        );
        self.edges = (0..=n)
            .map(|i| match i {
                0 => 0,
                i if i == n => h,
                i => top + nh * i / n,
            })
            .collect();
    }

    pub fn threads(&self) -> usize {
        self.scratch.len()
    }

    /// `false` forces the portable row loops even where the CPU has AVX2 (the tensor is the same).
    pub fn set_simd(&mut self, on: bool) {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = on;
        #[cfg(target_arch = "x86_64")]
        {
            self.plan.avx2 = on && std::is_x86_feature_detected!("avx2");
        }
    }

    /// The row loops in use: `"avx2"` or `"portable"`.
    pub fn simd_path(&self) -> &'static str {
        if self.plan.avx2 { "avx2" } else { "portable" }
    }

    /// Converts, resizes and normalises `src` into `out` (exactly `spec.byte_size()` bytes).
    pub fn run(&mut self, src: &SrcImage, yuv: &YuvToRgb, out: &mut [u8]) {
        let g = self.geometry;
        assert_eq!(
            src.width, g.src_w as usize,
            "source width changed; build a new Resizer"
        );
        assert_eq!(
            src.height, g.src_h as usize,
            "source height changed; build a new Resizer"
        );
        assert_eq!(out.len(), self.plan.spec.byte_size(), "tensor buffer size");
        let h = self.plan.spec.height as usize;
        let plan = &self.plan;
        if self.scratch.len() == 1 {
            // One band, the whole tensor: no allocation per frame.
            let band = match plan.spec.layout {
                Layout::Nhwc => Band::Packed(out),
                Layout::Nchw => {
                    let (p0, rest) = out.split_at_mut(out.len() / 3);
                    let (p1, p2) = rest.split_at_mut(p0.len());
                    Band::Planar([p0, p1, p2])
                }
            };
            let job = Job {
                src,
                yuv,
                y0: 0,
                y1: h,
            };
            plan.band(&mut self.scratch[0], &job, band);
            return;
        }
        let bands = split_bands(&plan.spec, out, &self.edges);
        std::thread::scope(|s| {
            for ((band, scratch), e) in bands
                .into_iter()
                .zip(&mut self.scratch)
                .zip(self.edges.windows(2))
            {
                let job = Job {
                    src,
                    yuv,
                    y0: e[0],
                    y1: e[1],
                };
                s.spawn(move || plan.band(scratch, &job, band));
            }
        });
    }
}

/// Splits the tensor into the bands `edges[i]..edges[i+1]` (tensor rows).
fn split_bands<'a>(spec: &TensorSpec, out: &'a mut [u8], edges: &[usize]) -> Vec<Band<'a>> {
    let row = spec.width as usize * spec.dtype.size();
    match spec.layout {
        Layout::Nhwc => {
            let mut rest = out;
            let mut bands = Vec::new();
            for e in edges.windows(2) {
                let (band, r) = rest.split_at_mut((e[1] - e[0]) * row * 3);
                bands.push(Band::Packed(band));
                rest = r;
            }
            bands
        }
        Layout::Nchw => {
            let plane = row * spec.height as usize;
            let (p0, rest) = out.split_at_mut(plane);
            let (p1, p2) = rest.split_at_mut(plane);
            let mut planes = [p0, p1, p2];
            let mut bands = Vec::new();
            for e in edges.windows(2) {
                let mut parts: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
                for (k, p) in planes.iter_mut().enumerate() {
                    let (band, r) = std::mem::take(p).split_at_mut((e[1] - e[0]) * row);
                    parts[k] = band;
                    *p = r;
                }
                bands.push(Band::Planar(parts));
            }
            bands
        }
    }
}

impl Plan {
    /// Fills the band's padding and computes its content rows (tensor rows `y0..y1`).
    fn band(&self, s: &mut Scratch, job: &Job, mut out: Band) {
        s.h_src = [usize::MAX; 2];
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only when the running CPU reports AVX2 (set_simd).
            unsafe { self.band_avx2(s, job, &mut out) };
            return;
        }
        self.band_body(s, job, &mut out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn band_avx2(&self, s: &mut Scratch, job: &Job, out: &mut Band) {
        self.band_body(s, job, out);
    }

    #[inline(always)]
    fn band_body(&self, s: &mut Scratch, job: &Job, out: &mut Band) {
        let &Job { src, yuv, y0, y1 } = job;
        let g = &self.geometry;
        let (left, top, nw, nh) = (
            g.left as usize,
            g.top as usize,
            g.new_w as usize,
            g.new_h as usize,
        );
        let w = self.spec.width as usize;
        for y in y0..y1 {
            let (r, yr) = (y - y0, y);
            if yr < top || yr >= top + nh {
                self.fill(out, r, 0, w);
                continue;
            }
            self.fill(out, r, 0, left);
            self.fill(out, r, left + nw, w);
            let mut t = self.ys[yr - top];
            let (k0, k1) = if let (Some(reg), Some((bpp, o))) = (self.regular, src.format.packed())
                && t.f != 0.0
            {
                // Packed, regular taps, two source rows: blend the rows first (one contiguous,
                // vectorised loop over the bytes the taps read), then the taps once.
                vertical_first(s, src, reg, bpp, o, t);
                s.h_src = [usize::MAX; 2]; // slot 0 now holds a blend, not a source row
                t.f = 0.0;
                (0, 0)
            } else if t.f == 0.0 {
                let k = ensure_row(self, s, src, yuv, t.i0, usize::MAX);
                (k, k)
            } else {
                let k0 = ensure_row(self, s, src, yuv, t.i0, t.i1);
                (k0, ensure_row(self, s, src, yuv, t.i1, t.i0))
            };
            for k in 0..3 {
                let c = self.chan[k];
                let (a, b) = (self.a[k], self.b[k]);
                let (h0, h1) = (&s.h[k0][c], &s.h[k1][c]);
                let (f, gw) = (t.f, 1.0 - t.f);
                // F32 straight into the tensor row where it is aligned; else through `vals`.
                if let (DType::F32, Band::Planar(p)) = (self.spec.dtype, &mut *out) {
                    let bytes = &mut p[k][(r * w + left) * 4..(r * w + left + nw) * 4];
                    // SAFETY: any bit pattern is a valid f32; align_to_mut returns only the aligned middle.
                    let (head, mid, tail) = unsafe { bytes.align_to_mut::<f32>() };
                    if head.is_empty() && tail.is_empty() && cfg!(target_endian = "little") {
                        blend(mid, h0, h1, gw, f, a, b);
                        continue;
                    }
                }
                blend(&mut s.vals, h0, h1, gw, f, a, b);
                store_row(self.spec.dtype, out, k, r, w, left, &s.vals, self.avx2);
            }
        }
    }

    /// Fills tensor columns `x0..x1` of band row `r` with the padding value, every channel.
    #[inline(always)]
    fn fill(&self, out: &mut Band, r: usize, x0: usize, x1: usize) {
        if x1 <= x0 {
            return;
        }
        let w = self.spec.width as usize;
        for k in 0..3 {
            match (self.spec.dtype, &mut *out) {
                (DType::U8, Band::Planar(p)) => {
                    p[k][r * w + x0..r * w + x1].fill(self.spec.pad_value)
                }
                (DType::F32, Band::Planar(p)) if cfg!(target_endian = "little") => {
                    let bytes = &mut p[k][(r * w + x0) * 4..(r * w + x1) * 4];
                    // SAFETY: any bit pattern is a valid f32; align_to_mut returns only the aligned middle.
                    match unsafe { bytes.align_to_mut::<f32>() } {
                        ([], mid, []) => mid.fill(self.pad[k][0]),
                        _ => {
                            store_row(DType::F32, out, k, r, w, x0, &self.pad[k][..x1 - x0], false)
                        }
                    }
                }
                (dtype, out) => {
                    store_row(dtype, out, k, r, w, x0, &self.pad[k][..x1 - x0], self.avx2)
                }
            }
        }
    }
}

/// Makes sure source row `want` is converted and horizontally resampled into one of the two
/// slots (never the one holding `keep`); returns the slot.
#[inline(always)]
fn ensure_row(
    p: &Plan,
    s: &mut Scratch,
    src: &SrcImage,
    yuv: &YuvToRgb,
    want: usize,
    keep: usize,
) -> usize {
    if let Some(k) = s.h_src.iter().position(|&r| r == want) {
        return k;
    }
    let slot = if s.h_src[0] == keep { 1 } else { 0 };
    let [hr, hg, hb] = &mut s.h[slot];
    if 2 * p.xs.len() <= src.width {
        // Strong downscale: convert just the taps of each output pixel (one where f is 0).
        let out = [&mut hr[..], &mut hg[..], &mut hb[..]];
        match src.format.packed() {
            Some((bpp, o)) => {
                // Gather the bytes at both taps into planar rows, then blend in vectorised rows.
                let row = src_row(src, 0, want);
                let g = p.packed_taps.as_ref().expect("planned");
                g.gather(row, bpp, o, 0, &mut s.taps, p.avx2);
                if p.x_blend {
                    g.gather(row, bpp, o, 1, &mut s.taps1, p.avx2);
                }
                for ((h, a), q) in out.into_iter().zip(&s.taps).zip(&s.taps1) {
                    if p.x_blend {
                        for ((((o, a), q), g), f) in
                            h.iter_mut().zip(a).zip(q).zip(&p.gx).zip(&p.fx)
                        {
                            *o = *a as f32 * g + *q as f32 * f;
                        }
                    } else {
                        for (o, a) in h.iter_mut().zip(a) {
                            *o = *a as f32;
                        }
                    }
                }
            }
            None => {
                // Gather the samples at the taps, convert them in vectorised rows, blend.
                let gathers = p.yuv_taps.as_ref().expect("planned for strong downscales");
                let [ty, tu, tv] = &mut s.taps;
                let [r1, g1, b1] = &mut s.rgb1;
                gathers.gather(src, want, 0, [ty, tu, tv], p.avx2);
                yuv.convert_rows(ty, tu, tv, out);
                if p.x_blend {
                    gathers.gather(src, want, 1, [ty, tu, tv], p.avx2);
                    yuv.convert_rows(ty, tu, tv, [r1, g1, b1]);
                    for (h, q) in [(hr, r1), (hg, g1), (hb, b1)] {
                        for (((o, q), g), f) in h.iter_mut().zip(q.iter()).zip(&p.gx).zip(&p.fx) {
                            *o = *o * g + q * f;
                        }
                    }
                }
            }
        }
    } else {
        convert_row(src, yuv, want, &mut s.rgb);
        for (x, t) in p.xs.iter().enumerate() {
            let a = &s.rgb[3 * t.i0..3 * t.i0 + 3];
            let q = &s.rgb[3 * t.i1..3 * t.i1 + 3];
            let g = 1.0 - t.f;
            hr[x] = a[0] * g + q[0] * t.f;
            hg[x] = a[1] * g + q[1] * t.f;
            hb[x] = a[2] * g + q[2] * t.f;
        }
    }
    s.h_src[slot] = want;
    slot
}

/// Packed source, regular taps (see [`Plan::regular`]): per channel, blends source rows `t.i0`
/// and `t.i1` over the pixels the column taps read (3-byte pixels split into byte planes first,
/// 4-byte ones read as words), then the taps of that one blended row, into slot 0 of the planar
/// rows. Every loop runs over contiguous rows.
#[inline(always)]
fn vertical_first(
    s: &mut Scratch,
    src: &SrcImage,
    reg: (usize, usize, f32),
    bpp: usize,
    o: [usize; 3],
    t: Tap,
) {
    let (step, first, f) = reg;
    let n = s.h[0][0].len();
    // The pixels the taps read: first .. first + step·(n − 1) + 2.
    let px = step * (n - 1) + 2;
    let (lo, hi) = (first * bpp, (first + px) * bpp);
    let rows = [t.i0, t.i1].map(|y| &src_row(src, 0, y)[lo..hi]);
    if bpp == 3 {
        for (k, row) in rows.into_iter().enumerate() {
            let [p0, p1, p2] = &mut s.planes[k];
            deinterleave::<3>(row, [&mut p0[..px], &mut p1[..px], &mut p2[..px]]);
        }
    }
    let (g, fy) = (1.0 - t.f, t.f);
    let gx = 1.0 - f;
    for (c, h) in s.h[0].iter_mut().enumerate() {
        let v = &mut s.vrow[..px];
        if bpp == 3 {
            let (a, b) = (&s.planes[0][o[c]][..px], &s.planes[1][o[c]][..px]);
            for ((d, a), b) in v.iter_mut().zip(a).zip(b) {
                *d = *a as f32 * g + *b as f32 * fy;
            }
        } else {
            // 4-byte pixels: the channel's byte of each pixel as a shift of the pixel (one
            // shift for all lanes), no byte planes.
            let shift = 8 * o[c] as u32;
            let byte = |p: &[u8]| (u32::from_le_bytes([p[0], p[1], p[2], p[3]]) >> shift) as u8;
            let (a, b) = (rows[0].chunks_exact(4), rows[1].chunks_exact(4));
            for ((d, a), b) in v.iter_mut().zip(a).zip(b) {
                *d = byte(a) as f32 * g + byte(b) as f32 * fy;
            }
        }
        if step == 2 {
            for (h, c) in h.iter_mut().zip(v.chunks_exact(2)) {
                *h = c[0] * gx + c[1] * f;
            }
        } else {
            for (h, c) in h.iter_mut().zip(v.chunks(step)) {
                *h = c[0] * gx + c[1] * f;
            }
        }
    }
}

//! Golden tests of the letterbox kernel against a straightforward float reference written here.

use gsttriton::letterbox::Resizer;
use gsttriton::letterbox::geometry::Letterbox;
use gsttriton::letterbox::tensor::*;
use gsttriton::pixel::*;

/// A test picture as RGB u8: grey gradient background plus solid rectangles at even coordinates.
fn picture(w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let v = (16 + (x * 200 / w.max(1)) as u32 + (y * 30 / h.max(1)) as u32).min(235) as u8;
            rgb[(y * w + x) * 3..][..3].copy_from_slice(&[v, v, v]);
        }
    }
    let rects = [
        (w / 8, h / 8, w / 4, h / 4, [220u8, 30, 40]),
        (w / 2, h / 2, w / 3, h / 5, [20, 200, 60]),
    ];
    for (x0, y0, rw, rh, c) in rects {
        let (x0, y0) = (x0 & !1, y0 & !1);
        for y in y0..(y0 + (rh & !1)).min(h) {
            for x in x0..(x0 + (rw & !1)).min(w) {
                rgb[(y * w + x) * 3..][..3].copy_from_slice(&c);
            }
        }
    }
    rgb
}

/// BT.601 limited-range RGB → YUV (the test's own formula).
fn rgb_to_yuv(r: f32, g: f32, b: f32) -> (u8, u8, u8) {
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    (
        y.round().clamp(0.0, 255.0) as u8,
        u.round().clamp(0.0, 255.0) as u8,
        v.round().clamp(0.0, 255.0) as u8,
    )
}

/// BT.601 limited-range YUV → RGB, classic coefficients.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [f32; 3] {
    let (c, d, e) = (y as f32 - 16.0, u as f32 - 128.0, v as f32 - 128.0);
    [
        (1.164 * c + 1.596 * e).clamp(0.0, 255.0),
        (1.164 * c - 0.392 * d - 0.813 * e).clamp(0.0, 255.0),
        (1.164 * c + 2.017 * d).clamp(0.0, 255.0),
    ]
}

struct Encoded {
    format: PixelFormat,
    planes: Vec<Vec<u8>>,
    strides: Vec<usize>,
}

/// Encodes the RGB picture into `format`, with `pad` extra bytes per row (padded strides).
fn encode(rgb: &[u8], w: usize, h: usize, format: PixelFormat, pad: usize) -> Encoded {
    let px = |x: usize, y: usize| -> [u8; 3] { rgb[(y * w + x) * 3..][..3].try_into().unwrap() };
    let packed = |bpp: usize, order: [usize; 3]| {
        let stride = w * bpp + pad;
        let mut d = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                let p = px(x, y);
                for c in 0..3 {
                    d[y * stride + x * bpp + order[c]] = p[c];
                }
                if bpp == 4 {
                    d[y * stride + x * bpp + 3] = 255;
                }
            }
        }
        Encoded {
            format,
            planes: vec![d],
            strides: vec![stride],
        }
    };
    match format {
        PixelFormat::Rgb => packed(3, [0, 1, 2]),
        PixelFormat::Bgr => packed(3, [2, 1, 0]),
        PixelFormat::Rgba | PixelFormat::Rgbx => packed(4, [0, 1, 2]),
        PixelFormat::Bgra | PixelFormat::Bgrx => packed(4, [2, 1, 0]),
        PixelFormat::I420 | PixelFormat::Nv12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let ys = w + pad;
            let mut yp = vec![0u8; ys * h];
            let mut u = vec![0u8; cw * ch];
            let mut v = vec![0u8; cw * ch];
            for y in 0..h {
                for x in 0..w {
                    let p = px(x, y);
                    yp[y * ys + x] = rgb_to_yuv(p[0] as f32, p[1] as f32, p[2] as f32).0;
                }
            }
            for cy in 0..ch {
                for cx in 0..cw {
                    let p = px((2 * cx).min(w - 1), (2 * cy).min(h - 1));
                    let (_, uu, vv) = rgb_to_yuv(p[0] as f32, p[1] as f32, p[2] as f32);
                    u[cy * cw + cx] = uu;
                    v[cy * cw + cx] = vv;
                }
            }
            if format == PixelFormat::I420 {
                let cs = cw + pad / 2;
                let spread = |p: &[u8]| {
                    let mut d = vec![0u8; cs * ch];
                    for r in 0..ch {
                        d[r * cs..r * cs + cw].copy_from_slice(&p[r * cw..r * cw + cw]);
                    }
                    d
                };
                Encoded {
                    format,
                    planes: vec![yp, spread(&u), spread(&v)],
                    strides: vec![ys, cs, cs],
                }
            } else {
                let cs = 2 * cw + pad;
                let mut uv = vec![0u8; cs * ch];
                for r in 0..ch {
                    for c in 0..cw {
                        uv[r * cs + 2 * c] = u[r * cw + c];
                        uv[r * cs + 2 * c + 1] = v[r * cw + c];
                    }
                }
                Encoded {
                    format,
                    planes: vec![yp, uv],
                    strides: vec![ys, cs],
                }
            }
        }
    }
}

/// The reference: decode to float RGB at full resolution, then sample each tensor pixel.
fn reference(e: &Encoded, w: usize, h: usize, spec: &TensorSpec) -> Vec<f32> {
    let mut rgb = vec![0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let p = match e.format {
                PixelFormat::I420 => yuv_to_rgb(
                    e.planes[0][y * e.strides[0] + x],
                    e.planes[1][(y / 2) * e.strides[1] + x / 2],
                    e.planes[2][(y / 2) * e.strides[2] + x / 2],
                ),
                PixelFormat::Nv12 => {
                    let c = (y / 2) * e.strides[1] + 2 * (x / 2);
                    yuv_to_rgb(
                        e.planes[0][y * e.strides[0] + x],
                        e.planes[1][c],
                        e.planes[1][c + 1],
                    )
                }
                f => {
                    let (bpp, o) = match f {
                        PixelFormat::Rgb => (3, [0, 1, 2]),
                        PixelFormat::Bgr => (3, [2, 1, 0]),
                        PixelFormat::Rgba | PixelFormat::Rgbx => (4, [0, 1, 2]),
                        _ => (4, [2, 1, 0]),
                    };
                    let b = y * e.strides[0] + x * bpp;
                    [
                        e.planes[0][b + o[0]] as f32,
                        e.planes[0][b + o[1]] as f32,
                        e.planes[0][b + o[2]] as f32,
                    ]
                }
            };
            rgb[(y * w + x) * 3..][..3].copy_from_slice(&p);
        }
    }
    let l = Letterbox::new(w as u32, h as u32, spec.width, spec.height, spec.scale_up);
    let (tw, th) = (spec.width as usize, spec.height as usize);
    let mut out = vec![0f32; 3 * tw * th];
    let sample = |len: usize, new: usize, o: usize| -> (usize, usize, f32) {
        let s = (o as f64 + 0.5) * (len as f64 / new as f64) - 0.5;
        let s = s.max(0.0);
        let i0 = (s.floor() as usize).min(len - 1);
        let i1 = (i0 + 1).min(len - 1);
        let f = if i0 == len - 1 {
            0.0
        } else {
            (s - i0 as f64) as f32
        };
        (i0, i1, f)
    };
    for ty in 0..th {
        for tx in 0..tw {
            let inside = tx >= l.left as usize
                && tx < (l.left + l.new_w) as usize
                && ty >= l.top as usize
                && ty < (l.top + l.new_h) as usize;
            for c in 0..3 {
                let v = if inside {
                    let (x0, x1, fx) = sample(w, l.new_w as usize, tx - l.left as usize);
                    let (y0, y1, fy) = sample(h, l.new_h as usize, ty - l.top as usize);
                    let at = |x: usize, y: usize| rgb[(y * w + x) * 3 + c];
                    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                    let bot = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                    top * (1.0 - fy) + bot * fy
                } else {
                    spec.pad_value as f32
                };
                let k = if spec.bgr { 2 - c } else { c };
                out[k * tw * th + ty * tw + tx] = (v * spec.scale - spec.mean[k]) / spec.std[k];
            }
        }
    }
    out
}

/// The row loops a run uses: SIMD where the CPU has it (the default) or forced portable, and how
/// many threads split the rows. Every path must produce the same bytes.
#[derive(Debug, Clone, Copy)]
struct Path {
    simd: bool,
    threads: usize,
}

const DEFAULT: Path = Path {
    simd: true,
    threads: 1,
};
const PATHS: [Path; 3] = [
    DEFAULT,
    Path {
        simd: false,
        threads: 1,
    },
    Path {
        simd: true,
        threads: 3,
    },
];

fn run(e: &Encoded, w: usize, h: usize, spec: &TensorSpec) -> Vec<f32> {
    run_on(e, w, h, spec, DEFAULT)
}

fn run_on(e: &Encoded, w: usize, h: usize, spec: &TensorSpec, path: Path) -> Vec<f32> {
    let out = run_bytes(e, w, h, spec, path);
    match spec.dtype {
        DType::F32 => out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        DType::F16 => out
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32())
            .collect(),
        DType::U8 => out.iter().map(|v| *v as f32).collect(),
    }
}

/// A SIMD run must really take the AVX2 row loops where the CPU has them, or "SIMD and portable
/// write the same bytes" proves nothing.
#[cfg(target_arch = "x86_64")]
fn assert_simd_taken(r: &Resizer) {
    if std::is_x86_feature_detected!("avx2") {
        assert_eq!(r.simd_path(), "avx2");
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI's CPU lacks AVX2: the SIMD row loops are untested"
        );
        eprintln!("SKIPPED: no AVX2 here; the SIMD runs take the portable loops");
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn assert_simd_taken(_: &Resizer) {}

fn run_bytes(e: &Encoded, w: usize, h: usize, spec: &TensorSpec, path: Path) -> Vec<u8> {
    let mut r = Resizer::new(w as u32, h as u32, spec);
    r.set_simd(path.simd);
    r.set_threads(path.threads);
    assert_eq!(r.threads(), path.threads);
    if !path.simd {
        assert_eq!(r.simd_path(), "portable");
    } else {
        assert_simd_taken(&r);
    }
    let planes: Vec<&[u8]> = e.planes.iter().map(Vec::as_slice).collect();
    let src = SrcImage {
        format: e.format,
        width: w,
        height: h,
        planes: [
            planes[0],
            planes.get(1).copied().unwrap_or(&[]),
            planes.get(2).copied().unwrap_or(&[]),
        ],
        strides: [
            e.strides[0],
            e.strides.get(1).copied().unwrap_or(0),
            e.strides.get(2).copied().unwrap_or(0),
        ],
    };
    // Poison first: a byte the resizer fails to write shows up.
    let mut out = vec![0xA5u8; spec.byte_size()];
    r.run(&src, &YuvToRgb::new(YuvMatrix::Bt601, false), &mut out);
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |m, d| if d.0 > m.0 { d } else { m })
}

const ALL: [PixelFormat; 8] = [
    PixelFormat::Rgb,
    PixelFormat::Bgr,
    PixelFormat::Rgba,
    PixelFormat::Bgra,
    PixelFormat::Rgbx,
    PixelFormat::Bgrx,
    PixelFormat::I420,
    PixelFormat::Nv12,
];

#[test]
fn every_format_matches_the_reference() {
    for (w, h, tw, th) in [
        (320, 180, 160, 160),
        (181, 243, 96, 128),
        (64, 48, 160, 120),
        (641, 479, 320, 320),
        (480, 270, 160, 160), // exactly 3×: every tap's second weight is 0
    ] {
        let rgb = picture(w, h);
        let spec = TensorSpec {
            width: tw,
            height: th,
            ..Default::default()
        };
        for f in ALL {
            for pad in [0, 6] {
                let e = encode(&rgb, w, h, f, pad);
                let want = reference(&e, w, h, &spec);
                for path in PATHS {
                    let (d, at) = max_diff(&run_on(&e, w, h, &spec, path), &want);
                    assert!(
                        d <= 1.0 / 255.0,
                        "{f:?} {w}x{h}->{tw}x{th} pad {pad} {path:?}: differs by {d} at {at}"
                    );
                }
            }
        }
    }
}

#[test]
fn simd_portable_and_threaded_paths_write_identical_bytes() {
    // Row padding 0: the last rows end where the plane does, so the shuffle gathers' 16-byte
    // loads must fall back there; 3× reads one byte in three, 1200 → 64 spans too many chunks.
    for (w, h, tw, th, pad) in [
        (640, 360, 320, 320, 6),
        (181, 243, 96, 128, 6),
        (33, 17, 64, 64, 6),
        (480, 270, 160, 160, 0),
        (1200, 60, 64, 64, 0),
    ] {
        let rgb = picture(w, h);
        for f in ALL {
            let e = encode(&rgb, w, h, f, pad);
            for dtype in [DType::F32, DType::F16, DType::U8] {
                for layout in [Layout::Nchw, Layout::Nhwc] {
                    let spec = TensorSpec {
                        width: tw,
                        height: th,
                        dtype,
                        layout,
                        bgr: f == PixelFormat::Bgr,
                        ..Default::default()
                    };
                    let base = run_bytes(&e, w, h, &spec, DEFAULT);
                    assert!(!base.iter().all(|&b| b == 0xA5), "{f:?}: nothing written");
                    for path in PATHS.into_iter().chain([Path {
                        simd: false,
                        threads: 4,
                    }]) {
                        let got = run_bytes(&e, w, h, &spec, path);
                        let diff = got.iter().zip(&base).position(|(a, b)| a != b);
                        assert_eq!(
                            diff, None,
                            "{f:?} {w}x{h}->{tw}x{th} {dtype:?} {layout:?} {path:?}: first differing byte"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn all_formats_of_one_picture_agree() {
    let (w, h) = (320, 240);
    let rgb = picture(w, h);
    let spec = TensorSpec {
        width: 128,
        height: 128,
        ..Default::default()
    };
    let base = run(&encode(&rgb, w, h, PixelFormat::Rgb, 0), w, h, &spec);
    for f in ALL {
        let t = run(&encode(&rgb, w, h, f, 2), w, h, &spec);
        let (d, at) = max_diff(&t, &base);
        // YUV round trips lose a little (8-bit luma/chroma rounding): allow 4/255.
        let tol = if matches!(f, PixelFormat::I420 | PixelFormat::Nv12) {
            4.0 / 255.0
        } else {
            0.0
        };
        assert!(d <= tol, "{f:?} differs from RGB by {d} at {at}");
    }
}

#[test]
fn layouts_dtypes_order_and_normalisation() {
    let (w, h) = (90, 60);
    let rgb = picture(w, h);
    let e = encode(&rgb, w, h, PixelFormat::Rgb, 0);
    let base = TensorSpec {
        width: 48,
        height: 40,
        ..Default::default()
    };
    let planar = run(&e, w, h, &base);

    // BGR order swaps planes 0 and 2.
    let bgr = run(
        &e,
        w,
        h,
        &TensorSpec {
            bgr: true,
            ..base.clone()
        },
    );
    let n = 48 * 40;
    assert_eq!(&bgr[..n], &planar[2 * n..]);
    assert_eq!(&bgr[2 * n..], &planar[..n]);

    // NHWC holds the same values interleaved.
    let nhwc = run(
        &e,
        w,
        h,
        &TensorSpec {
            layout: Layout::Nhwc,
            ..base.clone()
        },
    );
    for i in 0..n {
        for c in 0..3 {
            assert_eq!(nhwc[i * 3 + c], planar[c * n + i]);
        }
    }

    // FP16 within half precision; UINT8 = raw pixels rounded.
    let f16 = run(
        &e,
        w,
        h,
        &TensorSpec {
            dtype: DType::F16,
            ..base.clone()
        },
    );
    assert!(max_diff(&f16, &planar).0 <= 1e-3);
    let u8s = run(
        &e,
        w,
        h,
        &TensorSpec {
            dtype: DType::U8,
            ..base.clone()
        },
    );
    assert!(
        u8s.iter()
            .zip(&planar)
            .all(|(u, f)| (u - f * 255.0).abs() <= 0.5 + 1e-3)
    );
    assert!(u8s.contains(&114.0), "padding value 114 present");

    // mean/std normalisation as the reference computes it.
    let norm = TensorSpec {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        pad_value: 0,
        ..base.clone()
    };
    let (d, _) = max_diff(&run(&e, w, h, &norm), &reference(&e, w, h, &norm));
    assert!(d <= 1e-4, "{d}");
}

/// mean/std on every row path: rows of two source rows, exactly 3× (one source row, every weight
/// 0), exactly 2× and 6× (packed rows blended vertical-first; at 6× the taps start at pixel 2),
/// packed and YUV, on every path.
#[test]
fn normalisation_holds_on_every_row_path() {
    let norm = TensorSpec {
        width: 48,
        height: 40,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        ..Default::default()
    };
    for (w, h) in [(90, 60), (144, 96), (96, 64), (288, 192)] {
        let rgb = picture(w, h);
        for f in [PixelFormat::Rgb, PixelFormat::Rgbx, PixelFormat::I420] {
            let e = encode(&rgb, w, h, f, 0);
            let want = reference(&e, w, h, &norm);
            // YUV: the conversion's rounding (within 1/255 of a pixel), divided by the std.
            let tol = if f == PixelFormat::I420 {
                1.0 / 255.0 / 0.224
            } else {
                1e-4
            };
            for path in PATHS {
                let (d, at) = max_diff(&run_on(&e, w, h, &norm, path), &want);
                assert!(d <= tol, "{f:?} {w}x{h} {path:?}: differs by {d} at {at}");
            }
        }
    }
}

#[test]
fn padding_and_placement_follow_the_geometry() {
    let (w, h) = (200, 100);
    let e = encode(&vec![255u8; w * h * 3], w, h, PixelFormat::Rgb, 0);
    let spec = TensorSpec {
        width: 100,
        height: 100,
        ..Default::default()
    };
    let t = run(&e, w, h, &spec);
    // 200x100 -> 100x50 placed at row 25: rows 0..25 and 75..100 are padding (114/255).
    for y in 0..100 {
        let v = t[y * 100 + 50];
        if (25..75).contains(&y) {
            assert!((v - 1.0).abs() < 1e-6, "row {y}: {v}");
        } else {
            assert!((v - 114.0 / 255.0).abs() < 1e-6, "row {y}: {v}");
        }
    }
}

#[test]
fn tiny_and_one_pixel_sources() {
    for (w, h) in [(1, 1), (1, 7), (9, 1), (2, 2), (3, 3)] {
        let rgb = picture(w, h);
        let spec = TensorSpec {
            width: 32,
            height: 24,
            ..Default::default()
        };
        for f in ALL {
            let e = encode(&rgb, w, h, f, 0);
            let (d, at) = max_diff(&run(&e, w, h, &spec), &reference(&e, w, h, &spec));
            assert!(d <= 1.0 / 255.0, "{f:?} {w}x{h}: {d} at {at}");
        }
    }
}

#[test]
fn spec_names_shapes_and_the_resizer_keeps_its_spec() {
    assert_eq!(DType::F32.triton_name(), "FP32");
    assert_eq!(DType::F16.triton_name(), "FP16");
    assert_eq!(DType::U8.triton_name(), "UINT8");
    let nchw = TensorSpec {
        width: 320,
        height: 192,
        ..Default::default()
    };
    assert_eq!(nchw.shape(), [1, 3, 192, 320]);
    let nhwc = TensorSpec {
        layout: Layout::Nhwc,
        dtype: DType::U8,
        ..nchw.clone()
    };
    assert_eq!(nhwc.shape(), [1, 192, 320, 3]);
    let r = Resizer::new(640, 480, &nhwc);
    assert_eq!(r.spec(), &nhwc);
    assert_eq!(r.spec().byte_size(), 320 * 192 * 3);
}

#[test]
fn nhwc_matches_planar_with_padding_at_the_sides() {
    // A portrait source: the image sits between left and right padding (left = 10 here).
    let (w, h) = (60, 90);
    let e = encode(&picture(w, h), w, h, PixelFormat::Rgb, 0);
    for dtype in [DType::F32, DType::F16, DType::U8] {
        let planar_spec = TensorSpec {
            width: 48,
            height: 40,
            dtype,
            ..Default::default()
        };
        let nhwc_spec = TensorSpec {
            layout: Layout::Nhwc,
            ..planar_spec.clone()
        };
        let g = Resizer::new(w as u32, h as u32, &planar_spec).geometry;
        assert!(g.left >= 8 && g.top == 0, "{g:?}");
        let (planar, nhwc) = (run(&e, w, h, &planar_spec), run(&e, w, h, &nhwc_spec));
        let n = 48 * 40;
        for i in 0..n {
            for c in 0..3 {
                assert_eq!(
                    nhwc[i * 3 + c],
                    planar[c * n + i],
                    "{dtype:?} pixel {i} channel {c}"
                );
            }
        }
    }
}

#[test]
fn vectorised_yuv_rows_match_the_per_pixel_conversion() {
    let samples: Vec<u8> = (0..=255u8)
        .step_by(5)
        .chain([1, 16, 128, 235, 240, 254])
        .collect();
    let n = samples.len();
    for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709, YuvMatrix::Bt2020] {
        for full in [false, true] {
            let conv = YuvToRgb::new(matrix, full);
            for &y in &samples {
                let (ys, us, vs) = (
                    vec![y; n * n],
                    (0..n * n).map(|i| samples[i / n]).collect::<Vec<_>>(),
                    (0..n * n).map(|i| samples[i % n]).collect::<Vec<_>>(),
                );
                let (mut r, mut g, mut b) = (vec![0.0; n * n], vec![0.0; n * n], vec![0.0; n * n]);
                conv.convert_rows(&ys, &us, &vs, [&mut r, &mut g, &mut b]);
                for i in 0..n * n {
                    let want = conv.convert(ys[i], us[i], vs[i]);
                    for (c, got) in [r[i], g[i], b[i]].into_iter().enumerate() {
                        assert!(
                            (got - want[c]).abs() <= 1e-3,
                            "{matrix:?} full={full} yuv ({}, {}, {}) channel {c}: {got} vs {}",
                            ys[i],
                            us[i],
                            vs[i],
                            want[c]
                        );
                    }
                }
            }
        }
    }
}

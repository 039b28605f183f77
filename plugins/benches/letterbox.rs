//! Letterbox throughput, as ratios measured in one run: ours (the SIMD row loops where the CPU has
//! them, and the portable ones) vs the original client's OpenCV path (cvtColor, resize, copyMakeBorder,
//! /255 in the tensor's dtype, transpose; one thread, run from Python when `.venv-bench` has
//! opencv-python-headless — `scripts/bench.sh` creates it apart from the Triton venv, which must
//! keep numpy<2) vs a plain memcpy of the tensor's size; and the `threads` split at 3840×2160.
//! `cargo bench -p gst-plugin-triton --bench letterbox`.

use std::time::{Duration, Instant};

use gsttriton::letterbox::Resizer;
use gsttriton::letterbox::tensor::*;
use gsttriton::pixel::*;

fn time<F: FnMut()>(mut f: F) -> Duration {
    f();
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        let n = 5;
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed() / n);
    }
    best
}

fn opencv_ms(format: &str, w: usize, h: usize, dtype: DType) -> Option<f64> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".venv-bench/bin/python");
    let out = std::process::Command::new(py)
        .arg(root.join("plugins/benches/opencv_letterbox.py"))
        .args([format, &w.to_string(), &h.to_string(), dtype.triton_name()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "OpenCV baseline unavailable: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A source image over `data` (tightly packed planes).
fn source(format: PixelFormat, w: usize, h: usize, data: &[u8]) -> SrcImage<'_> {
    let (planes, strides): ([&[u8]; 3], [usize; 3]) = match format {
        PixelFormat::I420 => (
            [
                &data[..w * h],
                &data[w * h..w * h * 5 / 4],
                &data[w * h * 5 / 4..w * h * 3 / 2],
            ],
            [w, w / 2, w / 2],
        ),
        PixelFormat::Nv12 => (
            [&data[..w * h], &data[w * h..w * h * 3 / 2], &[]],
            [w, w, 0],
        ),
        PixelFormat::Rgb | PixelFormat::Bgr => ([&data[..w * h * 3], &[], &[]], [w * 3, 0, 0]),
        _ => ([&data[..w * h * 4], &[], &[]], [w * 4, 0, 0]),
    };
    SrcImage {
        format,
        width: w,
        height: h,
        planes,
        strides,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let yuv = YuvToRgb::new(YuvMatrix::Bt601, false);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("letterbox → 640×640 NCHW, one core each, CPU: {cpu}");
    println!(
        "{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "input", "dtype", "ours ms", "portable", "opencv ms", "memcpy", "vs opencv", "vs memcpy"
    );
    let cases = [
        (
            "1920x1080 I420",
            PixelFormat::I420,
            "I420",
            1920usize,
            1080usize,
            DType::F32,
        ),
        (
            "1920x1080 NV12",
            PixelFormat::Nv12,
            "NV12",
            1920,
            1080,
            DType::F32,
        ),
        (
            "1280x720 RGB",
            PixelFormat::Rgb,
            "RGB",
            1280,
            720,
            DType::F32,
        ),
        (
            "1280x720 BGR",
            PixelFormat::Bgr,
            "BGR",
            1280,
            720,
            DType::F32,
        ),
        (
            "1280x720 RGBx",
            PixelFormat::Rgbx,
            "RGBx",
            1280,
            720,
            DType::F32,
        ),
        (
            "1920x1080 I420",
            PixelFormat::I420,
            "I420",
            1920,
            1080,
            DType::U8,
        ),
        (
            "1920x1080 I420",
            PixelFormat::I420,
            "I420",
            1920,
            1080,
            DType::F16,
        ),
        (
            "1280x720 RGB",
            PixelFormat::Rgb,
            "RGB",
            1280,
            720,
            DType::U8,
        ),
        (
            "1280x720 RGB",
            PixelFormat::Rgb,
            "RGB",
            1280,
            720,
            DType::F16,
        ),
    ];
    for (name, format, cv_name, w, h, dtype) in cases {
        let data: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
        let src = source(format, w, h, &data);
        let spec = TensorSpec {
            dtype,
            ..Default::default()
        };
        let mut r = Resizer::new(w as u32, h as u32, &spec);
        let mut out = vec![0u8; spec.byte_size()];
        let ours = time(|| r.run(&src, &yuv, &mut out));
        let path = r.simd_path();
        r.set_simd(false);
        let portable = time(|| r.run(&src, &yuv, &mut out));
        let from = vec![1u8; spec.byte_size()];
        let mut to = vec![0u8; spec.byte_size()];
        let copy = time(|| {
            to.copy_from_slice(std::hint::black_box(&from));
            std::hint::black_box(&mut to);
        });
        let cv = opencv_ms(cv_name, w, h, dtype);
        println!(
            "{:<16} {:>6} {:>9.3} {:>9.3} {:>9} {:>9.3} {:>11} {:>10.1}x   ({path})",
            name,
            dtype.triton_name(),
            ms(ours),
            ms(portable),
            cv.map_or("-".into(), |v| format!("{v:.3}")),
            ms(copy),
            cv.map_or("-".into(), |v| format!("{:.2}x", v / ms(ours))),
            ms(ours) / ms(copy),
        );
    }

    // The `threads` property at 4K: rows split across scoped threads.
    let (w, h) = (3840usize, 2160usize);
    let data: Vec<u8> = (0..w * h * 3 / 2).map(|i| (i * 7 % 251) as u8).collect();
    let src = source(PixelFormat::I420, w, h, &data);
    let spec = TensorSpec::default();
    let mut out = vec![0u8; spec.byte_size()];
    let mut r = Resizer::new(w as u32, h as u32, &spec);
    let one = time(|| r.run(&src, &yuv, &mut out));
    r.set_threads(2);
    let two = time(|| r.run(&src, &yuv, &mut out));
    println!(
        "3840x2160 I420 FP32: 1 thread {:.3} ms, 2 threads {:.3} ms: {:.2}x ({} cores here)",
        ms(one),
        ms(two),
        ms(one) / ms(two),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

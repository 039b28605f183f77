//! Letterbox throughput: ours vs a straightforward scalar implementation, vs a plain memcpy of the
//! tensor size, and vs the original client's OpenCV path (resize, copyMakeBorder, cvtColor, /255 and
//! transpose, run from Python in the same session when `.venv-bench` has opencv-python-headless;
//! `scripts/bench.sh` creates it apart from the Triton venv, which must keep numpy<2). Prints times
//! and ratios: `cargo bench -p gst-plugin-triton --bench letterbox`.

use std::time::{Duration, Instant};

use gsttriton::letterbox::geometry::Letterbox;
use gsttriton::letterbox::kernel::*;

fn time<F: FnMut()>(mut f: F) -> Duration {
    f();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let n = 5;
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed() / n);
    }
    best
}

/// The straightforward way: per output pixel, convert the 4 source taps and interpolate.
fn scalar(src: &SrcImage, yuv: &YuvToRgb, l: &Letterbox, out: &mut [f32]) {
    let (w, h) = (src.width, src.height);
    let (tw, th) = (l.dst_w as usize, l.dst_h as usize);
    let px = |x: usize, y: usize| -> [f32; 3] {
        match src.format {
            PixelFormat::I420 => yuv.convert(
                src.planes[0][y * src.strides[0] + x],
                src.planes[1][(y / 2) * src.strides[1] + x / 2],
                src.planes[2][(y / 2) * src.strides[2] + x / 2],
            ),
            _ => {
                let i = y * src.strides[0] + x * 3;
                [
                    src.planes[0][i] as f32,
                    src.planes[0][i + 1] as f32,
                    src.planes[0][i + 2] as f32,
                ]
            }
        }
    };
    for ty in 0..th {
        for tx in 0..tw {
            let inside = tx >= l.left as usize
                && tx < (l.left + l.new_w) as usize
                && ty >= l.top as usize
                && ty < (l.top + l.new_h) as usize;
            let v = if inside {
                let sx = (((tx - l.left as usize) as f64 + 0.5) * w as f64 / l.new_w as f64 - 0.5)
                    .max(0.0);
                let sy = (((ty - l.top as usize) as f64 + 0.5) * h as f64 / l.new_h as f64 - 0.5)
                    .max(0.0);
                let (x0, y0) = ((sx as usize).min(w - 1), (sy as usize).min(h - 1));
                let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                let (fx, fy) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
                let (a, b, c, d) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
                [0, 1, 2].map(|k| {
                    (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy)
                        + (c[k] * (1.0 - fx) + d[k] * fx) * fy
                })
            } else {
                [114.0; 3]
            };
            for k in 0..3 {
                out[k * tw * th + ty * tw + tx] = v[k] / 255.0;
            }
        }
    }
}

fn opencv_ms(format: &str, w: usize, h: usize) -> Option<f64> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".venv-bench/bin/python");
    let out = std::process::Command::new(py)
        .arg(root.join("plugins/benches/opencv_letterbox.py"))
        .args([format, &w.to_string(), &h.to_string()])
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

fn main() {
    let yuv = YuvToRgb::new(YuvMatrix::Bt601, false);
    let spec = TensorSpec::default();
    let tensor_bytes = spec.byte_size();
    println!(
        "letterbox → 640×640 NCHW FP32 ({} MB per tensor), one core",
        tensor_bytes as f64 / 1e6
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "input", "ours ms", "scalar ms", "opencv ms", "memcpy ms", "vs scalar", "vs opencv"
    );
    for (name, format, w, h) in [
        ("1920x1080 I420", PixelFormat::I420, 1920usize, 1080usize),
        ("1280x720 RGB", PixelFormat::Rgb, 1280, 720),
    ] {
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let src = match format {
            PixelFormat::I420 => SrcImage {
                format,
                width: w,
                height: h,
                planes: [
                    &data[..w * h],
                    &data[w * h..w * h * 5 / 4],
                    &data[w * h * 5 / 4..w * h * 3 / 2],
                ],
                strides: [w, w / 2, w / 2],
            },
            _ => SrcImage {
                format,
                width: w,
                height: h,
                planes: [&data, &[], &[]],
                strides: [w * 3, 0, 0],
            },
        };
        let mut r = Resizer::new(w as u32, h as u32, &spec);
        let mut out = vec![0u8; tensor_bytes];
        let ours = time(|| r.run(&src, &yuv, &mut out));
        let mut fout = vec![0f32; tensor_bytes / 4];
        let scal = time(|| scalar(&src, &yuv, &r.geometry, &mut fout));
        let from = vec![1u8; tensor_bytes];
        let mut to = vec![0u8; tensor_bytes];
        let copy = time(|| {
            to.copy_from_slice(std::hint::black_box(&from));
            std::hint::black_box(&mut to);
        });
        let cv = opencv_ms(
            if format == PixelFormat::I420 {
                "I420"
            } else {
                "RGB"
            },
            w,
            h,
        );
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<18} {:>10.2} {:>10.2} {:>10} {:>10.3} {:>11.1}x {:>12}",
            name,
            ms(ours),
            ms(scal),
            cv.map_or("-".into(), |v| format!("{v:.2}")),
            ms(copy),
            ms(scal) / ms(ours),
            cv.map_or("-".into(), |v| format!("{:.2}x", v / ms(ours)))
        );
        println!(
            "{:<18} tensor output {:.2} GB/s (memcpy of the same size {:.2} GB/s)",
            "",
            tensor_bytes as f64 / ours.as_secs_f64() / 1e9,
            tensor_bytes as f64 / copy.as_secs_f64() / 1e9
        );
    }
}

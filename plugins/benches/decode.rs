//! Decode + NMS of a YOLOv8 raw head [1,84,8400] with ~200 candidates above the threshold, against
//! the time to merely read the tensor once (the floor). `cargo bench -p gst-plugin-triton --bench decode`.

use std::time::{Duration, Instant};

use gsttriton::decode::{Decoder, Output, Params, decode};

fn main() {
    let (nc, n) = (80usize, 8400usize);
    let mut v = vec![0.0f32; (4 + nc) * n];
    // 40 objects × 5 overlapping candidates above 0.25, the rest low scores.
    for a in 0..n {
        let obj = a / 5;
        let hot = a < 200;
        let (cx, cy) = (
            16.0 + (obj % 8) as f32 * 80.0 + (a % 5) as f32,
            16.0 + (obj / 8) as f32 * 80.0,
        );
        v[a] = cx;
        v[n + a] = cy;
        v[2 * n + a] = 40.0;
        v[3 * n + a] = 30.0;
        for c in 0..nc {
            v[(4 + c) * n + a] = if hot && c == obj % nc {
                0.5 + (a % 5) as f32 * 0.05
            } else {
                0.01
            };
        }
    }
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let shape = [1i64, 84, 8400];
    let outs = [Output {
        name: "output0",
        dtype: "FP32",
        shape: &shape,
        data: &bytes,
    }];
    let p = Params::default();
    let dets = decode(Decoder::Yolov8, &outs, &p).unwrap();
    let best = |f: &mut dyn FnMut()| {
        let mut b = Duration::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            f();
            b = b.min(t.elapsed());
        }
        b
    };
    let d = best(&mut || {
        std::hint::black_box(decode(Decoder::Yolov8, std::hint::black_box(&outs), &p).unwrap());
    });
    let floor = best(&mut || {
        let s: f32 = std::hint::black_box(&bytes)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .sum();
        std::hint::black_box(s);
    });
    println!(
        "decode+NMS [1,84,8400], 200 candidates → {} boxes: {:.3} ms (goal < 1 ms); reading the tensor once: {:.3} ms; ratio {:.1}x",
        dets.len(),
        d.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3,
        d.as_secs_f64() / floor.as_secs_f64()
    );
}

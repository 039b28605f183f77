//! detoverlay's drawing at 1080p I420 with 50 labelled boxes, against copying the frame once.
//! `cargo bench -p gst-plugin-triton --bench overlay`

use std::time::{Duration, Instant};

use gsttriton::overlay::draw::{Canvas, RgbToYuv, TextRenderer, class_colour, draw_box};
use gsttriton::pixel::{PixelFormat, YuvMatrix};

fn best(mut f: impl FnMut()) -> Duration {
    f();
    (0..20)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let (w, h) = (1920usize, 1080usize);
    let mut frame = vec![128u8; w * h * 3 / 2];
    let mut text = TextRenderer::from_file("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").ok();
    let boxes: Vec<(i64, i64, i64, i64, i64)> = (0..50)
        .map(|i| ((i % 10) * 190 + 5, (i / 10) * 210 + 40, 150, 120, i % 12))
        .collect();
    let draw = |frame: &mut [u8], text: &mut Option<TextRenderer>| {
        let (y, uv) = frame.split_at_mut(w * h);
        let (u, v) = uv.split_at_mut(w * h / 4);
        let mut c = Canvas {
            format: PixelFormat::I420,
            width: w,
            height: h,
            planes: [y, u, v],
            strides: [w, w / 2, w / 2],
            yuv: RgbToYuv::new(YuvMatrix::Bt709, false),
        };
        for &(x, yy, bw, bh, id) in &boxes {
            draw_box(&mut c, x, yy, bw, bh, 2, class_colour(id));
            if let Some(t) = text.as_mut() {
                t.draw_label(
                    &mut c,
                    x,
                    yy,
                    &format!("class{id} 0.87"),
                    27,
                    class_colour(id),
                );
            }
        }
    };
    let ours = best(|| draw(&mut frame, &mut text));
    let src = frame.clone();
    let copy = best(|| {
        frame.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut frame);
    });
    println!(
        "detoverlay 1920x1080 I420, 50 boxes with labels: {:.3} ms per frame ({:.0} fps on one core); copying the frame once: {:.3} ms; ratio {:.1}x",
        ours.as_secs_f64() * 1e3,
        1.0 / ours.as_secs_f64(),
        copy.as_secs_f64() * 1e3,
        ours.as_secs_f64() / copy.as_secs_f64()
    );
}

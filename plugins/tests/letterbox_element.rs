//! The `tritonletterbox` element in real pipelines.

mod common;

use common::init;
use gst::prelude::*;
use gsttriton::letterbox::Resizer;
use gsttriton::letterbox::tensor::TensorSpec;
use gsttriton::meta;
use gsttriton::pixel::{PixelFormat, SrcImage, YuvMatrix, YuvToRgb};

fn caps(format: &str, w: i32, h: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", w)
        .field("height", h)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

/// A frame of `info` filled with a deterministic pattern (strides as GStreamer lays them out).
fn frame(info: &gst_video::VideoInfo, seed: u8) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        let mut m = b.map_writable().unwrap();
        for (i, v) in m.iter_mut().enumerate() {
            *v = (i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed as u32)
                .rotate_right(13) as u8;
        }
    }
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        info.format(),
        info.width(),
        info.height(),
        info.offset(),
        info.stride(),
    )
    .unwrap();
    buf
}

fn checksum(b: &gst::BufferRef) -> Vec<u8> {
    b.map_readable().unwrap().to_vec()
}

#[test]
fn passthrough_is_bit_identical_and_every_buffer_has_the_meta() {
    init();
    for format in ["I420", "NV12", "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx"] {
        let mut h = gst_check::Harness::new("tritonletterbox");
        h.set_src_caps(caps(format, 641, 479));
        let info = gst_video::VideoInfo::from_caps(&caps(format, 641, 479)).unwrap();
        for i in 0..5u8 {
            let input = frame(&info, i);
            let before = checksum(&input);
            let out = h.push_and_pull(input).unwrap();
            assert_eq!(checksum(&out), before, "{format}: video changed");
            let m = meta::tensor_meta(&out).unwrap_or_else(|| panic!("{format}: no tensor meta"));
            assert_eq!(m.shape, vec![1, 3, 640, 640]);
            assert_eq!((m.dtype.as_str(), m.layout.as_str()), ("FP32", "NCHW"));
            assert_eq!(m.tensor.size(), 640 * 640 * 3 * 4);
            assert_eq!(
                (
                    m.geometry.src_w,
                    m.geometry.src_h,
                    m.geometry.new_w,
                    m.geometry.new_h
                ),
                (641, 479, 640, 478)
            );
        }
    }
}

#[test]
fn padded_strides_give_the_kernel_answer() {
    init();
    // RGB 641 wide: GStreamer pads rows to 1924 bytes.
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", 641, 479)).unwrap();
    assert_eq!(info.stride()[0], 1924);
    let input = frame(&info, 7);
    let tight: Vec<u8> = {
        let m = input.map_readable().unwrap();
        (0..479)
            .flat_map(|y| m[y * 1924..y * 1924 + 641 * 3].to_vec())
            .collect()
    };
    let spec = TensorSpec::default();
    let mut want = vec![0u8; spec.byte_size()];
    Resizer::new(641, 479, &spec).run(
        &SrcImage {
            format: PixelFormat::Rgb,
            width: 641,
            height: 479,
            planes: [&tight, &[], &[]],
            strides: [641 * 3, 0, 0],
        },
        &YuvToRgb::new(YuvMatrix::Bt601, false),
        &mut want,
    );
    // The tensor the element makes from one frame, with `threads` threads.
    let tensor = |input: gst::Buffer, threads: u32| {
        let mut h = gst_check::Harness::new("tritonletterbox");
        h.element().unwrap().set_property("threads", threads);
        h.set_src_caps(caps("RGB", 641, 479));
        let out = h.push_and_pull(input).unwrap();
        let m = meta::tensor_meta(&out).unwrap();
        m.tensor.map_readable().unwrap().to_vec()
    };
    assert!(
        tensor(input, 1) == want,
        "tensor from a padded-stride frame differs from the tight one"
    );
    // The `threads` property splits the rows; the tensor stays the same.
    let got = tensor(frame(&info, 7), 3);
    assert!(got == want, "threads=3 changed the tensor");
}

#[test]
fn caps_change_mid_stream_and_properties() {
    init();
    let mut h = gst_check::Harness::new("tritonletterbox");
    {
        let e = h.element().unwrap();
        e.set_property("width", 320u32);
        e.set_property("height", 256u32);
        e.set_property_from_str("dtype", "FP16");
        e.set_property_from_str("layout", "NHWC");
    }
    for (w, hgt) in [(1280, 720), (720, 1280), (64, 48)] {
        h.set_src_caps(caps("I420", w, hgt));
        let info = gst_video::VideoInfo::from_caps(&caps("I420", w, hgt)).unwrap();
        let out = h.push_and_pull(frame(&info, 1)).unwrap();
        let m = meta::tensor_meta(&out).unwrap();
        assert_eq!(m.shape, vec![1, 256, 320, 3]);
        assert_eq!(m.dtype, "FP16");
        assert_eq!((m.geometry.src_w, m.geometry.src_h), (w as u32, hgt as u32));
        let (x, y) = m.geometry.to_frame(
            m.geometry.to_tensor(10.0, 20.0).0,
            m.geometry.to_tensor(10.0, 20.0).1,
        );
        assert!((x - 10.0).abs() < 1e-9 && (y - 20.0).abs() < 1e-9);
    }
}

/// The `(x, y, w, h)` part of every plane of `input`, rows packed tight: an image of its own,
/// cut by hand (chroma of 4:2:0 formats at half resolution).
fn cut(
    input: &gst::Buffer,
    info: &gst_video::VideoInfo,
    r: (usize, usize, usize, usize),
) -> [Vec<u8>; 3] {
    let (x, y, w, h) = r;
    let m = input.map_readable().unwrap();
    let plane = |k: usize, x0: usize, y0: usize, cols: usize, rows: usize| -> Vec<u8> {
        let (off, stride) = (info.offset()[k], info.stride()[k] as usize);
        (y0..y0 + rows)
            .flat_map(|row| m[off + row * stride + x0..off + row * stride + x0 + cols].to_vec())
            .collect()
    };
    let (cx, cy, cw, ch) = (x / 2, y / 2, w.div_ceil(2), h.div_ceil(2));
    match info.format() {
        gst_video::VideoFormat::I420 => [
            plane(0, x, y, w, h),
            plane(1, cx, cy, cw, ch),
            plane(2, cx, cy, cw, ch),
        ],
        gst_video::VideoFormat::Nv12 => [
            plane(0, x, y, w, h),
            plane(1, 2 * cx, cy, 2 * cw, ch),
            vec![],
        ],
        f => {
            let bpp = info.comp_pstride(0) as usize;
            assert!(matches!(
                f,
                gst_video::VideoFormat::Rgb | gst_video::VideoFormat::Bgrx
            ));
            [plane(0, x * bpp, y, w * bpp, h), vec![], vec![]]
        }
    }
}

#[test]
fn roi_makes_the_tensor_of_the_region_alone_and_maps_back_to_the_full_frame() {
    init();
    // (format, the region asked, the region used: 4:2:0 corners move outwards to even pixels)
    let cases = [
        (
            "RGB",
            (101, 51, 300, 200),
            (101, 51, 300, 200),
            PixelFormat::Rgb,
        ),
        (
            "BGRx",
            (101, 51, 300, 200),
            (101, 51, 300, 200),
            PixelFormat::Bgrx,
        ),
        (
            "I420",
            (101, 51, 300, 200),
            (100, 50, 302, 202),
            PixelFormat::I420,
        ),
        (
            "NV12",
            (101, 51, 300, 200),
            (100, 50, 302, 202),
            PixelFormat::Nv12,
        ),
    ];
    for (format, asked, used, pixel) in cases {
        let info = gst_video::VideoInfo::from_caps(&caps(format, 641, 479)).unwrap();
        let input = frame(&info, 3);
        let want = letterbox_of(&input, &info, used, pixel);
        let (w, h) = (used.2, used.3);
        let mut harness = gst_check::Harness::new("tritonletterbox");
        harness
            .element()
            .unwrap()
            .set_property_from_str("dtype", "FP32");
        harness.element().unwrap().set_property(
            "roi",
            format!("{},{},{},{}", asked.0, asked.1, asked.2, asked.3),
        );
        harness.set_src_caps(caps(format, 641, 479));
        let out = harness.push_and_pull(input).unwrap();
        let m = meta::tensor_meta(&out).unwrap();
        let g = m.geometry;
        assert_eq!(
            (
                g.origin_x, g.origin_y, g.src_w, g.src_h, g.frame_w, g.frame_h
            ),
            (used.0 as u32, used.1 as u32, w as u32, h as u32, 641, 479),
            "{format}"
        );
        assert!(
            m.tensor.map_readable().unwrap().as_slice() == want.as_slice(),
            "{format}: the tensor is not the letterbox of the region"
        );
        // The region's corners land on the resized image's corners; boxes come back in
        // full-frame pixels.
        assert_eq!(
            g.to_tensor(used.0 as f64, used.1 as f64),
            (g.left as f64, g.top as f64)
        );
        let b = [150.0, 100.0, 250.5, 200.25];
        let back = g.box_to_frame(g.box_to_tensor(b));
        assert!(
            b.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-9),
            "{format}: {back:?}"
        );
    }
}

/// The default FP32 tensor of the `(x, y, w, h)` part of `input`, made by the resizer from a
/// copy of that part cut by hand.
fn letterbox_of(
    input: &gst::Buffer,
    info: &gst_video::VideoInfo,
    r: (usize, usize, usize, usize),
    pixel: PixelFormat,
) -> Vec<u8> {
    let planes = cut(input, info, r);
    let (w, h) = (r.2, r.3);
    let strides = match pixel {
        PixelFormat::I420 => [w, w.div_ceil(2), w.div_ceil(2)],
        PixelFormat::Nv12 => [w, 2 * w.div_ceil(2), 0],
        _ => [w * pixel_bytes(pixel), 0, 0],
    };
    let spec = TensorSpec::default();
    let mut want = vec![0u8; spec.byte_size()];
    Resizer::new(w as u32, h as u32, &spec).run(
        &SrcImage {
            format: pixel,
            width: w,
            height: h,
            planes: [&planes[0], &planes[1], &planes[2]],
            strides,
        },
        &YuvToRgb::new(YuvMatrix::Bt601, false),
        &mut want,
    );
    want
}

#[test]
fn several_regions_make_one_batch_of_their_letterboxes_in_order() {
    init();
    for (format, pixel) in [("RGB", PixelFormat::Rgb), ("I420", PixelFormat::I420)] {
        let info = gst_video::VideoInfo::from_caps(&caps(format, 640, 480)).unwrap();
        let input = frame(&info, 5);
        let regions = [(0, 0, 320, 240), (300, 200, 340, 280), (10, 400, 100, 80)];
        let mut harness = gst_check::Harness::new("tritonletterbox");
        let el = harness.element().unwrap();
        el.set_property_from_str("dtype", "FP32");
        el.set_property("roi", "0,0,320,240; 300,200,340,280;10,400,100,80");
        el.set_property("roi-drop-cut", true);
        harness.set_src_caps(caps(format, 640, 480));
        let out = harness.push_and_pull(input.clone()).unwrap();
        let m = meta::tensor_meta(&out).unwrap();
        assert_eq!(m.shape, vec![3, 3, 640, 640], "{format}");
        assert!(m.drop_cut && m.objects.is_none(), "{format}");
        let item = TensorSpec::default().byte_size();
        let tensor = m.tensor.map_readable().unwrap();
        assert_eq!(tensor.len(), 3 * item, "{format}");
        assert_eq!(m.regions.len(), 3, "{format}");
        for (i, (r, g)) in regions.iter().zip(&m.regions).enumerate() {
            assert_eq!(
                (
                    g.origin_x, g.origin_y, g.src_w, g.src_h, g.frame_w, g.frame_h
                ),
                (r.0 as u32, r.1 as u32, r.2 as u32, r.3 as u32, 640, 480),
                "{format} region {i}"
            );
            assert!(
                tensor[i * item..(i + 1) * item] == letterbox_of(&input, &info, *r, pixel)[..],
                "{format}: item {i} is not the letterbox of region {r:?}"
            );
        }
        // The first region's geometry is also the meta's own (readers of one geometry).
        assert_eq!(m.geometry, m.regions[0], "{format}");
    }
}

fn pixel_bytes(p: PixelFormat) -> usize {
    match p {
        PixelFormat::Rgb => 3,
        PixelFormat::Bgrx => 4,
        _ => 1,
    }
}

#[test]
fn a_region_outside_the_frame_is_an_error_naming_roi() {
    init();
    for (roi, extra, want) in [
        ("300,200,100,100", "", "reaches outside the 320×240 frame"),
        ("0,0,0,100", "", "zero width or height"),
        (
            "0.5,0.5,0.6,0.1",
            "roi-normalized=true",
            "reaches outside the frame",
        ),
    ] {
        let p = gst::parse::launch(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,width=320,height=240 ! tritonletterbox roi={roi} {extra} ! fakesink"
        ))
        .unwrap();
        p.set_state(gst::State::Playing).ok();
        let msg = p
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(5),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            )
            .unwrap();
        match msg.view() {
            gst::MessageView::Error(e) => {
                let text = e.error().to_string();
                assert!(
                    text.contains("roi: ") && text.contains(want),
                    "{roi}: {text}"
                );
            }
            _ => panic!("{roi}: expected an error, got EOS"),
        }
        p.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn bad_mean_is_a_clear_error() {
    init();
    let p = gst::parse::launch("videotestsrc num-buffers=1 ! tritonletterbox mean=a,b ! fakesink")
        .unwrap();
    p.set_state(gst::State::Playing).ok();
    let bus = p.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .unwrap();
    match msg.view() {
        gst::MessageView::Error(e) => {
            assert!(e.error().to_string().contains("mean"), "{}", e.error())
        }
        _ => panic!("expected an error"),
    }
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn no_leaks_over_1000_frames() {
    let plugin_dir = common::plugin_dir();
    let out = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=1000",
            "!",
            "video/x-raw,width=320,height=240,format=I420",
            "!",
            "tritonletterbox",
            "width=160",
            "height=160",
            "!",
            "fakesink",
        ])
        .env("GST_PLUGIN_PATH", plugin_dir)
        .env("GST_TRACERS", "leaks")
        .env("GST_DEBUG", "GST_TRACER:7")
        .env("GST_LEAKS_TRACER_SIG", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // As every gst-launch-1.0 run in the tests (gst_triton_tests::stderr, which this crate cannot
    // depend on): no GLib/GStreamer criticals or warnings.
    assert!(
        !err.contains("-CRITICAL **") && !err.contains("-WARNING **"),
        "{err}"
    );
    // The tracer declares its record format ("object-alive, type-name=(string)%s, ...") and then
    // logs one "object-alive" record per object still alive at exit.
    assert!(
        err.contains("object-alive"),
        "leaks tracer did not run: {err}"
    );
    let leaks: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.contains("object-alive") && !l.contains("%s") && !l.contains("object-alive.class")
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "leaked objects:\n{}",
        leaks
            .iter()
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `interval=3`: a tensor for frames 0, 3, 6, ...; the frames between carry the skipped marker
/// and no tensor; a flush starts the count again, so the first frame after a seek has a tensor.
#[test]
fn interval_makes_tensors_for_every_nth_frame_and_starts_again_after_a_flush() {
    init();
    let mut h = gst_check::Harness::new_parse("tritonletterbox width=64 height=64 interval=3");
    let c = caps("RGB", 96, 64);
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    let mut seen = Vec::new();
    for i in 0..7 {
        let out = h.push_and_pull(frame(&info, i)).unwrap();
        let tensor = meta::tensor_meta(&out).is_some();
        assert_eq!(meta::skipped(&out), (!tensor).then_some(3), "frame {i}");
        seen.push(tensor);
    }
    assert_eq!(seen, [true, false, false, true, false, false, true]);
    let out = h.push_and_pull(frame(&info, 7)).unwrap();
    assert!(meta::tensor_meta(&out).is_none());
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    let out = h.push_and_pull(frame(&info, 8)).unwrap();
    assert!(
        meta::tensor_meta(&out).is_some(),
        "the first frame after a flush has no tensor"
    );
}

/// UINT8 tensors differ from FP32 ones (default scale 1/255, no mean, no std) only by rounding:
/// for every element, |u8 / 255 − f32| ≤ 0.5 / 255, on every input format and at a size that
/// resizes (so the interpolated values are not whole numbers). The bound the real-model test's
/// "UINT8 vs FP32" agreement rests on.
#[test]
fn uint8_tensors_are_the_fp32_ones_rounded_to_whole_pixels() {
    init();
    let tensor = |dtype: &str, format: &str, input: &gst::Buffer| -> Vec<u8> {
        let mut h = gst_check::Harness::new("tritonletterbox");
        {
            let e = h.element().unwrap();
            e.set_property("width", 160u32);
            e.set_property("height", 128u32);
            e.set_property_from_str("dtype", dtype);
        }
        h.set_src_caps(caps(format, 641, 479));
        let out = h.push_and_pull(input.clone()).unwrap();
        let m = meta::tensor_meta(&out).unwrap();
        assert_eq!(m.dtype, dtype);
        m.tensor.map_readable().unwrap().to_vec()
    };
    for format in ["I420", "NV12", "RGB", "BGRx"] {
        let info = gst_video::VideoInfo::from_caps(&caps(format, 641, 479)).unwrap();
        let input = frame(&info, 7);
        let u8s = tensor("UINT8", format, &input);
        let f32s: Vec<f32> = tensor("FP32", format, &input)
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(u8s.len(), f32s.len(), "{format}: elements");
        let mut worst = 0f32;
        let mut fractional = 0;
        for (u, f) in u8s.iter().zip(&f32s) {
            let d = (*u as f32 / 255.0 - f).abs();
            worst = worst.max(d);
            if (f * 255.0 - (f * 255.0).round()).abs() > 1e-3 {
                fractional += 1;
            }
        }
        assert!(
            worst <= 0.5 / 255.0 + 1e-6,
            "{format}: |u8/255 - f32| up to {worst} (bound {})",
            0.5 / 255.0
        );
        assert!(
            fractional * 10 >= f32s.len(),
            "{format}: only {fractional} of {} FP32 values between whole pixels: the bound was not put to the test",
            f32s.len()
        );
    }
}

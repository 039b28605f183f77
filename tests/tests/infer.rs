//! tritonletterbox ! tritoninfer against the real Triton (directly and through a real proxy):
//! drawn rectangles come back at the right places with the right labels.

use std::time::Duration;

use gst_triton_tests::mlserver::MlServer;
use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::{Triton, shared_url};
use gst_triton_tests::{CLASS_NAMES, Rect};
use gsttriton::meta;

/// Rectangles for frame `i` of a `w×h` video: three objects that move a little every frame (even
/// coordinates and sizes, so 4:2:0 chroma has clean edges).
fn scene(w: u32, h: u32, i: u32) -> Vec<Rect> {
    let e = |v: u32| v & !1;
    vec![
        Rect::new(e(w / 10 + 6 * i), e(h / 10), e(w / 5), e(h / 6), 0),
        Rect::new(e(w / 2), e(h / 2 + 4 * i), e(w / 4), e(h / 5), 2),
        Rect::new(
            e(w * 3 / 4 + 2 * i),
            e(h / 8),
            e(w / 12).max(24),
            e(h / 10).max(24),
            3,
        ),
    ]
}

/// Checks one output frame against what was drawn.
fn check(buf: &gst::BufferRef, w: u32, h: u32, drawn: &[Rect], what: &str) {
    let r = (640.0 / w as f64).min(640.0 / h as f64);
    // The model reports edges to half a tensor pixel: 0.5/r frame pixels, plus half a frame pixel
    // for where resampling puts a blended edge.
    let tol = (0.5 / r + 0.5) as f32;
    let res = meta::result_meta(buf).unwrap_or_else(|| panic!("{what}: no result meta"));
    assert_eq!(res.status, "ok", "{what}: {}", res.error);
    let dets = meta::detections(buf, w, h);
    assert_eq!(
        dets.len(),
        drawn.len(),
        "{what}: got {dets:?}, drew {drawn:?}"
    );
    for d in drawn {
        let label = CLASS_NAMES[d.class];
        let best = dets
            .iter()
            .filter(|x| x.label == label && x.class_id == d.class as i32)
            .map(|x| {
                let f = Rect {
                    x1: x.bbox[0] as f32,
                    y1: x.bbox[1] as f32,
                    x2: x.bbox[2] as f32,
                    y2: x.bbox[3] as f32,
                    class: d.class,
                };
                f.max_edge_error(d)
            })
            .fold(f32::INFINITY, f32::min);
        assert!(
            best <= tol,
            "{what}: {label} {d:?} off by {best} px (tolerance {tol}); got {dets:?}"
        );
    }
    assert!(dets.iter().all(|d| d.confidence > 0.5), "{what}: {dets:?}");
}

const SIZES: [(u32, u32); 4] = [(1280, 720), (720, 1280), (641, 479), (1920, 1080)];
const MODELS: [&str; 3] = ["shapes_yolov8", "shapes_nms", "shapes_effnms"];

fn ground_truth(url: &str, transport: &str, extra: &str) {
    ground_truth_on(url, transport, extra, &MODELS, &SIZES);
}

fn ground_truth_on(url: &str, transport: &str, extra: &str, models: &[&str], sizes: &[(u32, u32)]) {
    for &(w, h) in sizes {
        for format in ["RGB", "I420"] {
            for &model in models {
                let frames: Vec<Vec<u8>> = (0..3)
                    .map(|i| draw_rgb(w as usize, h as usize, &scene(w, h, i)))
                    .collect();
                let convert = if format == "I420" {
                    "videoconvert ! video/x-raw,format=I420 ! "
                } else {
                    ""
                };
                let middle = format!(
                    "{convert}tritonletterbox ! tritoninfer url={url} transport={transport} model={model} {extra} on-error=fail"
                );
                let run = run_frames(
                    &middle,
                    w as usize,
                    h as usize,
                    &frames,
                    |_| {},
                    Duration::from_secs(60),
                );
                let what = format!("{transport} {model} {format} {w}x{h}");
                assert!(run.errors.is_empty(), "{what}: {:?}", run.errors);
                assert_eq!(run.buffers.len(), 3, "{what}");
                for (i, b) in run.buffers.iter().enumerate() {
                    check(
                        b,
                        w,
                        h,
                        &scene(w, h, i as u32),
                        &format!("{what} frame {i}"),
                    );
                }
            }
        }
    }
}

#[test]
fn ground_truth_direct_to_triton() {
    ground_truth(&shared_url(), "triton", "");
}

#[test]
fn ground_truth_unary_kserve_to_triton() {
    // transport=kserve: plain KServe v2 ModelInfer calls, pipelined, no streaming extension.
    ground_truth(&shared_url(), "kserve", "max-in-flight=2");
}

/// MLServer, a second KServe v2 server that is not Triton (no streaming extension, no
/// ModelConfig, so the labels come from a labels file), serving the same detector:
/// `transport=kserve` straight to it, and the proxy in front of it (`TRITON_URL` = MLServer).
#[test]
fn ground_truth_against_mlserver_directly_and_through_the_proxy() {
    let ml = MlServer::start().unwrap();
    let labels = std::env::temp_dir().join(format!("shapes-labels-{}.txt", std::process::id()));
    std::fs::write(&labels, CLASS_NAMES.join("\n")).unwrap();
    let labels = format!("labels-file={}", labels.display());
    let models = ["shapes_yolov8", "shapes_nms"];
    let sizes = [(1280, 720), (641, 479)];
    ground_truth_on(
        &ml.url(),
        "kserve",
        &format!("max-in-flight=2 {labels}"),
        &models,
        &sizes,
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&ml.url(), &[])).unwrap();
    ground_truth_on(
        &proxy.url(),
        "proxy",
        &format!("api-key=test-key {labels}"),
        &models,
        &sizes,
    );
    drop(proxy);
}

#[test]
fn ground_truth_through_the_proxy() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&shared_url(), &[])).unwrap();
    ground_truth(&proxy.url(), "proxy", "api-key=test-key");
    drop(proxy);
}

/// `dtype=auto` (tritonletterbox's default) asks tritoninfer for the model's input type: the
/// UINT8 model (`shapes_yolov8_u8`: raw pixels, normalised inside) gets UINT8 tensors, a quarter
/// of FP32's bytes, on every transport and through the proxy, and finds what was drawn, as the
/// FP32 model does on the same frames; the FP32 model keeps FP32; a letterbox with nothing
/// after it to ask makes FP32.
#[test]
fn dtype_auto_makes_the_tensor_type_the_model_takes() {
    const FP32_BYTES: usize = 640 * 640 * 3 * 4;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&shared_url(), &[])).unwrap();
    let (w, h) = (1280u32, 720u32);
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|i| draw_rgb(w as usize, h as usize, &scene(w, h, i)))
        .collect();
    let run = |middle: &str| {
        let r = run_frames(
            middle,
            w as usize,
            h as usize,
            &frames,
            |_| {},
            Duration::from_secs(60),
        );
        assert!(r.errors.is_empty(), "{middle}: {:?}", r.errors);
        assert_eq!(r.buffers.len(), 3, "{middle}");
        r.buffers
    };
    let tensor = |b: &gst::Buffer| {
        let t = meta::tensor_meta(b).expect("a tensor meta");
        (t.dtype, t.tensor.size())
    };
    let alone = run("tritonletterbox");
    assert_eq!(tensor(&alone[0]), ("FP32".to_string(), FP32_BYTES));
    let url = shared_url();
    let proxy_url = proxy.url();
    for (url, transport, extra) in [
        (&url, "triton", ""),
        (&url, "kserve", ""),
        (&proxy_url, "proxy", "api-key=test-key"),
    ] {
        let infer = |model: &str| {
            run(&format!(
                "tritonletterbox ! tritoninfer url={url} transport={transport} model={model} {extra} on-error=fail"
            ))
        };
        let fp32 = infer("shapes_yolov8");
        let raw = infer("shapes_yolov8_u8");
        for (i, (a, b)) in fp32.iter().zip(&raw).enumerate() {
            let what = format!("{transport} frame {i}");
            assert_eq!(tensor(a), ("FP32".to_string(), FP32_BYTES), "{what}");
            assert_eq!(tensor(b), ("UINT8".to_string(), FP32_BYTES / 4), "{what}");
            let drawn = scene(w, h, i as u32);
            check(a, w, h, &drawn, &format!("{what} FP32"));
            check(b, w, h, &drawn, &format!("{what} UINT8"));
        }
    }
    drop(proxy);
}

#[test]
fn frames_without_letterbox_meta_are_a_clear_error() {
    let frames = vec![draw_rgb(64, 48, &[])];
    let run = run_frames(
        &format!("tritoninfer url={} transport=triton", shared_url()),
        64,
        48,
        &frames,
        |_| {},
        Duration::from_secs(20),
    );
    assert!(
        run.errors.iter().any(|e| e.contains("tritonletterbox")),
        "{:?}",
        run.errors
    );
}

#[test]
fn order_under_jitter_with_eight_in_flight() {
    // shapes_jitter: 3 model instances, each request sleeps a random 0-12 ms, so answers come back
    // out of order; frames must leave in order with their own rectangles.
    let (w, h) = (320u32, 240u32);
    let n = 500u32;
    let rect = |i: u32| {
        vec![Rect::new(
            2 * (i % 120),
            2 * (i / 120) * 10 + 4,
            40,
            30,
            (i % 4) as usize,
        )]
    };
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| draw_rgb(w as usize, h as usize, &rect(i)))
        .collect();
    let started = std::time::Instant::now();
    let run = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={} transport=triton model=shapes_jitter max-in-flight=8 on-error=fail",
            shared_url()
        ),
        w as usize,
        h as usize,
        &frames,
        |_| {},
        Duration::from_secs(180),
    );
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.buffers.len(), n as usize);
    // Requests overlapped: each frame's latency runs from sending its request to its answer, so
    // with one request at a time the latencies would not overlap and would add up to less than
    // the run took. Here they add up to several times that.
    let latency_sum: f64 = run
        .buffers
        .iter()
        .map(|b| meta::result_meta(b).unwrap().latency_ms)
        .sum();
    eprintln!("latencies add up to {latency_sum:.0} ms in a {elapsed_ms:.0} ms run");
    assert!(
        latency_sum > 2.0 * elapsed_ms,
        "no overlap: latencies add up to {latency_sum:.0} ms in a {elapsed_ms:.0} ms run"
    );
    for (i, b) in run.buffers.iter().enumerate() {
        assert_eq!(
            b.pts(),
            Some(gst::ClockTime::from_mseconds(33 * i as u64)),
            "frame {i} out of order"
        );
        let res = meta::result_meta(b).unwrap();
        assert_eq!(res.frame, i as u64);
        assert_eq!(res.request_id, format!("cam-001:{i}"));
        check(b, w, h, &rect(i as u32), &format!("frame {i}"));
    }
}

#[test]
fn interval_skips_frames_and_says_so() {
    let (w, h) = (160usize, 120usize);
    let frames: Vec<Vec<u8>> = (0..6)
        .map(|_| draw_rgb(w, h, &[Rect::new(10, 10, 40, 30, 1)]))
        .collect();
    let run = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={} transport=triton model=shapes_nms interval=3",
            shared_url()
        ),
        w,
        h,
        &frames,
        |_| {},
        Duration::from_secs(30),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let statuses: Vec<String> = run
        .buffers
        .iter()
        .map(|b| meta::result_meta(b).unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        ["ok", "skipped", "skipped", "ok", "skipped", "skipped"]
    );
    assert_eq!(
        meta::detections(&run.buffers[3], w as u32, h as u32).len(),
        1
    );
    assert!(meta::detections(&run.buffers[1], w as u32, h as u32).is_empty());
}

#[test]
fn triton_killed_mid_stream_skip_keeps_every_frame() {
    // One frame at a time through a Harness, so each phase waits for what it needs (an outage
    // seen, a recovery seen) up to a deadline instead of counting on timing.
    use gst::prelude::*;
    let mut triton = Triton::start().unwrap();
    gst_triton_tests::pipeline::init();
    let (w, h) = (160usize, 120usize);
    let mut harness = gst_check::Harness::new_parse(&format!(
        "tritonletterbox ! tritoninfer url={} transport=triton model=shapes_nms timeout-ms=3000 max-in-flight=2",
        triton.url()
    ));
    harness.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={w},height={h},framerate=30/1"
    ));
    let bus = gst::Bus::new();
    harness.element().unwrap().set_bus(Some(&bus));
    harness.play();
    let pixels = draw_rgb(w, h, &[Rect::new(20, 20, 40, 30, 0)]);
    let mut sent = 0u64;
    let mut statuses: Vec<String> = Vec::new();
    let mut step = |harness: &mut gst_check::Harness| -> meta::ResultMeta {
        let mut b = gst::Buffer::from_slice(pixels.clone());
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * sent));
        harness.push(b).unwrap();
        let out = harness.pull().expect("every frame comes out");
        let r = meta::result_meta(&out).unwrap();
        assert_eq!(r.frame, sent, "frames in == frames out, in order");
        sent += 1;
        if r.status == "ok" {
            assert_eq!(meta::detections(&out, w as u32, h as u32).len(), 1);
        } else {
            assert!(meta::detections(&out, w as u32, h as u32).is_empty());
        }
        statuses.push(r.status.clone());
        r
    };
    for _ in 0..5 {
        let r = step(&mut harness);
        assert_eq!(r.status, "ok", "{}", r.error);
    }
    triton.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut errors = 0;
    while errors < 3 {
        let r = step(&mut harness);
        if r.status == "error" {
            assert!(!r.error.is_empty());
            errors += 1;
        }
        assert!(std::time::Instant::now() < deadline, "no outage seen");
    }
    triton.restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while step(&mut harness).status != "ok" {
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery within 30 s of the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        let r = step(&mut harness);
        assert_eq!(r.status, "ok", "after recovery: {}", r.error);
    }
    // ok… then the outage (errors only) … then ok to the end: no stray result in between.
    let first_err = statuses.iter().position(|s| s == "error").unwrap();
    let last_err = statuses.iter().rposition(|s| s == "error").unwrap();
    assert!(
        statuses[first_err..=last_err].iter().all(|s| s == "error"),
        "{statuses:?}"
    );
    assert!(
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
            .next()
            .is_some(),
        "a warning goes to the bus"
    );
    assert!(
        bus.pop_filtered(&[gst::MessageType::Error]).is_none(),
        "on-error=skip posts no error"
    );
}

#[test]
fn triton_down_with_on_error_fail_is_an_element_error() {
    let dead = format!("http://127.0.0.1:{}", gst_triton_tests::triton::free_port());
    let frames = vec![draw_rgb(64, 48, &[]); 3];
    let run = run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={dead} transport=triton model=shapes_nms on-error=fail timeout-ms=2000"
        ),
        64,
        48,
        &frames,
        |_| {},
        Duration::from_secs(30),
    );
    assert!(
        run.errors
            .iter()
            .any(|e| e.contains("inference failed") && e.contains("cannot connect")),
        "{:?}",
        run.errors
    );
}

#[test]
fn proxy_auth_wrong_key_names_the_properties_right_key_works() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt
        .block_on(TestProxy::start(
            &shared_url(),
            &["--grpc-expect-api-key", "right-key"],
        ))
        .unwrap();
    let frames = vec![draw_rgb(64, 48, &[Rect::new(8, 8, 20, 16, 1)]); 2];
    let base = format!(
        "tritonletterbox ! tritoninfer url={} model=shapes_nms",
        proxy.url()
    );
    let bad = run_frames(
        &format!("{base} api-key=wrong-key on-error=fail"),
        64,
        48,
        &frames,
        |_| {},
        Duration::from_secs(30),
    );
    let msg = bad.errors.join("\n");
    assert!(
        msg.contains("api-key") && msg.contains("bearer-token") && msg.contains("DOMINO_API_KEY"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-key") && !msg.contains("right-key"),
        "secret leaked: {msg}"
    );
    let good = run_frames(
        &format!("{base} api-key=right-key on-error=fail"),
        64,
        48,
        &frames,
        |_| {},
        Duration::from_secs(30),
    );
    assert!(good.errors.is_empty(), "{:?}", good.errors);
    assert_eq!(meta::detections(&good.buffers[1], 64, 48).len(), 1);
    drop(proxy);
}

/// Pulls every buffer until EOS (or error) from an appsink named `sink`.
fn drain(
    p: &gst::Pipeline,
    sink: &gst_app::AppSink,
    on_frame: &mut dyn FnMut(usize, &gst::BufferRef),
) -> Result<usize, String> {
    use gst::prelude::*;
    let mut n = 0;
    loop {
        match sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            Some(s) => {
                on_frame(n, s.buffer().unwrap());
                n += 1;
            }
            None => {
                if sink.is_eos() {
                    return Ok(n);
                }
                let err = p.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
                return Err(format!("no sample and no EOS: {err:?}"));
            }
        }
    }
}

#[test]
fn seek_flushes_in_flight_requests_and_streaming_resumes() {
    use gst::prelude::*;
    gst_triton_tests::pipeline::init();
    let clip = gst_triton_tests::artifacts::demo_clip("seek", 60, 320, 240);
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! tritonletterbox ! tritoninfer url={} transport=triton model=shapes_jitter max-in-flight=8 on-error=fail ! appsink name=sink sync=false max-buffers=2",
        clip.display(),
        shared_url()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut seeked = false;
    // (pts, tritoninfer's frame counter, status, detections) before and after the seek.
    type Seen = (Option<gst::ClockTime>, u64, String, usize);
    let (mut before, mut after): (Vec<Seen>, Vec<Seen>) = (Vec::new(), Vec::new());
    let n = drain(&p, &sink, &mut |i, b| {
        let r = meta::result_meta(b).unwrap();
        let seen = (
            b.pts(),
            r.frame,
            r.status,
            meta::detections(b, 320, 240).len(),
        );
        if seeked {
            after.push(seen);
        } else {
            before.push(seen);
        }
        if i == 20 && !seeked {
            // Back to the start with a flush while requests are in flight (max-in-flight=8).
            p.seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::ZERO,
            )
            .unwrap();
            seeked = true;
        }
    })
    .unwrap();
    p.set_state(gst::State::Null).unwrap();
    assert!(seeked);
    // Exactly the whole clip again after the seek: 21 frames before it, 60 after, no more.
    assert_eq!(before.len(), 21);
    assert_eq!(after.len(), 60, "frames after the seek: {n} in all");
    // PTS restart at the clip's first frame and strictly increase, as before the seek.
    assert_eq!(
        after[0].0, before[0].0,
        "playback did not restart at the start"
    );
    assert!(
        after.windows(2).all(|w| w[0].0 < w[1].0),
        "PTS not strictly increasing after the seek: {:?}",
        after.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.0, a.0, "the replayed frames have the clip's timestamps");
    }
    // No result from a request sent before the seek comes out after it: tritoninfer's frame
    // counter keeps counting across the flush, so every result after it is newer than every
    // frame sent before it (the 21 seen plus up to 8 in flight and 2 queued in the sink).
    let last_before = before.last().unwrap().1;
    assert!(
        after.windows(2).all(|w| w[0].1 < w[1].1),
        "results out of order after the seek"
    );
    assert!(
        after[0].1 > last_before,
        "a pre-seek result ({}) came out after the seek",
        after[0].1
    );
    assert!(
        after.iter().chain(&before).all(|s| s.2 == "ok" && s.3 == 4),
        "{before:?} {after:?}"
    );
}

#[test]
fn latency_query_adds_the_timeout_and_null_playing_reconnects() {
    use gst::prelude::*;
    gst_triton_tests::pipeline::init();
    let p = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! tritonletterbox width=160 height=160 \
         ! tritoninfer name=infer url={} transport=triton model=shapes_nms timeout-ms=2500 ! appsink name=sink sync=false max-buffers=5 drop=true",
        shared_url()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    for round in 0..2 {
        p.set_state(gst::State::Playing).unwrap();
        for _ in 0..5 {
            let s = sink
                .try_pull_sample(gst::ClockTime::from_seconds(20))
                .unwrap_or_else(|| panic!("round {round}: no frames"));
            let r = meta::result_meta(s.buffer().unwrap()).unwrap();
            assert_eq!(r.status, "ok", "round {round}: {}", r.error);
        }
        // Ask the element itself (a sync=false sink would report the pipeline as not live).
        let mut q = gst::query::Latency::new();
        let src = p.by_name("infer").unwrap().static_pad("src").unwrap();
        assert!(src.query(&mut q), "latency query answered");
        let (live, _min, max) = q.result();
        assert!(live);
        assert!(
            max.is_none_or(|m| m >= gst::ClockTime::from_mseconds(2500)),
            "max latency {max:?} lacks the 2.5 s timeout"
        );
        // PLAYING → NULL → PLAYING: a fresh connection next round.
        p.set_state(gst::State::Null).unwrap();
    }
}

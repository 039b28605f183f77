//! `tritoninfer` in a `gst_check::Harness` against the in-process KServe mock
//! ([`gst_triton_tests::mock`]): ordering, back-pressure, flush, on-error, describe failures and
//! reconnect, with no Triton started. The real server is in `infer.rs`.

use std::time::Duration;

use gst::prelude::*;
use gst_check::Harness;
use gst_triton_tests::mock::{MockKserve, Script, box_for};
use gst_triton_tests::pipeline::init;
use gst_triton_tests::proxy::TestProxy;
use gsttriton::letterbox::geometry::Letterbox;
use gsttriton::letterbox::tensor::TensorSpec;
use gsttriton::meta;

const SIDE: u32 = 64;

/// A 64×64 RGB frame carrying a 64×64 tensor meta (scale 1, no padding), PTS `n` × 33 ms.
fn frame(n: u64) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(vec![0u8; (SIDE * SIDE * 3) as usize]);
    let tensor = gst::Buffer::from_mut_slice(vec![0u8; (3 * SIDE * SIDE * 4) as usize]);
    let spec = TensorSpec {
        width: SIDE,
        height: SIDE,
        ..Default::default()
    };
    let g = Letterbox::new(SIDE, SIDE, SIDE, SIDE, true);
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(33 * n));
        meta::add_tensor_meta(b, tensor, &spec, &g, meta::Items::One, false);
    }
    b
}

fn harness(url: &str, extra: &str) -> Harness {
    init();
    let desc = format!("tritoninfer url={url} transport=triton model=mock {extra}");
    let mut h = Harness::new_parse(&desc);
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={SIDE},height={SIDE},framerate=30/1"
    ));
    h.play();
    h
}

/// The element's bus, to read errors and warnings.
fn bus_of(h: &Harness) -> gst::Bus {
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    bus
}

fn messages(bus: &gst::Bus, kind: gst::MessageType) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[kind]))
        .map(|m| match m.view() {
            gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => format!("{} ({:?})", w.error(), w.debug()),
            _ => String::new(),
        })
        .collect()
}

/// Checks that `buf` is frame `n`, answered ok with the mock's box for `n`.
fn assert_answer_for(buf: &gst::BufferRef, n: u64) {
    assert_answer_labelled(buf, n, &["red", "green", "blue", "yellow"]);
}

/// The same, with the label of class `c` expected to be `labels[c]`.
fn assert_answer_labelled(buf: &gst::BufferRef, n: u64, labels: &[&str]) {
    let r = meta::result_meta(buf).unwrap_or_else(|| panic!("frame {n}: no result meta"));
    assert_eq!(r.frame, n, "frames left out of order");
    assert_eq!(r.status, "ok", "frame {n}: {}", r.error);
    assert_eq!(r.request_id, format!("cam-001:{n}"));
    assert_eq!(buf.pts(), Some(gst::ClockTime::from_mseconds(33 * n)));
    let d = meta::detections(buf, SIDE, SIDE);
    assert_eq!(d.len(), 1, "frame {n}: {d:?}");
    let want = box_for(n).map(f64::from);
    assert!(
        d[0].bbox
            .iter()
            .zip(want)
            .all(|(a, b)| (a - b).abs() < 1e-3),
        "frame {n} got another frame's answer: {:?} vs {want:?}",
        d[0].bbox
    );
    // Class names come from the model's configuration (when the server has one).
    assert_eq!(d[0].label, labels[(n % 4) as usize]);
}

#[test]
fn order_under_jitter_with_requests_overlapping_up_to_max_in_flight() {
    // Later frames often answer first: frame n waits (n * 7919) % 23 ms.
    let mock = MockKserve::start(Script {
        delay_ms: Box::new(|n| (n * 7919) % 23),
        ..Default::default()
    });
    let mut h = harness(&mock.url(), "max-in-flight=8");
    let n = 120;
    for i in 0..n {
        h.push(frame(i)).unwrap();
    }
    for i in 0..n {
        let b = h.pull().unwrap();
        assert_answer_for(&b, i);
    }
    assert_eq!(mock.received(), n as usize);
    let peak = mock.peak_outstanding();
    assert!(
        (5..=8).contains(&peak),
        "peak outstanding {peak}: requests must overlap (>= 5) but never exceed max-in-flight (8)"
    );
}

#[test]
fn a_request_left_unanswered_by_an_ended_stream_is_sent_again_and_answered() {
    // The mock ends the stream (OK trailers) as frame 7 arrives: frame 7, and whatever else was
    // in flight, get no answer on it. tritoninfer must send them again on a new stream.
    let mock = MockKserve::start(Script {
        delay_ms: Box::new(|_| 5),
        end_stream_at: Some(7),
        ..Default::default()
    });
    let mut h = harness(&mock.url(), "max-in-flight=4 on-error=fail");
    let n = 20;
    for i in 0..n {
        h.push(frame(i)).unwrap();
    }
    for i in 0..n {
        let b = h.pull().unwrap();
        assert_answer_for(&b, i);
    }
    // Frame 7's first copy was dropped with the stream before the mock answered anything for
    // it, so its answer above came from the copy sent again on a new stream.
    assert_eq!(mock.streams_ended(), 1, "the scripted end happened");
}

#[test]
fn back_pressure_holds_the_stream_at_max_in_flight() {
    let mock = std::sync::Arc::new(MockKserve::start(Script::default()));
    mock.set_gate(false);
    let mut h = harness(&mock.url(), "max-in-flight=4");
    // The 5th push blocks in the element; a watcher checks that nothing more was sent while the
    // four requests are unanswered, then opens the gate.
    let m = mock.clone();
    let watcher = std::thread::spawn(move || {
        assert!(m.wait_received(4, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(400));
        let held = m.received();
        m.set_gate(true);
        held
    });
    for i in 0..10 {
        h.push(frame(i)).unwrap();
    }
    let held = watcher.join().unwrap();
    assert_eq!(
        held, 4,
        "requests sent beyond max-in-flight while none was answered"
    );
    for i in 0..10 {
        assert_answer_for(&h.pull().unwrap(), i);
    }
    assert_eq!(mock.peak_outstanding(), 4);
}

#[test]
fn a_flush_abandons_in_flight_answers_and_streaming_resumes() {
    let mock = MockKserve::start(Script::default());
    mock.set_gate(false);
    let mut h = harness(&mock.url(), "max-in-flight=8");
    for i in 0..3 {
        h.push(frame(i)).unwrap();
    }
    assert!(mock.wait_received(3, Duration::from_secs(20)));
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    // The stale answers arrive now, after the flush.
    mock.set_gate(true);
    for i in 3..6 {
        h.push(frame(i)).unwrap();
    }
    for i in 3..6 {
        assert_answer_for(&h.pull().unwrap(), i);
    }
    assert!(mock.wait_received(6, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        h.try_pull().is_none(),
        "a frame from before the flush came out after it"
    );
}

#[test]
fn on_error_skip_marks_failed_frames_and_keeps_every_frame() {
    let mock = MockKserve::start(Script {
        fail: Box::new(|n| (n % 3 == 1).then(|| format!("scripted failure {n}"))),
        ..Default::default()
    });
    let mut h = harness(&mock.url(), "on-error=skip");
    for i in 0..12 {
        h.push(frame(i)).unwrap();
    }
    for i in 0..12 {
        let b = h.pull().unwrap();
        if i % 3 == 1 {
            let r = meta::result_meta(&b).unwrap();
            assert_eq!(r.frame, i);
            assert_eq!(r.status, "error");
            assert_eq!(r.error, format!("Triton: scripted failure {i}"));
            assert!(meta::detections(&b, SIDE, SIDE).is_empty());
        } else {
            assert_answer_for(&b, i);
        }
    }
}

#[test]
fn on_error_fail_posts_an_element_error_naming_the_frame() {
    let mock = MockKserve::start(Script {
        fail: Box::new(|n| (n == 2).then(|| "scripted failure".to_string())),
        ..Default::default()
    });
    let mut h = harness(&mock.url(), "on-error=fail");
    let bus = bus_of(&h);
    for i in 0..2 {
        h.push(frame(i)).unwrap();
    }
    for i in 0..2 {
        assert_answer_for(&h.pull().unwrap(), i);
    }
    let _ = h.push(frame(2));
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Error])
        .expect("an element error");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert_eq!(
        e.error().to_string(),
        "tritoninfer: inference failed for frame 2: Triton: scripted failure"
    );
    // The failed frame is not passed on, and the stream stops taking frames.
    assert!(h.try_pull().is_none());
    assert!(h.push(frame(3)).is_err());
}

#[test]
fn a_failed_model_description_falls_back_to_defaults_and_the_first_answer() {
    let mock = MockKserve::start(Script {
        metadata_error: Some(tonic::Code::NotFound),
        ..Default::default()
    });
    let mut h = harness(&mock.url(), "");
    for i in 0..3 {
        h.push(frame(i)).unwrap();
    }
    for i in 0..3 {
        let b = h.pull().unwrap();
        let r = meta::result_meta(&b).unwrap();
        assert_eq!(r.status, "ok", "{}", r.error);
        let d = meta::detections(&b, SIDE, SIDE);
        assert_eq!(d.len(), 1);
        // No description: the decoder comes from the first answer, the labels stay COCO.
        assert_eq!(d[0].label, gsttriton::decode::COCO80[(i % 4) as usize]);
    }
}

/// A server that takes a minute to describe its model: the first frame waits in the chain
/// function (bounded at 5 s), and stopping the element cancels that wait at once instead of
/// blocking the state change behind the network.
#[test]
fn stopping_the_element_cancels_a_model_description_in_progress() {
    let mock = MockKserve::start(Script {
        metadata_delay_ms: 60_000,
        ..Default::default()
    });
    let h = harness(&mock.url(), "");
    let element = h.element().unwrap();
    let src = h.srcpad().unwrap().peer().unwrap();
    let pusher = std::thread::spawn(move || src.chain(frame(0)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mock.metadata_calls() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the element never asked for the description"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = std::time::Instant::now();
    element.set_state(gst::State::Null).unwrap();
    let stopped_in = t.elapsed();
    assert_eq!(pusher.join().unwrap(), Err(gst::FlowError::Flushing));
    // Without the cancellation the stop waits out the description's 5 s bound.
    assert!(
        stopped_in < Duration::from_secs(4),
        "the stop waited {stopped_in:?} for the description"
    );
    drop(h);
}

#[test]
fn a_killed_server_makes_error_frames_then_streaming_recovers_on_restart() {
    let mock = MockKserve::start(Script::default());
    let mut h = harness(&mock.url(), "on-error=skip timeout-ms=3000");
    let bus = bus_of(&h);
    for i in 0..3 {
        h.push(frame(i)).unwrap();
        assert_answer_for(&h.pull().unwrap(), i);
    }
    let port = mock.kill();
    for i in 3..5 {
        h.push(frame(i)).unwrap();
        let b = h.pull().unwrap();
        let r = meta::result_meta(&b).unwrap();
        assert_eq!((r.frame, r.status.as_str()), (i, "error"), "{}", r.error);
        assert!(!r.error.is_empty());
    }
    assert!(
        messages(&bus, gst::MessageType::Warning)
            .iter()
            .any(|w| w.contains("inference failed")),
        "no warning about the outage"
    );
    let _mock = MockKserve::start_on(port, Script::default());
    // Reconnect attempts back off (at most 5 s apart): frames flow again within that.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut i = 5;
    loop {
        h.push(frame(i)).unwrap();
        let b = h.pull().unwrap();
        let r = meta::result_meta(&b).unwrap();
        assert_eq!(r.frame, i);
        if r.status == "ok" {
            assert_answer_for(&b, i);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {}",
            r.error
        );
        std::thread::sleep(Duration::from_millis(100));
        i += 1;
    }
}

#[test]
fn through_a_real_proxy_in_front_of_the_mock() {
    let mock = MockKserve::start(Script {
        delay_ms: Box::new(|n| (n * 31) % 11),
        ..Default::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(TestProxy::start(&mock.url(), &[])).unwrap();
    init();
    let mut h = Harness::new_parse(&format!(
        "tritoninfer url={} transport=proxy model=mock api-key=test-key max-in-flight=4",
        proxy.url()
    ));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={SIDE},height={SIDE},framerate=30/1"
    ));
    h.play();
    for i in 0..20 {
        h.push(frame(i)).unwrap();
    }
    for i in 0..20 {
        assert_answer_for(&h.pull().unwrap(), i);
    }
    assert!(mock.peak_outstanding() >= 2, "the proxy did not pipeline");
    drop(h);
    drop(proxy);
}

/// A KServe v2 server that is not Triton: no ModelStreamInfer, no ModelConfig, typed contents.
fn kserve_only(delay_ms: fn(u64) -> u64) -> Script {
    Script {
        delay_ms: Box::new(delay_ms),
        kserve_only: true,
        ..Default::default()
    }
}

#[test]
fn transport_kserve_pipelines_unary_calls_and_keeps_order() {
    // Later frames often answer first; unary calls overlap up to max-in-flight; the answers come
    // in typed contents; the decoder is chosen from ModelMetadata alone (no ModelConfig, so the
    // labels are COCO's).
    let mock = MockKserve::start(kserve_only(|n| (n * 7919) % 23));
    let mut h = harness(&mock.url(), "transport=kserve max-in-flight=6");
    let n = 90;
    for i in 0..n {
        h.push(frame(i)).unwrap();
    }
    for i in 0..n {
        assert_answer_labelled(&h.pull().unwrap(), i, &gsttriton::decode::COCO80);
    }
    assert_eq!(mock.received(), n as usize);
    let peak = mock.peak_outstanding();
    assert!(
        (4..=6).contains(&peak),
        "peak outstanding {peak}: unary calls must overlap but never exceed max-in-flight (6)"
    );
}

#[test]
fn transport_triton_against_a_server_without_streaming_suggests_kserve() {
    let mock = MockKserve::start(kserve_only(|_| 0));
    let h = harness(&mock.url(), "on-error=fail");
    let bus = bus_of(&h);
    let mut h = h;
    let _ = h.push(frame(0));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let errors = loop {
        let e = messages(&bus, gst::MessageType::Error);
        if !e.is_empty() || std::time::Instant::now() > deadline {
            break e;
        }
        let _ = h.push(frame(1));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        errors
            .iter()
            .any(|e| e.contains("streaming extension") && e.contains("set transport=kserve")),
        "{errors:?}"
    );
}

#[test]
fn a_renamed_kserve_service_is_reached_through_kserve_service() {
    let mock = MockKserve::start_renamed(Script::default());
    let mut h = harness(
        &mock.url(),
        &format!(
            "transport=kserve kserve-service={} max-in-flight=4",
            gst_triton_tests::mock::RENAMED_SERVICE
        ),
    );
    for i in 0..8 {
        h.push(frame(i)).unwrap();
    }
    for i in 0..8 {
        // Raw outputs and ModelConfig's class names, under the other service name.
        assert_answer_for(&h.pull().unwrap(), i);
    }
    // The default name finds nothing there: every frame says so.
    let mut h = harness(&mock.url(), "transport=kserve on-error=skip");
    h.push(frame(0)).unwrap();
    let b = h.pull().unwrap();
    let r = meta::result_meta(&b).unwrap();
    assert_eq!(r.status, "error");
    assert!(r.error.contains("Unimplemented"), "{}", r.error);
}

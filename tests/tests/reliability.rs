//! Faults under a live pipeline and a misbehaving client, against a real Triton and the proxy as a
//! process of its own: the proxy killed and restarted under `tritoninfer` (skip and fail), the
//! proxy's connection age under a pipeline (no frame lost), and a client that stops reading its
//! Acks (the proxy's memory stays bounded, every Ack arrives later).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::proxy::{ProxyProcess, frame_packet};
use gst_triton_tests::triton::shared_url;
use gst_triton_tests::{MAX_MESSAGE, Rect};

const W: usize = 160;
const H: usize = 120;

fn frames(n: usize) -> Vec<Vec<u8>> {
    vec![draw_rgb(W, H, &[Rect::new(20, 20, 40, 30, 0)]); n]
}

/// The JSON lines detjsonsink wrote.
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `tritonletterbox ! tritoninfer (through the proxy) ! tee → detjsonsink + appsink`.
fn through_proxy(url: &str, on_error: &str, json: &std::path::Path) -> String {
    format!(
        "tritonletterbox ! tritoninfer url={url} transport=proxy api-key=test-key model=shapes_nms \
         on-error={on_error} timeout-ms=3000 max-in-flight=2 ! tee name=t ! queue ! \
         detjsonsink location={} t. ! queue",
        json.display()
    )
}

#[test]
fn proxy_killed_and_restarted_under_a_pipeline_frames_in_equal_frames_out() {
    let mut proxy = ProxyProcess::start(&shared_url(), &[]);
    let json = std::env::temp_dir().join(format!("restart-{}.jsonl", std::process::id()));
    let n = 150;
    let pushed = Arc::new(Mutex::new(Vec::new()));
    let restarted = Arc::new(Mutex::new(None::<Instant>));
    let (p2, r2) = (pushed.clone(), restarted.clone());
    let run = run_frames(
        &through_proxy(&proxy.url(), "skip", &json),
        W,
        H,
        &frames(n),
        |i| {
            std::thread::sleep(Duration::from_millis(40));
            if i == 40 {
                proxy.kill();
            }
            if i == 80 {
                proxy.restart();
                *r2.lock().unwrap() = Some(Instant::now());
            }
            p2.lock().unwrap().push(Instant::now());
        },
        Duration::from_secs(120),
    );
    assert!(run.errors.is_empty(), "on-error=skip: {:?}", run.errors);
    assert_eq!(run.buffers.len(), n, "frames in == frames out");
    let lines = json_lines(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(lines.len(), n, "one JSON line per frame");
    let status: Vec<&str> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            assert_eq!(l["frame"], i as u64, "JSON lines in frame order");
            l["status"].as_str().unwrap()
        })
        .collect();
    // Frames in flight when the proxy died may fail; every one before them is ok.
    assert!(status[..35].iter().all(|s| *s == "ok"), "{status:?}");
    let first_err = status
        .iter()
        .position(|s| *s == "error")
        .expect("an outage");
    let recovered = first_err
        + status[first_err..]
            .iter()
            .position(|s| *s == "ok")
            .expect("recovery");
    assert!(
        status[first_err..recovered].iter().all(|s| *s == "error"),
        "{status:?}"
    );
    assert!(
        status[recovered..].iter().all(|s| *s == "ok"),
        "after recovery: {status:?}"
    );
    for l in &lines[first_err..recovered] {
        let e = l["error"].as_str().unwrap_or("");
        assert!(!e.is_empty(), "an error line says why: {l}");
    }
    // ok again within 5 s of the restart (counted from when the first ok frame was pushed).
    let restarted = restarted.lock().unwrap().unwrap();
    let pushed = pushed.lock().unwrap();
    let after = pushed[recovered].saturating_duration_since(restarted);
    assert!(
        after <= Duration::from_secs(5),
        "first ok frame pushed {after:?} after the restart"
    );
    assert!(
        !run.warnings.is_empty(),
        "the outage is a warning on the bus"
    );
}

#[test]
fn proxy_killed_under_on_error_fail_is_an_element_error_without_a_hang() {
    use gst::prelude::*;
    gst_triton_tests::pipeline::init();
    let mut proxy = ProxyProcess::start(&shared_url(), &[]);
    // appsrc without blocking: the feeding loop sees the error instead of waiting on a stopped
    // pipeline.
    let desc = format!(
        "appsrc name=src format=time block=false caps=video/x-raw,format=RGB,width={W},height={H},framerate=30/1 \
         ! tritonletterbox ! tritoninfer url={} transport=proxy api-key=test-key model=shapes_nms \
         on-error=fail timeout-ms=3000 ! fakesink name=sink sync=false signal-handoffs=true",
        proxy.url()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let out = Arc::new(Mutex::new(0usize));
    let o = out.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            *o.lock().unwrap() += 1;
            None
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, W as u32, H as u32)
        .build()
        .unwrap();
    let frame = vec![90u8; info.size()];
    let mut error = None;
    let t = Instant::now();
    let mut killed = None;
    for i in 0..1000u64 {
        // Killed once ten frames came out answered.
        if killed.is_none() && *out.lock().unwrap() >= 10 {
            proxy.kill();
            killed = Some(i);
        }
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = m.view() {
                error = Some(format!("{} ({:?})", e.error(), e.debug()));
            }
            break;
        }
        let mut b = gst::Buffer::from_slice(frame.clone());
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i));
        let _ = src.push_buffer(b);
        std::thread::sleep(Duration::from_millis(20));
    }
    let error = error.or_else(|| {
        let m =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(15), &[gst::MessageType::Error])?;
        match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        }
    });
    pipeline.set_state(gst::State::Null).unwrap();
    let error = error.expect("an element error after the proxy was killed");
    assert!(
        error.contains("inference failed") && error.contains("frame"),
        "{error}"
    );
    let out = *out.lock().unwrap();
    assert!(killed.is_some(), "ten frames never came out");
    assert!((10..1000).contains(&out), "{out} frames out");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[test]
fn connection_age_under_a_pipeline_costs_no_frame() {
    // Streams end every 2 s (+1 s) for their connection's age; tritoninfer resends what was not
    // answered on a new stream, so every frame is ok.
    let proxy = ProxyProcess::start(
        &shared_url(),
        &[
            "--proxy-max-connection-age-secs",
            "2",
            "--proxy-max-connection-age-grace-secs",
            "5",
        ],
    );
    let json = std::env::temp_dir().join(format!("age-{}.jsonl", std::process::id()));
    let n = 200;
    let run = run_frames(
        &through_proxy(&proxy.url(), "fail", &json),
        W,
        H,
        &frames(n),
        |_| std::thread::sleep(Duration::from_millis(40)),
        Duration::from_secs(120),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let lines = json_lines(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(lines.len(), n);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
    let ended = proxy
        .log_text()
        .matches("ending the stream after its owed Acks")
        .count();
    assert!(ended >= 2, "the run crossed {ended} connection ages");
}

#[test]
fn a_client_that_stops_reading_acks_does_not_grow_the_proxy() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rss, acks) = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(proxy.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = triton_proto::multimodal::multi_modal_client::MultiModalClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        // 300 packets of 640×640 FP32 (4.9 MB each, 1.5 GB in all) to the identity model, whose
        // Acks are as large; offered as fast as the proxy takes them.
        let data = Bytes::from(vec![0u8; 3 * 640 * 640 * 4]);
        let note = serde_json::json!({
            "model": "identity",
            "inputs": [{"name": "images", "shape": [1, 3, 640, 640], "dtype": "FP32", "from": "frame"}],
            "outputs": ["output0"],
            "binary": true,
        })
        .to_string();
        let packets = futures::stream::iter(0..300).map(move |i| {
            frame_packet(&i.to_string(), &note, Vec::new()).with_frame(data.clone())
        });
        let mut req = tonic::Request::new(packets);
        req.metadata_mut()
            .insert("x-domino-api-key", "test-key".parse().unwrap());
        let mut acks = c.chat(req).await.unwrap().into_inner();
        // Not one Ack read for 20 s; the proxy's resident memory sampled meanwhile.
        let mut peak = 0;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            peak = peak.max(proxy.rss_bytes().unwrap());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Then reading resumes: every Ack arrives, in order.
        let mut n = 0;
        while let Some(ack) = tokio::time::timeout(Duration::from_secs(120), acks.message())
            .await
            .expect("Acks stopped")
            .unwrap()
        {
            assert_eq!(ack.correlation_id, n.to_string());
            assert_eq!(ack.status_code, 0, "{}", ack.status_message);
            assert_eq!(ack.raw_outputs[0].data.len(), 3 * 640 * 640 * 4);
            n += 1;
        }
        (peak, n)
    });
    assert_eq!(acks, 300, "every Ack arrives");
    eprintln!(
        "proxy peak RSS while the client read nothing: {} MiB",
        rss >> 20
    );
    assert!(rss < 256 << 20, "proxy RSS peaked at {} MiB", rss >> 20);
}

/// A packet with its frame bytes set without copying them.
trait WithFrame {
    fn with_frame(self, data: Bytes) -> Self;
}

impl WithFrame for triton_proto::multimodal::DataPacket {
    fn with_frame(mut self, data: Bytes) -> Self {
        self.payload = Some(triton_proto::multimodal::data_packet::Payload::Frame(
            triton_proto::multimodal::Frame { data },
        ));
        self
    }
}

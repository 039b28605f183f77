//! triton-proxy end to end: real Triton, real proxy on loopback, real gRPC clients.

use std::time::Duration;

use gst_triton_tests::mock::{MockKserve, Script, box_for};
use gst_triton_tests::proxy::*;
use gst_triton_tests::triton::{Triton, free_port, repo_root, shared_url};
use gst_triton_tests::*;
use tonic::Code;
use triton_proto::multimodal::{DataPacket, ModelInfoRequest, Text, data_packet::Payload};

fn shapes(w: usize, h: usize, rects: &[Rect]) -> Vec<u8> {
    draw_tensor(w, h, rects)
}

fn nms_boxes(ack: &triton_proto::multimodal::Ack) -> Vec<Rect> {
    let (shape, data) = ack_output(ack, "output0");
    assert_eq!(shape.len(), 3);
    nms_rects(&f32s(&data))
}

#[tokio::test]
async fn base64_and_binary_outputs_carry_the_detections() {
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let mut chat = Chat::open_default(&proxy.url()).await;
    let rects = vec![
        Rect::new(50, 100, 200, 100, 0),
        Rect::new(400, 300, 60, 120, 2),
    ];
    for binary in [false, true] {
        let ack = chat
            .roundtrip(image_packet(
                "cam:1",
                &shapes_note("shapes_yolov8", 640, 640, binary),
                shapes(640, 640, &rects),
            ))
            .await;
        assert_eq!(ack.correlation_id, "cam:1");
        let msg: serde_json::Value = serde_json::from_str(&ack.message).unwrap();
        assert_eq!(msg["model"], "shapes_yolov8");
        assert_eq!(msg["version"], "1");
        assert_eq!(msg["outputs"]["output0"]["dtype"], "float32");
        assert_eq!(msg["outputs"]["output0"].get("b64").is_some(), !binary);
        assert_eq!(ack.raw_outputs.len(), usize::from(binary));
        let (shape, data) = ack_output(&ack, "output0");
        assert_eq!(shape, vec![1, 8, 8400]);
        assert_same_boxes(
            &decode_yolov8_simple(&f32s(&data), 4, 8400, 0.25),
            &rects,
            0.01,
        );
    }
    // Seed defaults: no note at all → TRITON_* defaults (model shapes_yolov8 here, images [1,3,640,640]).
    let ack = chat
        .roundtrip(image_packet("cam:2", "", shapes(640, 640, &rects)))
        .await;
    assert_eq!(ack.status_code, 0, "{}", ack.status_message);
    // Control JSON in the text payload (no note): read from text, bytes from... text carries no
    // tensor, so it must name a payload the packet lacks → clear error.
    let text = DataPacket {
        meta: None,
        payload: Some(Payload::Text(Text {
            text: shapes_note("shapes_nms", 8, 8, false),
        })),
    };
    let ack = chat.roundtrip(text).await;
    assert_eq!(ack.status_code, Code::InvalidArgument as i32);
    assert!(
        ack.status_message.contains("'text' payload"),
        "{}",
        ack.status_message
    );
}

#[tokio::test]
async fn every_bad_packet_gets_an_error_ack_and_the_stream_goes_on() {
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let mut chat = Chat::open_default(&proxy.url()).await;
    let good_note = shapes_note("shapes_nms", 32, 32, true);
    let good = || {
        image_packet(
            "good",
            &good_note,
            shapes(32, 32, &[Rect::new(4, 4, 10, 10, 1)]),
        )
    };
    let img = |n: usize| vec![0u8; n];
    let note = |v: serde_json::Value| v.to_string();
    let inp = |shape: serde_json::Value, dtype: &str, from: &str| serde_json::json!({"model": "shapes_nms", "inputs": [{"name": "images", "shape": shape, "dtype": dtype, "from": from}]});
    let cases: Vec<(&str, DataPacket, Code, &str)> = vec![
        (
            "bad json",
            image_packet("c", "{\"model\": ", img(12288)),
            Code::InvalidArgument,
            "meta.note: not valid control JSON",
        ),
        (
            "unknown field",
            image_packet("c", r#"{"modell":"x"}"#, img(12288)),
            Code::InvalidArgument,
            "unknown field `modell`",
        ),
        (
            "wrong dtype",
            image_packet(
                "c",
                &note(inp(serde_json::json!([1, 3, 32, 32]), "FP64", "image")),
                img(12288),
            ),
            Code::InvalidArgument,
            "dtype: 'FP64' is not supported",
        ),
        (
            "size mismatch",
            image_packet("c", &good_note, img(12287)),
            Code::InvalidArgument,
            "needs 12288 bytes",
        ),
        (
            "shape overflow",
            image_packet(
                "c",
                &note(inp(
                    serde_json::json!([1i64 << 40, 1i64 << 40, 16]),
                    "FP32",
                    "image",
                )),
                img(16),
            ),
            Code::InvalidArgument,
            "overflows",
        ),
        (
            "empty payload",
            image_packet("c", &good_note, vec![]),
            Code::InvalidArgument,
            "payload is empty",
        ),
        (
            "wrong from",
            frame_packet("c", &good_note, img(12288)),
            Code::InvalidArgument,
            "'image', but the packet carries a 'frame' payload",
        ),
        (
            "bad from",
            image_packet(
                "c",
                &note(inp(serde_json::json!([1, 3, 32, 32]), "FP32", "audio")),
                img(12288),
            ),
            Code::InvalidArgument,
            "expected frame, image or video",
        ),
        (
            "unknown model",
            image_packet(
                "c",
                &shapes_note("no_such_model", 32, 32, false),
                img(12288),
            ),
            Code::NotFound,
            "no_such_model",
        ),
        (
            "triton error",
            image_packet(
                "c",
                &note(inp(serde_json::json!([1, 4, 32, 24]), "FP32", "image")),
                img(12288),
            ),
            Code::InvalidArgument,
            "Triton:",
        ),
        (
            "triton timeout",
            image_packet(
                "c",
                &note(
                    serde_json::json!({"model": "shapes_nms", "inputs": [{"name":"images","shape":[1,3,32,32],"dtype":"FP32","from":"image"}], "timeout": 0.3, "parameters": {"delay_ms": 1500}}),
                ),
                shapes(32, 32, &[]),
            ),
            Code::DeadlineExceeded,
            "timeout",
        ),
    ];
    for (what, pkt, code, want) in cases {
        let ack = chat.roundtrip(pkt).await;
        assert_eq!(ack.correlation_id, "c", "{what}");
        assert_eq!(
            Code::from(ack.status_code),
            code,
            "{what}: {}",
            ack.status_message
        );
        assert!(
            ack.status_message.contains(want),
            "{what}: {}",
            ack.status_message
        );
        assert!(ack.message.is_empty(), "{what}");
        let ok = chat.roundtrip(good()).await;
        assert_eq!(ok.status_code, 0, "after {what}: {}", ok.status_message);
        assert_same_boxes(&nms_boxes(&ok), &[Rect::new(4, 4, 10, 10, 1)], 0.01);
    }
}

#[tokio::test]
async fn unreachable_triton_is_unavailable_per_packet() {
    let dead = format!("127.0.0.1:{}", free_port());
    let proxy = TestProxy::start(&dead, &[]).await.unwrap();
    let mut chat = Chat::open_default(&proxy.url()).await;
    for i in 0..3 {
        let ack = chat
            .roundtrip(image_packet(
                &format!("x{i}"),
                &shapes_note("shapes_nms", 8, 8, false),
                shapes(8, 8, &[]),
            ))
            .await;
        assert_eq!(
            Code::from(ack.status_code),
            Code::Unavailable,
            "{}",
            ack.status_message
        );
        assert!(
            ack.status_message.contains("unreachable"),
            "{}",
            ack.status_message
        );
        assert!(ack.status_message.contains(&dead), "{}", ack.status_message);
    }
}

#[tokio::test]
async fn authentication() {
    let proxy = TestProxy::start(
        &shared_url(),
        &[
            "--grpc-expect-api-key",
            "sekret-key",
            "--grpc-expect-bearer",
            "tok-123",
        ],
    )
    .await
    .unwrap();
    let url = proxy.url();
    for (header, admitted) in [
        (None, false),
        (Some(("x-domino-api-key", "wrong")), false),
        (Some(("x-domino-api-key", "tok-123")), false),
        (Some(("authorization", "Bearer sekret-key")), false),
        (Some(("authorization", "Basic tok-123")), false),
        (Some(("x-domino-api-key", "sekret-key")), true),
        (Some(("authorization", "Bearer tok-123")), true),
        (Some(("authorization", "bearer tok-123")), true),
        (Some(("authorization", "  Bearer    tok-123  ")), true),
    ] {
        match Chat::open(&url, header).await {
            Ok(mut chat) => {
                assert!(admitted, "{header:?} must be refused");
                let ack = chat
                    .roundtrip(image_packet(
                        "a",
                        &shapes_note("shapes_nms", 8, 8, false),
                        shapes(8, 8, &[]),
                    ))
                    .await;
                assert_eq!(ack.status_code, 0, "{}", ack.status_message);
            }
            Err(status) => {
                assert!(!admitted, "{header:?} must be admitted: {status:?}");
                assert_eq!(status.code(), Code::Unauthenticated);
                assert!(
                    status.message().contains("x-domino-api-key")
                        && status.message().contains("authorization: Bearer")
                );
                assert!(
                    !status.message().contains("sekret")
                        && !status.message().contains("tok-123")
                        && !status.message().contains("wrong")
                );
            }
        }
    }
    let m = proxy.metrics().await;
    assert!(m.contains("proxy_auth_failures_total 5"), "{m}");
    assert!(!m.contains("sekret") && !m.contains("tok-123"));
}

/// A keys file's allow-list, then a reload with streams open: a key that stays keeps its stream
/// and gets its new model list from the next packet; a removed key's stream ends with
/// UNAUTHENTICATED "key revoked" within the reload interval (the file is looked at every
/// second), after the Acks it was owed; a stream of the fixed key (`GRPC_EXPECT_API_KEY`) is
/// untouched; a new stream with the removed key is refused.
#[tokio::test]
async fn keys_file_allow_list_and_reload_with_streams_open() {
    let path = std::env::temp_dir().join(format!("proxy-keys-{}", std::process::id()));
    std::fs::write(&path, "nms-only shapes_nms\nall-models\n").unwrap();
    let proxy = TestProxy::start(
        &shared_url(),
        &[
            "--proxy-keys-file",
            path.to_str().unwrap(),
            "--grpc-expect-api-key",
            "test-key",
        ],
    )
    .await
    .unwrap();
    let url = proxy.url();
    let packet = |id: &str, model: &str| {
        image_packet(id, &shapes_note(model, 8, 8, false), shapes(8, 8, &[]))
    };
    let mut limited = Chat::open(&url, Some(("x-domino-api-key", "nms-only")))
        .await
        .unwrap();
    let ok = limited.roundtrip(packet("1", "shapes_nms")).await;
    assert_eq!(ok.status_code, 0, "{}", ok.status_message);
    let denied = limited.roundtrip(packet("2", "shapes_yolov8")).await;
    assert_eq!(Code::from(denied.status_code), Code::PermissionDenied);
    assert!(
        denied
            .status_message
            .contains("'shapes_yolov8' is not allowed")
            && denied.status_message.contains("shapes_nms")
    );
    assert!(
        !denied.status_message.contains("nms-only"),
        "secret echoed: {}",
        denied.status_message
    );
    let mut doomed = Chat::open(&url, Some(("x-domino-api-key", "all-models")))
        .await
        .unwrap();
    let ok = doomed.roundtrip(packet("d1", "shapes_nms")).await;
    assert_eq!(ok.status_code, 0, "{}", ok.status_message);
    let mut fixed = Chat::open_default(&url).await;

    // Rotate: all-models goes away, nms-only may now use shapes_yolov8 too, a new key arrives.
    std::fs::write(&path, "rotated-key\nnms-only shapes_nms,shapes_yolov8\n").unwrap();
    let changed = std::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), doomed.rx.message())
        .await
        .expect("the revoked key's stream did not end within 10 s");
    let status = end.expect_err("the revoked stream ends with a status");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("key revoked") && status.message().contains("PROXY_KEYS_FILE"),
        "{status:?}"
    );
    assert!(!status.message().contains("all-models"), "{status:?}");
    eprintln!(
        "revoked stream ended {:.2?} after the file changed",
        changed.elapsed()
    );
    assert_eq!(
        Chat::open(&url, Some(("x-domino-api-key", "all-models")))
            .await
            .err()
            .unwrap()
            .code(),
        Code::Unauthenticated
    );
    assert!(
        Chat::open(&url, Some(("x-domino-api-key", "rotated-key")))
            .await
            .is_ok()
    );
    // The key that stayed: its stream goes on, under its new list.
    let now_allowed = limited.roundtrip(packet("3", "shapes_yolov8")).await;
    assert_eq!(
        now_allowed.status_code, 0,
        "the new model list not applied: {}",
        now_allowed.status_message
    );
    let still = fixed.roundtrip(packet("f1", "shapes_nms")).await;
    assert_eq!(still.status_code, 0, "{}", still.status_message);
    let m = proxy.metrics().await;
    assert!(
        m.contains("proxy_streams_ended_total{reason=\"key_revoked\"} 1"),
        "{m}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn refuses_to_start_without_credentials() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(TestProxy::start(
            &shared_url(),
            &["--proxy-allow-unauthenticated=false"],
        ))
        .err()
        .expect("must refuse");
    assert!(
        format!("{err:#}").contains("no credentials configured"),
        "{err:#}"
    );
    // Explicitly allowed: starts and admits anyone.
    rt.block_on(async {
        let p = TestProxy::start(&shared_url(), &["--proxy-allow-unauthenticated"])
            .await
            .unwrap();
        let mut chat = Chat::open(&p.url(), None).await.unwrap();
        let ack = chat
            .roundtrip(image_packet(
                "u",
                &shapes_note("shapes_nms", 8, 8, false),
                shapes(8, 8, &[]),
            ))
            .await;
        assert_eq!(ack.status_code, 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_streams_of_200_packets_each_in_order() {
    // Order and answers under load; the pipelining itself is measured in
    // `pipelining_keeps_order_when_answers_take_different_times` and
    // `the_proxy_keeps_exactly_max_inflight_requests_outstanding`.
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let url = proxy.url();
    let note = shapes_note("shapes_nms", 64, 64, true);
    let mut tasks = Vec::new();
    for s in 0..8u32 {
        let url = url.clone();
        let note = note.clone();
        tasks.push(tokio::spawn(async move {
            let mut chat = Chat::open_default(&url).await;
            let expected: Vec<Rect> = (0..200u32)
                .map(|i| Rect::new(i % 50, (i / 50) * 10 + s, 8, 6, ((i + s) % 4) as usize))
                .collect();
            let tx = chat.tx.clone();
            let sent = expected.clone();
            let note2 = note.clone();
            let sender = tokio::spawn(async move {
                for (i, r) in sent.iter().enumerate() {
                    tx.send(image_packet(
                        &format!("s{s}:{i}"),
                        &note2,
                        shapes(64, 64, &[*r]),
                    ))
                    .await
                    .unwrap();
                }
            });
            for (i, r) in expected.iter().enumerate() {
                let ack = chat.rx.message().await.unwrap().expect("ack");
                assert_eq!(ack.correlation_id, format!("s{s}:{i}"), "out of order");
                assert_same_boxes(&nms_boxes(&ack), &[*r], 0.01);
            }
            sender.await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = proxy.metrics().await;
    assert!(
        m.contains("proxy_requests_total{model=\"shapes_nms\",status=\"OK\"} 1600"),
        "{m}"
    );
}

#[tokio::test]
async fn pipelining_keeps_order_when_answers_take_different_times() {
    // shapes_jitter runs 3 instances, so requests the proxy sends together run together.
    let proxy = TestProxy::start(&shared_url(), &["--proxy-max-inflight", "4"])
        .await
        .unwrap();
    let mut chat = Chat::open_default(&proxy.url()).await;
    let started = std::time::Instant::now();
    for i in 0..12u32 {
        // Later packets answer sooner: Acks must still come in packet order.
        let delay = [150, 120, 90, 60][i as usize % 4];
        let note = serde_json::json!({"model": "shapes_jitter", "inputs": [{"name":"images","shape":[1,3,32,32],"dtype":"FP32","from":"image"}], "parameters": {"delay_ms": delay}, "binary": true}).to_string();
        chat.tx
            .send(image_packet(
                &i.to_string(),
                &note,
                shapes(32, 32, &[Rect::new(i, 2, 5, 5, 0)]),
            ))
            .await
            .unwrap();
    }
    for i in 0..12u32 {
        let ack = chat.rx.message().await.unwrap().unwrap();
        assert_eq!(ack.correlation_id, i.to_string());
        assert_same_boxes(&nms_boxes(&ack), &[Rect::new(i, 2, 5, 5, 0)], 0.01);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Requests overlapped: one at a time, their Triton latencies could not add up to more than
    // the run took.
    let m = proxy.metrics().await;
    let sum: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("proxy_triton_latency_seconds_sum "))
        .and_then(|v| v.parse().ok())
        .expect("latency sum in the metrics");
    eprintln!("Triton latencies add up to {sum:.3} s in a {elapsed:.3} s run");
    assert!(
        sum > 2.0 * elapsed,
        "no overlap: Triton latencies add up to {sum:.3} s in a {elapsed:.3} s run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_keeps_exactly_max_inflight_requests_outstanding() {
    // The KServe mock holds every answer: a proxy that sent one request at a time would show 1
    // outstanding, one without a limit 10.
    let mock = std::sync::Arc::new(MockKserve::start(Script::default()));
    mock.set_gate(false);
    let proxy = TestProxy::start(&mock.url(), &["--proxy-max-inflight", "4"])
        .await
        .unwrap();
    let mut chat = Chat::open_default(&proxy.url()).await;
    let note = shapes_note("mock", 8, 8, true);
    for i in 0..10u32 {
        chat.tx
            .send(image_packet(&format!("c:{i}"), &note, shapes(8, 8, &[])))
            .await
            .unwrap();
    }
    let m = mock.clone();
    let held = tokio::task::spawn_blocking(move || {
        assert!(
            m.wait_received(4, Duration::from_secs(20)),
            "fewer than 4 sent"
        );
        std::thread::sleep(Duration::from_millis(400));
        m.received()
    })
    .await
    .unwrap();
    assert_eq!(
        held, 4,
        "requests beyond PROXY_MAX_INFLIGHT while none was answered"
    );
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("proxy_inflight_requests 4"), "{metrics}");
    mock.set_gate(true);
    for i in 0..10u64 {
        let ack = chat.rx.message().await.unwrap().unwrap();
        assert_eq!(ack.correlation_id, format!("c:{i}"));
        assert_eq!(ack.status_code, 0, "{}", ack.status_message);
        let row = gst_triton_tests::f32s(&ack.raw_outputs[0].data);
        assert_eq!(
            row[..4],
            box_for(i),
            "packet {i} got another packet's answer"
        );
    }
    assert_eq!(mock.peak_outstanding(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triton_restart_mid_stream() {
    let mut triton = Triton::start().unwrap();
    let proxy = TestProxy::start(
        &format!("127.0.0.1:{}", triton.grpc_port),
        &["--triton-timeout-secs", "5"],
    )
    .await
    .unwrap();
    let mut chat = Chat::open_default(&proxy.url()).await;
    let note = shapes_note("shapes_nms", 16, 16, false);
    let pkt = |i: u32| {
        image_packet(
            &i.to_string(),
            &note,
            shapes(16, 16, &[Rect::new(2, 2, 4, 4, 2)]),
        )
    };
    assert_eq!(chat.roundtrip(pkt(0)).await.status_code, 0);
    triton.kill();
    let ack = chat.roundtrip(pkt(1)).await;
    assert_eq!(
        Code::from(ack.status_code),
        Code::Unavailable,
        "{}",
        ack.status_message
    );
    tokio::task::spawn_blocking(move || {
        triton.restart().unwrap();
        triton
    })
    .await
    .map(|t| {
        // Keep it alive until the end of the test.
        std::mem::forget(t);
    })
    .unwrap();
    let mut i = 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ack = chat.roundtrip(pkt(i)).await;
        if ack.status_code == 0 {
            assert_same_boxes(&nms_boxes(&ack), &[Rect::new(2, 2, 4, 4, 2)], 0.01);
            break;
        }
        assert_eq!(
            Code::from(ack.status_code),
            Code::Unavailable,
            "{}",
            ack.status_message
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery after restart"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_mib_passes_seventy_is_refused_clearly() {
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let url = proxy.url();
    // 60 MiB: [1,3,2048,2560] FP32 through the identity model, binary outputs.
    let n = 3 * 2048 * 2560;
    let data: Vec<u8> = (0..n as u32)
        .flat_map(|i| ((i % 1000) as f32).to_le_bytes())
        .collect();
    assert_eq!(data.len(), 60 << 20);
    let note = serde_json::json!({"model":"identity","inputs":[{"name":"images","shape":[1,3,2048,2560],"dtype":"FP32","from":"image"}],"binary":true}).to_string();
    let mut chat = Chat::open_default(&url).await;
    let ack = chat
        .roundtrip(image_packet("big", &note, data.clone()))
        .await;
    let (shape, out) = ack_output(&ack, "output0");
    assert_eq!(shape, vec![1, 3, 2048, 2560]);
    assert!(out == data, "60 MiB came back different");

    // 70 MiB: the client may send it (its own limit raised), the proxy refuses it clearly.
    let big = vec![0u8; 70 << 20];
    let ch = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = triton_proto::multimodal::multi_modal_client::MultiModalClient::new(ch)
        .max_encoding_message_size(128 << 20)
        .max_decoding_message_size(128 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("x-domino-api-key", "test-key".parse().unwrap());
    let mut acks = c.chat(req).await.unwrap().into_inner();
    tx.send(image_packet("huge", &note, big)).await.unwrap();
    let err = acks
        .message()
        .await
        .expect_err("oversized packet must fail the stream with a status");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("PROXY_MAX_MESSAGE_BYTES"),
        "{}",
        err.message()
    );
    // A new stream works.
    let mut chat = Chat::open_default(&url).await;
    let ok = chat
        .roundtrip(image_packet(
            "after",
            &shapes_note("shapes_nms", 8, 8, false),
            shapes(8, 8, &[]),
        ))
        .await;
    assert_eq!(ok.status_code, 0, "{}", ok.status_message);
}

#[tokio::test]
async fn model_info_through_the_proxy() {
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let mut c = client(&proxy.url()).await;
    let mut req = tonic::Request::new(ModelInfoRequest {
        model: "shapes_effnms".into(),
        version: String::new(),
    });
    req.metadata_mut()
        .insert("x-domino-api-key", "test-key".parse().unwrap());
    let info = c.model_info(req).await.unwrap().into_inner();
    let outs: Vec<_> = info.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outs, ["num_dets", "boxes", "scores", "classes"]);
    // A batching model (max_batch_size 8): Triton prepends the batch dimension as -1.
    assert_eq!(info.inputs[0].shape, vec![-1, 3, -1, -1]);
    assert_eq!(info.max_batch_size, 8);
    assert_eq!(info.parameters["class_names"], CLASS_NAMES.join(","));
    let err = c
        .model_info(ModelInfoRequest {
            model: "shapes_effnms".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn health_follows_triton_and_shutdown_drains() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let ch = tonic::transport::Endpoint::from_shared(proxy.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = HealthClient::new(ch);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = h
            .check(HealthCheckRequest {
                service: "multimodal.MultiModal".into(),
            })
            .await;
        if matches!(&r, Ok(r) if r.get_ref().status == ServingStatus::Serving as i32) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never SERVING: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = TestProxy::start(&format!("127.0.0.1:{}", free_port()), &[])
        .await
        .unwrap();
    let ch = tonic::transport::Endpoint::from_shared(dead.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = HealthClient::new(ch);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for service in ["", "multimodal.MultiModal"] {
        loop {
            let r = h
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await;
            if matches!(&r, Ok(r) if r.get_ref().status == ServingStatus::NotServing as i32) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "'{service}' never NOT_SERVING without Triton: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Drain: packets already sent are answered, then the stream ends cleanly; meanwhile a new
    // connection is refused at once (not accepted and left unserved until the exit).
    let mut chat = Chat::open_default(&proxy.url()).await;
    let note = serde_json::json!({"model": "shapes_nms", "inputs": [{"name":"images","shape":[1,3,8,8],"dtype":"FP32","from":"image"}], "parameters": {"delay_ms": 1500}}).to_string();
    for i in 0..3 {
        chat.tx
            .send(image_packet(&i.to_string(), &note, shapes(8, 8, &[])))
            .await
            .unwrap();
    }
    // All three are with Triton (each sleeps 1500 ms there) before the shutdown starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !proxy.metrics().await.contains("proxy_inflight_requests 3") {
        assert!(
            std::time::Instant::now() < deadline,
            "packets never reached Triton"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = proxy.addr;
    let server = tokio::spawn(proxy.shutdown());
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "a new connection during the drain: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!server.is_finished(), "still draining when refused");
    let mut answered = 0;
    while let Some(ack) = chat.rx.message().await.expect("clean end, not an error") {
        assert_eq!(ack.status_code, 0, "{}", ack.status_message);
        answered += 1;
    }
    assert_eq!(answered, 3);
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_generated_from_our_proto() {
    let proxy = TestProxy::start(&shared_url(), &[]).await.unwrap();
    let root = repo_root();
    let out = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/python/seed_client.py"))
        .env("TRITON_URL", shared_url().trim_start_matches("http://"))
        .env("PROXY_ADDR", proxy.addr.to_string())
        .env("DOMINO_API_KEY", "test-key")
        .env("PROTO_DIR", root.join("proto/proto"))
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("same as Triton direct: output0 (1, 8, 8400) float32"),
        "{text}"
    );
}

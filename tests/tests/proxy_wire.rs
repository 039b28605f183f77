//! Bytes that are not what the proxy expects, over real sockets: random bytes, HTTP/1.1, a TLS
//! ClientHello on the plaintext port, an HTTP/2 preface followed by malformed frames, a gRPC
//! frame that is not a `DataPacket`, a declared length of 1 GiB, and arbitrary packets and
//! metadata (a property test). Each gets an error or a closed connection — never a panic — and a
//! good client is served right after.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gst_triton_tests::proxy::{Chat, TestProxy, image_packet, metric, shapes_note};
use gst_triton_tests::triton::shared_url;
use gst_triton_tests::{Rect, draw_tensor};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use triton_proto::multimodal::data_packet::Payload;
use triton_proto::multimodal::{DataPacket, Frame, Image, Meta, Text, Video};

/// A good client's round trip: the proxy still serves.
async fn still_serves(p: &TestProxy, what: &str) {
    assert!(
        !p.task.as_ref().unwrap().is_finished(),
        "the proxy stopped after {what}"
    );
    let mut c = Chat::open_default(&p.url()).await;
    let ack = c
        .roundtrip(image_packet(
            "good",
            &shapes_note("shapes_nms", 16, 16, true),
            draw_tensor(16, 16, &[Rect::new(2, 2, 8, 8, 1)]),
        ))
        .await;
    assert_eq!(ack.status_code, 0, "after {what}: {}", ack.status_message);
}

/// Sends `bytes`, then reads until the proxy closes; returns what it answered.
async fn send_raw(addr: SocketAddr, bytes: &[u8], what: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The proxy may close before it has read everything: a failed write is an answer too.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
            Err(_) => panic!("{what}: the connection stayed open"),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The frame types (HTTP/2) in a server's answer after its preface-less byte stream.
fn frame_types(mut b: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while b.len() >= 9 {
        let len = ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize;
        types.push(b[3]);
        b = &b[(9 + len).min(b.len())..];
    }
    types
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_grpc_get_a_closed_connection_and_nothing_breaks() {
    let p = TestProxy::start(&shared_url(), &[]).await.unwrap();
    // Random bytes, several seeds.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for seed in 0..12 {
        let junk: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        send_raw(p.addr, &junk, &format!("random bytes {seed}")).await;
    }
    still_serves(&p, "random bytes").await;

    // HTTP/1.1: a readable answer.
    let answer = send_raw(
        p.addr,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n",
        "HTTP/1.1",
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 426") && text.contains("gRPC over HTTP/2"),
        "{text}"
    );
    still_serves(&p, "an HTTP/1.1 request").await;

    // A real TLS ClientHello (an https:// client) on the plaintext port.
    let tls_client = triton_endpoint::Target::new(
        format!("https://{}", p.addr),
        triton_endpoint::Names::ELEMENT,
    );
    let err = match tls_client.connect().await {
        Err(e) => e.to_string(),
        Ok(ch) => {
            let mut c = triton_proto::multimodal::multi_modal_client::MultiModalClient::new(ch);
            let r = c
                .model_info(triton_proto::multimodal::ModelInfoRequest::default())
                .await;
            format!("{:?}", r.expect_err("TLS to a plaintext port"))
        }
    };
    assert!(
        err.contains("it may speak plaintext") && err.contains("http:// address"),
        "{err}"
    );
    still_serves(&p, "a TLS ClientHello").await;

    // HTTP/2 preface, then malformed frames: the server answers GOAWAY and closes.
    let malformed: [(&str, Vec<u8>); 3] = [
        // SETTINGS whose length is not a multiple of 6 (FRAME_SIZE_ERROR).
        (
            "short SETTINGS",
            vec![0, 0, 5, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5],
        ),
        // HEADERS on stream 0 (PROTOCOL_ERROR).
        ("HEADERS on stream 0", vec![0, 0, 1, 1, 4, 0, 0, 0, 0, 0x82]),
        // A frame claiming 16 MiB, beyond the 16 KiB default frame size.
        ("oversized frame", vec![0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]),
    ];
    for (what, frame) in malformed {
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&frame);
        let answer = send_raw(p.addr, &bytes, what).await;
        assert!(
            frame_types(&answer).contains(&7),
            "{what}: no GOAWAY in {:?}",
            frame_types(&answer)
        );
        still_serves(&p, what).await;
    }
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "proxy_connections_refused_total{reason=\"http1\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "proxy_connections_refused_total{reason=\"tls_on_plaintext_port\"}"
        ),
        1.0,
        "{m}"
    );
}

/// One Chat call over a raw HTTP/2 connection with `body` as its request body.
async fn raw_chat(addr: SocketAddr, body: Bytes) -> Result<(i32, String), String> {
    let (code, msg, _) = gst_triton_tests::h2chat::raw_chat(addr, body, 16 * 1024).await?;
    Ok((code, msg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_frames_that_are_not_data_packets_end_the_stream_with_a_status() {
    let p = TestProxy::start(&shared_url(), &[]).await.unwrap();
    // A well-formed gRPC frame whose bytes are no protobuf message (wire type 7 is invalid).
    let mut junk = vec![0u8, 0, 0, 0, 64];
    junk.extend(std::iter::repeat_n(0xffu8, 64));
    let (code, msg) = raw_chat(p.addr, junk.into()).await.expect("a status");
    assert_ne!(code, 0, "{msg}");
    still_serves(&p, "a frame that is not a DataPacket").await;

    // A frame that declares 1 GiB: refused from its header, without reading (or allocating) it.
    let mut huge = vec![0u8, 0x40, 0, 0, 0];
    huge.extend(std::iter::repeat_n(0u8, 1024));
    let (code, msg) = raw_chat(p.addr, huge.into()).await.expect("a status");
    assert_eq!(code, tonic::Code::ResourceExhausted as i32, "{msg}");
    assert!(msg.contains("PROXY_MAX_MESSAGE_BYTES"), "{msg}");
    still_serves(&p, "a 1 GiB declared length").await;

    // A compressed-flag frame without negotiated compression.
    let (code, msg) = raw_chat(p.addr, vec![1u8, 0, 0, 0, 1, 0].into())
        .await
        .expect("a status");
    assert_ne!(code, 0, "{msg}");
    still_serves(&p, "a compressed frame").await;
}

fn arb_payload() -> impl Strategy<Value = Option<Payload>> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..4096).prop_map(Bytes::from);
    prop_oneof![
        Just(None),
        bytes().prop_map(|data| Some(Payload::Frame(Frame { data }))),
        bytes().prop_map(|data| Some(Payload::Image(Image { data }))),
        bytes().prop_map(|data| Some(Payload::Video(Video { data }))),
        ".{0,200}".prop_map(|text| Some(Payload::Text(Text { text }))),
        // A correctly sized image for a real model, so that some packets reach Triton.
        Just(Some(Payload::Image(Image {
            data: draw_tensor(8, 8, &[]).into()
        }))),
    ]
}

fn arb_note() -> impl Strategy<Value = String> {
    let dtype = prop_oneof![
        Just("FP32"),
        Just("UINT8"),
        Just("FP16"),
        Just("BOOL"),
        Just("NOPE")
    ];
    let from = prop_oneof![Just("frame"), Just("image"), Just("video"), Just("x")];
    let dims = prop::collection::vec(-3i64..2000, 0..6);
    let model = prop_oneof![
        Just("shapes_nms".to_string()),
        Just("identity".to_string()),
        "[a-z_]{0,12}"
    ];
    let json = (model, dims, dtype, from, any::<bool>(), -5.0f64..60.0).prop_map(
        |(model, shape, dtype, from, binary, timeout)| {
            serde_json::json!({
                "model": model,
                "inputs": [{"name": "images", "shape": shape, "dtype": dtype, "from": from}],
                "outputs": ["output0"],
                "binary": binary,
                "timeout": timeout,
            })
            .to_string()
        },
    );
    prop_oneof![
        Just(String::new()),
        Just(shapes_note("shapes_nms", 8, 8, true)),
        ".{0,300}",
        json,
    ]
}

fn arb_packet() -> impl Strategy<Value = DataPacket> {
    (
        prop::option::of(("[ -~]{0,40}", arb_note(), ".{0,20}", any::<i64>())),
        arb_payload(),
    )
        .prop_map(|(meta, payload)| DataPacket {
            meta: meta.map(|(correlation_id, note, stream_id, capture_ts_ns)| Meta {
                correlation_id,
                note,
                stream_id,
                capture_ts_ns,
            }),
            payload,
        })
}

#[test]
fn arbitrary_packets_and_metadata_get_an_ack_or_a_status_each() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let p = rt.block_on(TestProxy::start(&shared_url(), &[])).unwrap();
    let url = p.url();
    let client = rt.block_on(gst_triton_tests::proxy::client(&url));
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(packets in prop::collection::vec(arb_packet(), 1..4),
                        key in prop_oneof![Just("test-key".to_string()), "[ -~]{0,30}"],
                        extra in prop::option::of(("[a-z][a-z0-9-]{0,15}", "[ -~]{0,40}")))| {
        rt.block_on(async {
            let mut c = client.clone();
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            if let Ok(v) = key.parse() {
                req.metadata_mut().insert("x-domino-api-key", v);
            }
            if let Some((k, v)) = &extra
                && let (Ok(k), Ok(v)) = (
                    k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                    v.parse(),
                )
            {
                req.metadata_mut().insert(k, v);
            }
            let mut acks = match c.chat(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    assert_ne!(key, "test-key", "the right key was refused: {s:?}");
                    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
                    return;
                }
            };
            for pkt in &packets {
                tx.send(pkt.clone()).await.unwrap();
            }
            drop(tx);
            let mut n = 0;
            loop {
                match tokio::time::timeout(Duration::from_secs(60), acks.message()).await {
                    Err(_) => panic!("no Ack or status within 60 s"),
                    Ok(Ok(Some(ack))) => {
                        let want = packets[n]
                            .meta
                            .as_ref()
                            .map(|m| m.correlation_id.as_str())
                            .unwrap_or("");
                        assert_eq!(ack.correlation_id, want, "Ack {n} out of order");
                        if ack.status_code != 0 {
                            assert!(!ack.status_message.is_empty(), "an error Ack without a message");
                        }
                        n += 1;
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(s)) => panic!("stream failed: {s:?}"),
                }
            }
            assert_eq!(n, packets.len(), "an Ack for each packet");
        });
    });
    rt.block_on(still_serves(&p, "arbitrary packets"));
}

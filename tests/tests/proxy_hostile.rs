//! Authenticated clients that try to take the proxy over (issue 42), against a real proxy
//! process over real sockets: each hostile stream gets an answer or a refusal, and a bystander
//! stream on its own connection keeps being served meanwhile.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gst_triton_tests::h2chat::raw_chat;
use gst_triton_tests::proxy::{
    Chat, ProxyProcess, TestProxy, http_get, image_packet, metric, rss_of, shapes_note,
};
use gst_triton_tests::triton::shared_url;
use gst_triton_tests::{Rect, draw_tensor};

/// A gRPC message (length prefix included) of `n` copies of one unknown protobuf field.
fn message_of(field: &[u8], n: usize) -> Bytes {
    let mut b = vec![0u8];
    b.extend_from_slice(&((field.len() * n) as u32).to_be_bytes());
    for _ in 0..n {
        b.extend_from_slice(field);
    }
    b.into()
}

/// `n` fields `15: varint 1`, 2 bytes each: the most fields a message of its size can hold.
fn tiny_fields(n: usize) -> Bytes {
    message_of(&[15 << 3, 1], n)
}

/// `n` fields `15: bytes` of 4 KiB each (an unknown field the proxy keeps and passes over).
fn kib_fields(n: usize) -> Bytes {
    let mut f = vec![(15 << 3) | 2, 0x80, 0x20];
    f.resize(3 + 4096, 7);
    message_of(&f, n)
}

/// Runs `hostile` while a bystander on its own connection sends a small image packet after
/// another; returns the hostile call's result and the bystander's slowest round trip.
async fn with_bystander<T>(
    url: &str,
    hostile: impl std::future::Future<Output = T> + Send + 'static,
) -> (T, Duration, usize)
where
    T: Send + 'static,
{
    let mut bystander = Chat::open_default(url).await;
    let note = shapes_note("shapes_nms", 16, 16, true);
    let packet = || {
        image_packet(
            "bystander",
            &note,
            draw_tensor(16, 16, &[Rect::new(2, 2, 8, 8, 1)]),
        )
    };
    // Its pace alone first, so that the comparison below is against this machine.
    let ack = bystander.roundtrip(packet()).await;
    assert_eq!(ack.status_code, 0, "{}", ack.status_message);
    let task = tokio::spawn(hostile);
    let (mut slowest, mut served) = (Duration::ZERO, 0);
    while !task.is_finished() {
        let t = Instant::now();
        let ack = bystander.roundtrip(packet()).await;
        assert_eq!(ack.status_code, 0, "bystander: {}", ack.status_message);
        slowest = slowest.max(t.elapsed());
        served += 1;
    }
    (task.await.unwrap(), slowest, served)
}

/// What a hostile packet got: answered (an Ack, then the stream's status), refused by the
/// proxy with a status naming `refusal`, or refused by HTTP/2's own guard against tiny DATA
/// frames (a GOAWAY ENHANCE_YOUR_CALM, "too_many_data_frames", which the sender mostly sees as
/// a closed connection).
#[derive(Debug, PartialEq)]
enum Outcome {
    Answered,
    Refused,
    ConnectionClosed,
}

fn outcome(answer: Result<(i32, String, usize), String>, refusal: &str) -> Outcome {
    match answer {
        Ok((0, _, acked)) if acked > 0 => Outcome::Answered,
        Ok((code, msg, _)) => {
            assert_eq!(code, tonic::Code::InvalidArgument as i32, "{msg}");
            assert!(msg.contains(refusal), "{msg}");
            Outcome::Refused
        }
        Err(e) => {
            assert!(
                ["too_many_data_frames", "broken pipe", "connection reset"]
                    .iter()
                    .any(|w| e.contains(w)),
                "{e}"
            );
            Outcome::ConnectionClosed
        }
    }
}

/// Three packets a client can send, each while a bystander on another connection is served:
/// - 16 MiB of 2-byte fields (8 million) in 16 KiB DATA frames, as any gRPC client sends it:
///   refused after 4096 fields, naming the limit;
/// - 16 MiB of 4 KiB unknown fields (4096) in 256-byte frames (the smallest HTTP/2 lets through
///   without limit, 65536 of them): answered;
/// - 1 MiB of 2-byte fields in 1-byte frames: refused, by HTTP/2's guard or by the proxy.
///
/// The scan of a packet used to re-walk every frame received for every byte it read: 8 MiB of
/// tiny fields in 16 KiB frames took 14-16 s and stalled everyone else, and these would have
/// taken minutes. None of the bystander's round trips may come near that stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packets_of_many_fields_in_small_frames_are_answered_or_refused_while_others_are_served() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let cases = [
        (
            "8M tiny fields",
            tiny_fields(8 << 20),
            16 << 10,
            Outcome::Refused,
        ),
        (
            "4096 fields of 4 KiB",
            kib_fields(4096),
            256,
            Outcome::Answered,
        ),
        (
            "512K tiny fields",
            tiny_fields(512 << 10),
            1,
            Outcome::ConnectionClosed,
        ),
    ];
    for (what, body, frame, expected) in cases {
        let addr = format!("127.0.0.1:{}", proxy.port).parse().unwrap();
        let len = body.len();
        let started = Instant::now();
        let ((answer, took), slowest, served) = with_bystander(&proxy.url(), async move {
            let answer =
                tokio::time::timeout(Duration::from_secs(300), raw_chat(addr, body, frame)).await;
            (answer, started.elapsed())
        })
        .await;
        eprintln!(
            "{what} ({len} bytes) in {frame}-byte frames: {answer:?} after {took:.2?}; \
             bystander served {served} times meanwhile, slowest {slowest:.2?}"
        );
        let answer = answer.unwrap_or_else(|_| panic!("{what}: no answer within 300 s"));
        let got = outcome(answer, "more than 4096 protobuf fields");
        // 1-byte frames: HTTP/2's guard closes the connection first, unless the proxy took the
        // frames as fast as they came, read 4096 fields and refused the packet itself.
        if !(expected == Outcome::ConnectionClosed && got == Outcome::Refused) {
            assert_eq!(got, expected, "{what}; proxy log: {}", proxy.log_text());
        }
        assert!(
            slowest < Duration::from_secs(5),
            "{what}: the bystander waited {slowest:?} for one round trip"
        );
    }
    assert!(proxy.log_text().lines().all(|l| !l.contains("panicked")));
}

/// The metrics show upstream addresses, model names and auth-failure counts: their listener binds
/// loopback unless `PROXY_METRICS_HOST` says otherwise, even when the gRPC port listens on every
/// address; with `PROXY_METRICS_BEARER` set, `/metrics` answers 401 without the token and
/// `/healthz` (SERVING or NOT_SERVING, nothing else) stays open for probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_on_loopback_by_default_and_a_bearer_guards_them() {
    let config = triton_proxy::Config::from_args([
        "triton-proxy",
        "--triton-url",
        &shared_url(),
        "--proxy-host",
        "0.0.0.0",
        "--proxy-port",
        "0",
        "--proxy-metrics-port",
        "0",
        "--grpc-expect-api-key",
        "k",
    ])
    .unwrap();
    let exposed = triton_proxy::Proxy::bind(config).await.unwrap();
    assert!(exposed.local_addr().ip().is_unspecified());
    assert_eq!(
        exposed.metrics_addr().unwrap().ip(),
        std::net::Ipv4Addr::LOCALHOST
    );
    drop(exposed);

    let p = TestProxy::start(&shared_url(), &["--proxy-metrics-bearer", "s3cret-token"])
        .await
        .unwrap();
    let at = p.metrics_addr.unwrap();
    let refused = http_get(at, "/metrics", "").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused.contains("PROXY_METRICS_BEARER") && !refused.contains("proxy_"),
        "{refused}"
    );
    let wrong = http_get(at, "/metrics", "authorization: Bearer s3cret\r\n").await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let ok = http_get(at, "/metrics", "authorization: Bearer s3cret-token\r\n").await;
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("proxy_auth_failures_total"),
        "{ok}"
    );
    assert!(!ok.contains("s3cret"), "the token is echoed: {ok}");
    let health = http_get(at, "/healthz", "").await;
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.1 503"),
        "{health}"
    );
}

/// Triton request parameters are per key: none by default (`sequence_id` or `priority` from one
/// tenant would jump the queue or disturb another's stateful model), those a key's `params=`
/// names otherwise. A refused packet gets PERMISSION_DENIED naming the parameter and the setting
/// that allows it, and the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_parameters_are_refused_unless_the_key_may_set_them() {
    let path = std::env::temp_dir().join(format!("proxy-params-{}", std::process::id()));
    std::fs::write(&path, "plain\ntuned params=delay_ms\n").unwrap();
    let p = TestProxy::start(
        &shared_url(),
        &["--proxy-keys-file", path.to_str().unwrap()],
    )
    .await
    .unwrap();
    let packet = |params: serde_json::Value| {
        let mut note: serde_json::Value =
            serde_json::from_str(&shapes_note("shapes_nms", 16, 16, true)).unwrap();
        note["parameters"] = params;
        image_packet("p", &note.to_string(), draw_tensor(16, 16, &[]))
    };
    let mut plain = Chat::open(&p.url(), Some(("x-domino-api-key", "plain")))
        .await
        .unwrap();
    let refused = plain
        .roundtrip(packet(serde_json::json!({"sequence_id": 7})))
        .await;
    assert_eq!(refused.status_code, tonic::Code::PermissionDenied as i32);
    assert!(
        refused.status_message.contains("parameters.sequence_id")
            && refused.status_message.contains("PROXY_ALLOWED_PARAMETERS"),
        "{}",
        refused.status_message
    );
    let refused = plain
        .roundtrip(packet(serde_json::json!({"delay_ms": 0})))
        .await;
    assert_eq!(refused.status_code, tonic::Code::PermissionDenied as i32);
    let ok = plain.roundtrip(packet(serde_json::json!({}))).await;
    assert_eq!(
        ok.status_code, 0,
        "the stream goes on: {}",
        ok.status_message
    );

    let mut tuned = Chat::open(&p.url(), Some(("x-domino-api-key", "tuned")))
        .await
        .unwrap();
    let ok = tuned
        .roundtrip(packet(serde_json::json!({"delay_ms": 0})))
        .await;
    assert_eq!(ok.status_code, 0, "{}", ok.status_message);
    let refused = tuned
        .roundtrip(packet(serde_json::json!({"delay_ms": 0, "priority": 1})))
        .await;
    assert_eq!(refused.status_code, tonic::Code::PermissionDenied as i32);
    assert!(
        refused.status_message.contains("parameters.priority")
            && !refused.status_message.contains("parameters.delay_ms"),
        "{}",
        refused.status_message
    );
    let _ = std::fs::remove_file(path);
}

/// The memory budget (`PROXY_MAX_BUFFERED_BYTES`, 64 MiB here) against one key's four streams
/// that each send eight 8 MiB packets to a model that holds them 4 s (the mock's delay): without
/// a budget the proxy would hold all 32 (256 MiB). It holds at most half the budget for that
/// key, ends the streams that ask for more with RESOURCE_EXHAUSTED naming the setting, keeps its
/// resident memory within the budget of where it started, and answers another key's stream
/// meanwhile.
#[test]
fn hostile_streams_of_big_packets_stay_within_the_memory_budget_while_another_key_is_served() {
    use triton_client::mock::{MockKserve, Script};
    const HOG: u64 = 100_000;
    let mock = MockKserve::start(Script {
        delay_ms: Box::new(|n| if n >= HOG { 4000 } else { 0 }),
        ..Default::default()
    });
    let keys = std::env::temp_dir().join(format!("proxy-budget-keys-{}", std::process::id()));
    std::fs::write(&keys, "hog\ngood\n").unwrap();
    let budget = 64u64 << 20;
    let proxy = ProxyProcess::start(
        &mock.url(),
        &[
            "--proxy-keys-file",
            keys.to_str().unwrap(),
            "--proxy-max-buffered-bytes",
            &budget.to_string(),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    const SIDE: usize = 836; // 3 x 836 x 836 FP32: 8.4 MB
    let big = move |id: String| {
        let note = serde_json::json!({"model": "mock", "inputs": [{"name": "images",
            "shape": [1, 3, SIDE, SIDE], "dtype": "FP32", "from": "image"}]});
        image_packet(&id, &note.to_string(), vec![0u8; 3 * SIDE * SIDE * 4])
    };
    let url = proxy.url();
    let warm = rt.block_on(async {
        let mut good = Chat::open(&url, Some(("x-domino-api-key", "good")))
            .await
            .unwrap();
        good.roundtrip(big("good:1".into())).await
    });
    assert_eq!(warm.status_code, 0, "{}", warm.status_message);
    let before = proxy.rss_bytes().unwrap();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), proxy.pid().unwrap());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(rss) = rss_of(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let (outcomes, served) = rt.block_on(async {
        let hogs: Vec<_> = (0..4u64)
            .map(|s| {
                let url = url.clone();
                tokio::spawn(async move {
                    let mut c = Chat::open(&url, Some(("x-domino-api-key", "hog")))
                        .await
                        .unwrap();
                    for i in 0..8u64 {
                        if c.tx
                            .send(big(format!("hog:{}", HOG + s * 100 + i)))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    let (mut acks, mut end) = (0, None);
                    loop {
                        match tokio::time::timeout(Duration::from_secs(60), c.rx.message()).await {
                            Ok(Ok(Some(_))) => acks += 1,
                            Ok(Ok(None)) => break,
                            Ok(Err(s)) => {
                                end = Some(s);
                                break;
                            }
                            Err(_) => panic!("a hog stream hung"),
                        }
                        if acks == 8 {
                            break;
                        }
                    }
                    (acks, end)
                })
            })
            .collect();
        // Another key's stream, while the hogs hold what they may.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut good = Chat::open(&url, Some(("x-domino-api-key", "good")))
            .await
            .unwrap();
        let mut served = 0;
        for i in 0..5 {
            let ack = good.roundtrip(big(format!("good:{}", 10 + i))).await;
            assert_eq!(ack.status_code, 0, "the other key: {}", ack.status_message);
            served += 1;
        }
        let mut outcomes = Vec::new();
        for h in hogs {
            outcomes.push(h.await.unwrap());
        }
        (outcomes, served)
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let grew = peak
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(before);
    eprintln!(
        "hog streams (acks, end): {:?}; the other key served {served}; resident memory grew {} MiB \
         (budget {} MiB)",
        outcomes
            .iter()
            .map(|(a, e)| (a, e.as_ref().map(|s| s.code())))
            .collect::<Vec<_>>(),
        grew >> 20,
        budget >> 20
    );
    let acked: usize = outcomes.iter().map(|(a, _)| a).sum();
    assert!(acked >= 1, "the hog key got nothing at all: {outcomes:?}");
    assert!(acked <= 32 - 8, "nothing was refused: {outcomes:?}");
    let refused: Vec<&tonic::Status> = outcomes.iter().filter_map(|(_, e)| e.as_ref()).collect();
    assert!(!refused.is_empty());
    for s in refused {
        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
        assert!(s.message().contains("PROXY_MAX_BUFFERED_BYTES"), "{s:?}");
    }
    assert!(
        grew <= budget,
        "resident memory grew {} MiB, over the {} MiB budget",
        grew >> 20,
        budget >> 20
    );
    let _ = std::fs::remove_file(keys);
}

/// Sends each packet on a stream of its own, all at once (so that the collator stacks them)
/// and returns each stream's Ack, in order.
async fn at_once(
    url: &str,
    packets: Vec<triton_proto::multimodal::DataPacket>,
) -> Vec<(i32, String)> {
    let mut streams = Vec::new();
    for _ in &packets {
        streams.push(Chat::open_default(url).await);
    }
    let sends = streams
        .into_iter()
        .zip(packets)
        .map(|(mut c, p)| async move {
            let ack = c.roundtrip(p).await;
            (ack.status_code, ack.status_message)
        });
    futures::future::join_all(sends).await
}

/// `PROXY_BATCH_MAX` stacks packets of different tenants into one request. A member's
/// `"timeout": 1e-6` used to become the batch's (everyone got DEADLINE_EXCEEDED): each member
/// now waits its own timeout, and the batch as long as its most patient one. Against the real
/// Triton, three streams' packets stacked in one batch (the collator's counters say so).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_member_with_a_tiny_timeout_fails_alone() {
    let p = TestProxy::start(
        &shared_url(),
        &["--proxy-batch-max", "3", "--proxy-batch-delay-us", "500000"],
    )
    .await
    .unwrap();
    let packet = |id: &str, timeout: Option<f64>| {
        let mut note: serde_json::Value =
            serde_json::from_str(&shapes_note("shapes_nms", 16, 16, true)).unwrap();
        if let Some(t) = timeout {
            note["timeout"] = t.into();
        }
        image_packet(
            id,
            &note.to_string(),
            draw_tensor(16, 16, &[Rect::new(2, 2, 8, 8, 1)]),
        )
    };
    let acks = at_once(
        &p.url(),
        vec![
            packet("a", Some(1e-6)),
            packet("b", None),
            packet("c", None),
        ],
    )
    .await;
    let m = p.metrics().await;
    assert_eq!(
        (
            metric(&m, "proxy_batches_total"),
            metric(&m, "proxy_batched_packets_total")
        ),
        (1.0, 3.0),
        "the three packets were not one batch: {acks:?}"
    );
    assert_eq!(acks[0].0, tonic::Code::DeadlineExceeded as i32, "{acks:?}");
    assert!(acks[0].1.contains("timeout"), "{acks:?}");
    assert_eq!((acks[1].0, acks[2].0), (0, 0), "{acks:?}");
}

/// A batch the model refuses because of one member's bytes (the mock refuses any request whose
/// tensor holds "POISON", as a model that fails on some inputs would): each member is then sent
/// alone, so only the poisoned packet gets the error and the others their answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_refused_for_one_member_fails_only_that_member() {
    use triton_client::mock::{MockKserve, Script};
    let mock = MockKserve::start(Script {
        echo: true,
        refuse: Box::new(|d: &[u8]| {
            d.windows(6)
                .any(|w| w == b"POISON")
                .then(|| "images: this model cannot take that".to_string())
        }),
        ..Default::default()
    });
    let p = TestProxy::start(
        &mock.url(),
        &["--proxy-batch-max", "3", "--proxy-batch-delay-us", "500000"],
    )
    .await
    .unwrap();
    let packet = |id: &str, poisoned: bool| {
        let mut data = draw_tensor(16, 16, &[Rect::new(2, 2, 8, 8, 1)]);
        if poisoned {
            data[..6].copy_from_slice(b"POISON");
        }
        image_packet(id, &shapes_note("mock", 16, 16, true), data)
    };
    let acks = at_once(
        &p.url(),
        vec![
            packet("a:1", false),
            packet("b:2", true),
            packet("c:3", false),
        ],
    )
    .await;
    let m = p.metrics().await;
    assert_eq!(metric(&m, "proxy_batched_packets_total"), 3.0, "{acks:?}");
    assert_eq!(metric(&m, "proxy_batches_split_total"), 1.0, "{acks:?}");
    assert_eq!((acks[0].0, acks[2].0), (0, 0), "{acks:?}");
    assert_ne!(acks[1].0, 0, "{acks:?}");
    assert!(acks[1].1.contains("cannot take that"), "{acks:?}");
}

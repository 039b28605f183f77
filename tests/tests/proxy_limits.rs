//! The proxy's limits, each shown against a real Triton over real sockets: streams in total and
//! per credential, idle streams, connection age, and keepalive pings that drop a dead peer. Each
//! also checks its metric.

use std::time::{Duration, Instant};

use gst_triton_tests::proxy::{Chat, TestProxy, image_packet, metric, shapes_note};
use gst_triton_tests::triton::shared_url;
use gst_triton_tests::{Rect, draw_tensor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn packet(id: &str) -> triton_proto::multimodal::DataPacket {
    image_packet(
        id,
        &shapes_note("shapes_nms", 16, 16, true),
        draw_tensor(16, 16, &[Rect::new(2, 2, 8, 8, 1)]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_total_or_per_key_limit_end_at_once_naming_the_limit() {
    let keys = std::env::temp_dir().join(format!("proxy-limit-keys-{}", std::process::id()));
    std::fs::write(&keys, "key-a\nkey-b\n").unwrap();
    let proxy = TestProxy::start(
        &shared_url(),
        &[
            "--proxy-keys-file",
            keys.to_str().unwrap(),
            "--proxy-max-streams",
            "3",
            "--proxy-max-streams-per-key",
            "2",
        ],
    )
    .await
    .unwrap();
    let url = proxy.url();
    let open = |k: &'static str| Chat::open(&url, Some(("x-domino-api-key", k)));
    let mut a1 = open("key-a").await.unwrap();
    let _a2 = open("key-a").await.unwrap();
    let t = Instant::now();
    let over_key = open("key-a").await.err().expect("a third stream for key-a");
    assert!(t.elapsed() < Duration::from_secs(5), "not at once");
    assert_eq!(over_key.code(), Code::ResourceExhausted);
    assert!(
        over_key.message().contains("PROXY_MAX_STREAMS_PER_KEY=2")
            && !over_key.message().contains("key-a"),
        "{}",
        over_key.message()
    );
    let mut b1 = open("key-b").await.unwrap();
    let over_total = open("key-b").await.err().expect("a fourth stream");
    assert_eq!(over_total.code(), Code::ResourceExhausted);
    assert!(
        over_total
            .message()
            .contains("limit of 3 open streams (PROXY_MAX_STREAMS)"),
        "{}",
        over_total.message()
    );
    // The admitted streams work, and a refused one takes nothing from them.
    for (i, c) in [&mut a1, &mut b1].into_iter().enumerate() {
        let ack = c.roundtrip(packet(&i.to_string())).await;
        assert_eq!(ack.status_code, 0, "{}", ack.status_message);
    }
    // A closed stream gives its place back.
    drop(a1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut a3 = loop {
        match open("key-a").await {
            Ok(c) => break c,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted);
                assert!(Instant::now() < deadline, "a closed stream kept its place");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(a3.roundtrip(packet("a3")).await.status_code, 0);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "proxy_streams_rejected_total{limit=\"PROXY_MAX_STREAMS_PER_KEY\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "proxy_streams_rejected_total{limit=\"PROXY_MAX_STREAMS\"}"
        ) >= 1.0
    );
    let _ = std::fs::remove_file(keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_is_ended_with_unavailable_and_a_busy_one_is_not() {
    let proxy = TestProxy::start(&shared_url(), &["--proxy-stream-idle-secs", "1"])
        .await
        .unwrap();
    let mut idle = Chat::open_default(&proxy.url()).await;
    assert_eq!(idle.roundtrip(packet("1")).await.status_code, 0);
    let mut busy = Chat::open_default(&proxy.url()).await;
    let t = Instant::now();
    // The busy stream sends every 300 ms for 3 s: never idle for 1 s.
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(3) {
        let ack = busy.roundtrip(packet(&format!("b{n}"))).await;
        assert_eq!(
            ack.status_code, 0,
            "busy stream, packet {n}: {}",
            ack.status_message
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), idle.rx.message())
        .await
        .expect("the idle stream was not ended");
    let status = ended.expect_err("the idle stream ends with a status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("1 s (PROXY_STREAM_IDLE_SECS)"),
        "{}",
        status.message()
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "proxy_streams_ended_total{reason=\"idle\"}"),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_age_ends_streams_after_their_acks_and_a_new_connection_works() {
    let proxy = TestProxy::start(
        &shared_url(),
        &[
            "--proxy-max-connection-age-secs",
            "2",
            "--proxy-max-connection-age-grace-secs",
            "5",
        ],
    )
    .await
    .unwrap();
    let url = proxy.url();
    let client = gst_triton_tests::proxy::client(&url).await;
    let key = Some(("x-domino-api-key", "test-key"));
    let Chat { tx, rx: mut acks } = Chat::open_on(&client, key).await.unwrap();
    // Send as fast as the stream takes packets: the proxy has as many in flight as it allows
    // when the age is reached, and owes their Acks.
    let sender = tokio::spawn(async move {
        let mut sent = 0u32;
        while tx.send(packet(&sent.to_string())).await.is_ok() {
            sent += 1;
        }
        sent
    });
    let t = Instant::now();
    let mut answered = 0u32;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), acks.message()).await {
            Err(_) => panic!("no Ack and no end within 10 s"),
            Ok(Ok(Some(ack))) => {
                assert_eq!(ack.correlation_id, answered.to_string(), "out of order");
                assert_eq!(ack.status_code, 0, "{}", ack.status_message);
                answered += 1;
            }
            Ok(Ok(None)) => panic!("ended with OK; expected UNAVAILABLE naming the age"),
            Ok(Err(s)) => break s,
        }
    };
    let at = t.elapsed();
    drop(acks);
    sender.await.unwrap();
    assert!(answered > 5, "only {answered} Acks before the end");
    assert!(
        at >= Duration::from_millis(2500) && at < Duration::from_secs(6),
        "ended after {at:?}"
    );
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("PROXY_MAX_CONNECTION_AGE_SECS")
            && status.message().contains("reconnect"),
        "{}",
        status.message()
    );
    // The same client opens a new stream: its channel reconnects after the GOAWAY. tonic's
    // channel may still hand this first request to the old connection while that connection is
    // closing (its reconnect does not act on a GOAWAY, grpc-rust#2185): the request then never
    // leaves the client and fails as cancelled. gRPC clients retry such a request transparently
    // (grpc-go, grpc-core); the test does that once, and only for that failure.
    let Chat { tx, rx: mut acks } = match Chat::open_on(&client, key).await {
        Ok(chat) => chat,
        Err(s) if s.code() == Code::Cancelled && s.message() == "operation was canceled" => {
            Chat::open_on(&client, key).await.unwrap()
        }
        Err(s) => panic!("the new stream was refused: {s:?}"),
    };
    let sent = tx.send(packet("again")).await;
    let ack = acks.message().await;
    assert!(sent.is_ok(), "the new stream: {ack:?}");
    let ack = ack.unwrap().unwrap();
    assert_eq!((ack.correlation_id.as_str(), ack.status_code), ("again", 0));
    let m = proxy.metrics().await;
    assert!(
        metric(
            &m,
            "proxy_streams_ended_total{reason=\"max_connection_age\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "proxy_connections_total") >= 2.0, "{m}");
    // Every packet the proxy answered OK reached the client: the first stream's Acks before its
    // end, and "again" (an Ack dropped at the age's end would leave the counter ahead).
    assert_eq!(
        metric(
            &m,
            "proxy_requests_total{model=\"shapes_nms\",status=\"OK\"}"
        ),
        f64::from(answered + 1),
        "{m}"
    );
}

/// Opens a raw HTTP/2 connection that says hello and then never reads or answers again.
async fn silent_h2_peer(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
    s
}

/// Reads until the peer closes; `true` when it did within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_drop_a_peer_that_never_answers() {
    let with = TestProxy::start(
        &shared_url(),
        &[
            "--proxy-keepalive-secs",
            "1",
            "--proxy-keepalive-timeout-secs",
            "1",
        ],
    )
    .await
    .unwrap();
    let without = TestProxy::start(&shared_url(), &["--proxy-keepalive-secs", "0"])
        .await
        .unwrap();
    let mut dead = silent_h2_peer(with.addr).await;
    let mut control = silent_h2_peer(without.addr).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&with.metrics().await, "proxy_connections_open") != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the silent peer's connection was not counted open within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Our reads consume the pings but never answer them.
    let t = Instant::now();
    assert!(
        closed_within(&mut dead, Duration::from_secs(10)).await,
        "a peer that never answered pings was kept"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Without pings the same silent peer stays connected.
    assert!(
        !closed_within(&mut control, Duration::from_secs(3)).await,
        "the control connection closed without keepalive"
    );
    assert_eq!(
        metric(&without.metrics().await, "proxy_connections_open"),
        1.0
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&with.metrics().await, "proxy_connections_open") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the dropped connection is still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A good client is served right after.
    let mut c = Chat::open_default(&with.url()).await;
    assert_eq!(c.roundtrip(packet("after")).await.status_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_outlives_the_age_grace_is_cut() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let proxy = TestProxy::start(
        &shared_url(),
        &[
            "--proxy-max-connection-age-secs",
            "1",
            "--proxy-max-connection-age-grace-secs",
            "2",
        ],
    )
    .await
    .unwrap();
    // A health Watch never ends by itself: only the forced close after the grace ends it.
    let ch = tonic::transport::Endpoint::from_shared(proxy.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let t = Instant::now();
    let mut watch = HealthClient::new(ch)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.message()).await {
            Err(_) => panic!("the watch outlived age + grace by far"),
            Ok(Ok(Some(_))) => continue,
            Ok(other) => break other,
        }
    };
    let at = t.elapsed();
    assert!(
        at >= Duration::from_millis(2500) && at < Duration::from_secs(6),
        "cut after {at:?}: {end:?}"
    );
}

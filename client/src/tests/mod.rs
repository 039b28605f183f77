//! The client against the in-process mock (and, for the proxy transport, the real proxy in
//! process in front of it): no GStreamer, no Triton. Each transport answers every request with
//! its own answer, out of order; an ended stream's unanswered requests are sent again; shared
//! memory carries tensors both ways; an unreachable server backs off.

use std::sync::Arc;
use std::time::Duration;

use triton_endpoint::{Auth, Names, Target};

use crate::mock::{MockKserve, Script, box_for};
use crate::shm::ShmPool;
use crate::{
    Answer, Client, ClientConfig, InferError, InputDesc, Outcome, Request, Transport,
    transport::unary::DEFAULT_SERVICE,
};

const KEY: &str = "test-key";

fn config(url: &str, transport: Transport) -> ClientConfig {
    ClientConfig {
        target: Target::new(url, Names::ELEMENT),
        auth: Auth::new(Some(KEY), None, &Names::ELEMENT).unwrap(),
        transport,
        kserve_service: DEFAULT_SERVICE.into(),
        model: "m".into(),
        model_version: String::new(),
        output_names: vec!["output0".into()],
        timeout: Duration::from_secs(10),
        shm: None,
    }
}

fn desc() -> Arc<InputDesc> {
    Arc::new(InputDesc {
        input_name: "images".into(),
        dtype: "FP32".into(),
        shape: vec![1, 3, 2, 2],
    })
}

/// Frame `n`'s request: 12 FP32 values that differ per frame.
fn request(n: u64, desc: &Arc<InputDesc>) -> Request {
    Request {
        id: format!("cam:{n}"),
        desc: desc.clone(),
        data: (0..12u32)
            .flat_map(|i| (n as f32 * 100.0 + i as f32).to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
    }
}

/// The box of the mock's one detection.
fn first_box(a: &Answer) -> [f32; 4] {
    let v: Vec<f32> = a.outputs[0]
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    [v[0], v[1], v[2], v[3]]
}

/// Frames 0..n at once; each outcome with its frame number.
async fn send_all(c: &Arc<Client>, n: u64) -> Vec<(u64, Outcome)> {
    let d = desc();
    let calls = (0..n).map(|i| {
        let (c, r) = (c.clone(), request(i, &d));
        async move { (i, c.infer(r).await) }
    });
    futures::future::join_all(calls).await
}

fn assert_own_answers(got: Vec<(u64, Outcome)>, transport: Transport) {
    for (n, outcome) in got {
        let a = outcome.unwrap_or_else(|e| panic!("{transport:?}: frame {n} failed: {e}"));
        assert_eq!(first_box(&a), box_for(n), "{transport:?}: frame {n}");
    }
}

/// The real proxy, in process, in front of `upstream`.
async fn proxy(upstream: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (url, stop, _served) = proxy_on(upstream, 0).await;
    (url, stop)
}

/// The real proxy on `port` (0: any); its task ends once it has drained after `stop`, true when
/// it ended without an error.
async fn proxy_on(
    upstream: &str,
    port: u16,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<bool>,
) {
    let port = port.to_string();
    let argv = [
        "triton-proxy",
        "--triton-url",
        upstream,
        "--proxy-host",
        "127.0.0.1",
        "--proxy-port",
        &port,
        "--proxy-metrics-port",
        "0",
        "--triton-model-name",
        "m",
        "--grpc-expect-api-key",
        KEY,
    ];
    let p = triton_proxy::Proxy::bind(triton_proxy::Config::from_args(argv).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", p.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel();
    let serve = p.serve(async {
        let _ = rx.await;
    });
    let served = tokio::spawn(async move { serve.await.is_ok() });
    (url, stop, served)
}

mod shm;

/// Later frames are answered first (the mock delays frame n by (9 - n) × 20 ms): every
/// transport still hands each request its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_matches_answers_to_their_requests_out_of_order() {
    let reversed = || Script {
        delay_ms: Box::new(|n| (9 - n.min(9)) * 20),
        ..Default::default()
    };
    let mock = MockKserve::start(reversed());
    let (proxy_url, _stop) = proxy(&mock.url()).await;
    for (url, transport) in [
        (mock.url(), Transport::TritonStream),
        (mock.url(), Transport::KserveUnary),
        (proxy_url, Transport::Proxy),
    ] {
        let c = Arc::new(Client::new(config(&url, transport)));
        assert_own_answers(send_all(&c, 10).await, transport);
    }
    assert!(
        mock.peak_outstanding() >= 5,
        "requests were not in flight together (peak {})",
        mock.peak_outstanding()
    );
}

/// The mock ends the stream as frame 3 arrives, leaving it (and whatever followed it) unanswered:
/// the client sends those again on a new stream and every frame gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_an_ended_stream_left_unanswered_are_sent_again() {
    let mock = MockKserve::start(Script {
        end_stream_at: Some(3),
        ..Default::default()
    });
    let c = Arc::new(Client::new(config(&mock.url(), Transport::TritonStream)));
    assert_own_answers(send_all(&c, 6).await, Transport::TritonStream);
    // Frame 3 never reached an answer on the stream that ended: its answer came from a resend.
    assert_eq!(mock.streams_ended(), 1, "the scripted end did not happen");
}

/// The proxy stops gracefully (its drain ends our stream with OK, its socket closes) and a new
/// one takes the same address 1.5 s later: requests sent meanwhile wait for it and are answered,
/// none fails. Without the wait they failed at once ("connection refused").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restarted_on_its_address_within_the_wait_costs_no_request() {
    let mock = MockKserve::start(Script::default());
    let (url, stop, served) = proxy_on(&mock.url(), 0).await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let c = Arc::new(Client::new(config(&url, Transport::Proxy)));
    assert_own_answers(send_all(&c, 3).await, Transport::Proxy);
    stop.send(()).unwrap();
    assert!(served.await.unwrap(), "the proxy's drain failed");
    let gone = std::time::Instant::now();
    let d = desc();
    let waiting: Vec<_> = (10..16)
        .map(|i| {
            let (c, r) = (c.clone(), request(i, &d));
            tokio::spawn(async move { (i, c.infer(r).await, std::time::Instant::now()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_url, _stop, _served) = proxy_on(&mock.url(), port).await;
    for w in waiting {
        let (i, outcome, at) = w.await.unwrap();
        let a = outcome.unwrap_or_else(|e| panic!("frame {i} failed during the restart: {e}"));
        assert_eq!(first_box(&a), box_for(i), "frame {i}");
        assert!(
            at - gone >= Duration::from_millis(1400),
            "frame {i} was answered {:?} after the proxy stopped, before the new one started",
            at - gone
        );
    }
}

/// A server that ended our stream and does not come back: requests wait for it at most
/// [`crate::RESTART_WAIT`] (not their 10-s deadline), then fail at once again (backoff).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_does_not_come_back_fails_requests_after_the_wait() {
    let mock = MockKserve::start(Script::default());
    let (url, stop, served) = proxy_on(&mock.url(), 0).await;
    let c = Client::new(config(&url, Transport::Proxy));
    assert_own_answers(
        vec![(0, c.infer(request(0, &desc())).await)],
        Transport::Proxy,
    );
    stop.send(()).unwrap();
    assert!(served.await.unwrap(), "the proxy's drain failed");
    let gone = std::time::Instant::now();
    let first = c.infer(request(1, &desc())).await.unwrap_err();
    let waited = gone.elapsed();
    assert!(
        waited >= crate::RESTART_WAIT - Duration::from_millis(300)
            && waited < crate::RESTART_WAIT + Duration::from_secs(2),
        "the first request failed after {waited:?}: {first}"
    );
    let t = std::time::Instant::now();
    let next = c.infer(request(2, &desc())).await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "after the wait, a request failed only after {:?}: {next}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_then_backs_off_naming_its_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let c = Client::new(config(&url, Transport::TritonStream));
    let first = c.infer(request(0, &desc())).await.unwrap_err();
    assert!(
        !matches!(first, InferError::Backoff { .. }),
        "the first attempt connects: {first}"
    );
    let second = c.infer(request(1, &desc())).await.unwrap_err();
    let text = second.to_string();
    assert!(
        matches!(second, InferError::Backoff { .. }) && text.contains(&url),
        "{text}"
    );
}

/// The model's description, through each transport: the proxy's ModelInfo and Triton's
/// metadata + config agree; a plain KServe server has no config, so no class names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transport_describes_the_model() {
    let mock = MockKserve::start(Script::default());
    let plain = MockKserve::start(Script {
        kserve_only: true,
        ..Default::default()
    });
    let (proxy_url, _stop) = proxy(&mock.url()).await;
    let names = Some(
        ["red", "green", "blue", "yellow"]
            .map(String::from)
            .to_vec(),
    );
    for (url, transport, classes) in [
        (mock.url(), Transport::TritonStream, &names),
        (proxy_url, Transport::Proxy, &names),
        (plain.url(), Transport::KserveUnary, &None),
    ] {
        let d = Client::new(config(&url, transport))
            .model_desc()
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_eq!(d.input_name.as_deref(), Some("images"), "{transport:?}");
        assert_eq!(d.input_dtype.as_deref(), Some("FP32"), "{transport:?}");
        assert_eq!(d.outputs, [("output0".to_string(), vec![1, -1, 6])]);
        assert_eq!(&d.class_names, classes, "{transport:?}");
    }
}

/// Readiness: a ready mock passes, directly and through the proxy; a wrong key is refused by
/// the proxy with UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_passes_a_ready_server_and_reports_a_refusal() {
    let mock = MockKserve::start(Script::default());
    let (proxy_url, _stop) = proxy(&mock.url()).await;
    for (url, t) in [
        (mock.url(), Transport::TritonStream),
        (proxy_url.clone(), Transport::Proxy),
    ] {
        assert!(
            Client::new(config(&url, t)).readiness().await.is_ok(),
            "{t:?}"
        );
    }
    let mut wrong = config(&proxy_url, Transport::Proxy);
    wrong.auth = Auth::new(Some("wrong"), None, &Names::ELEMENT).unwrap();
    match Client::new(wrong).readiness().await {
        Err(crate::readiness::Unready::Refused(s)) => {
            assert_eq!(s.code(), tonic::Code::Unauthenticated)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A request names the model and version configured and carries its tensor: the echo mock
/// answers with the very bytes sent, on both direct transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_names_its_model_and_carries_its_tensor() {
    let mock = MockKserve::start(Script {
        echo: true,
        ..Default::default()
    });
    for transport in [Transport::TritonStream, Transport::KserveUnary] {
        let mut cfg = config(&mock.url(), transport);
        cfg.model_version = "2".into();
        cfg.timeout = Duration::from_secs(3);
        let c = Client::new(cfg);
        let r = request(5, &desc());
        let sent = r.data.clone();
        let a = c.infer(r).await.unwrap();
        assert_eq!(a.outputs[0].data, sent, "{transport:?}");
        assert_eq!(mock.last_model(), ("m".to_string(), "2".to_string()));
    }
}

/// Each failed connection doubles the wait before the next attempt (100 ms, then 200 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_between_connection_attempts_doubles() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(config(
        &format!("http://127.0.0.1:{port}"),
        Transport::TritonStream,
    ));
    let wait = |e: InferError| match e {
        InferError::Backoff { in_ms, .. } => Some(in_ms),
        _ => None,
    };
    // The first attempt fails; requests back off until the second attempt is made.
    assert_eq!(wait(c.infer(request(0, &desc())).await.unwrap_err()), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wait(c.infer(request(1, &desc())).await.unwrap_err()).is_some() {
        assert!(std::time::Instant::now() < deadline, "never tried again");
        tokio::task::yield_now().await;
    }
    let second = wait(c.infer(request(2, &desc())).await.unwrap_err());
    assert!(
        second.is_some_and(|ms| ms > 100),
        "the second wait is not longer than the first: {second:?}"
    );
}

/// A unary call whose server went away is a lost connection (sent once more on a new one, then
/// reported as the connection's failure), not a refusal by the server; the next server on that
/// address answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_to_a_server_that_went_away_is_a_lost_connection() {
    let echo = || Script {
        echo: true,
        ..Default::default()
    };
    let mock = MockKserve::start(echo());
    let c = Client::new(config(&mock.url(), Transport::KserveUnary));
    c.infer(request(0, &desc())).await.unwrap();
    let port = mock.kill();
    let e = c.infer(request(1, &desc())).await.unwrap_err();
    assert!(
        !matches!(e, InferError::Server { .. }),
        "a lost connection reported as the server's refusal: {e:?}"
    );
    let _mock = MockKserve::start_on(port, echo());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 2;
    while let Err(e) = c.infer(request(n, &desc())).await {
        assert!(
            std::time::Instant::now() < deadline,
            "never answered again: {e}"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A unary call the server refuses is the server's answer, with its code and message: neither a
/// timeout nor a lost connection, so it is not sent again; a refusal that says Triton's "timeout
/// expired" is a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_refusal_is_the_servers_answer_and_its_timeout_a_timeout() {
    let mock = MockKserve::start(Script {
        fail: Box::new(|n| match n {
            1 => Some("model 'm' has no input 'x'".into()),
            2 => Some("Request Timeout expired".into()),
            _ => None,
        }),
        ..Default::default()
    });
    let c = Client::new(config(&mock.url(), Transport::KserveUnary));
    c.infer(request(0, &desc())).await.unwrap();
    match c.infer(request(1, &desc())).await.unwrap_err() {
        InferError::Server { code, message } => {
            assert_eq!(code, tonic::Code::Internal);
            assert!(message.contains("has no input 'x'"), "{message}");
        }
        e => panic!("the server's refusal reported as {e:?}"),
    }
    assert_eq!(mock.received(), 2, "a refused request was sent again");
    let e = c.infer(request(2, &desc())).await.unwrap_err();
    assert!(
        matches!(e, InferError::Timeout { .. }),
        "Triton's timeout reported as {e:?}"
    );
    c.infer(request(3, &desc())).await.unwrap();
}

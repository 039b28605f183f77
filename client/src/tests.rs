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
    let argv = [
        "triton-proxy",
        "--triton-url",
        upstream,
        "--proxy-host",
        "127.0.0.1",
        "--proxy-port",
        "0",
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
    tokio::spawn(p.serve(async {
        let _ = rx.await;
    }));
    (url, stop)
}

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

/// With shared memory the tensor travels in a region (the mock reads it there, and the echo it
/// writes back there comes back intact); closing the pool unregisters every region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_carries_the_tensors_both_ways_and_close_gives_the_regions_back() {
    let mock = MockKserve::start(Script {
        shared_memory: true,
        echo: true,
        ..Default::default()
    });
    let mut cfg = config(&mock.url(), Transport::TritonStream);
    let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
    pool.prepare().await.expect("the mock offers shared memory");
    cfg.shm = Some(pool.clone());
    let c = Client::new(cfg);
    c.model_desc().await.unwrap();
    let d = desc();
    for n in 0..3 {
        let r = request(n, &d);
        let sent = r.data.clone();
        let a = c.infer(r).await.unwrap();
        assert_eq!(a.outputs[0].data, sent, "frame {n}: the echo differs");
    }
    assert_eq!(mock.shm_inputs(), 3, "an input did not come from a region");
    assert!(!mock.regions().is_empty());
    pool.close().await.unwrap();
    assert_eq!(
        mock.regions(),
        Vec::<String>::new(),
        "regions left registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_shared_memory_is_refused_with_the_way_out() {
    let mock = MockKserve::start(Script::default());
    let cfg = config(&mock.url(), Transport::TritonStream);
    let e = ShmPool::new(cfg.target, cfg.auth)
        .prepare()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, InferError::SharedMemory(m) if m.contains("does not offer system shared memory") && m.contains("shared-memory=none")),
        "{e}"
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

/// A region whose request got its answer is used again; a new input size retires it (the next
/// lease unregisters it); a server that forgot its regions (restarted) costs no request: the
/// client registers anew and sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_are_reused_retired_and_registered_again_after_a_restart() {
    let mock = MockKserve::start(Script {
        shared_memory: true,
        echo: true,
        ..Default::default()
    });
    let mut cfg = config(&mock.url(), Transport::TritonStream);
    let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
    cfg.shm = Some(pool.clone());
    let c = Client::new(cfg);
    let d = desc();
    for n in 0..3 {
        c.infer(request(n, &d)).await.unwrap();
    }
    assert_eq!(
        mock.registrations(),
        1,
        "one region for requests one at a time"
    );
    let bigger = Arc::new(InputDesc {
        shape: vec![1, 3, 4, 4],
        ..(*d).clone()
    });
    let big = |id: &str| Request {
        id: id.into(),
        desc: bigger.clone(),
        data: vec![1u8; 3 * 16 * 4].into(),
    };
    c.infer(big("cam:9")).await.unwrap();
    assert_eq!(mock.registrations(), 2);
    assert_eq!(
        mock.regions().len(),
        1,
        "the region of the old size was not unregistered"
    );
    // The restart comes while a region of the size being sent is free: it must not be reused.
    mock.forget_regions();
    let r = big("cam:10");
    let sent = r.data.clone();
    let a = c
        .infer(r)
        .await
        .expect("a restarted server costs no request");
    assert_eq!(a.outputs[0].data, sent);
    assert_eq!(mock.registrations(), 3);
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

/// Closing while Triton still uses a region: unregistering is tried again until the region is
/// free; a region that stays in use is reported by count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_in_use_are_unregistered_once_free_or_reported() {
    for (refusals, ok) in [(3, true), (usize::MAX, false)] {
        let mock = MockKserve::start(Script {
            shared_memory: true,
            echo: true,
            ..Default::default()
        });
        let mut cfg = config(&mock.url(), Transport::TritonStream);
        let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
        cfg.shm = Some(pool.clone());
        Client::new(cfg).infer(request(0, &desc())).await.unwrap();
        assert_eq!(mock.regions().len(), 1);
        mock.refuse_unregisters(refusals);
        let closed = tokio::time::timeout(Duration::from_secs(20), pool.close())
            .await
            .expect("close gave up in time");
        if ok {
            closed.expect("freed after three refusals");
            assert!(mock.regions().is_empty(), "{:?}", mock.regions());
        } else {
            let e = closed.expect_err("a region that stays in use");
            assert!(
                e.to_string()
                    .contains("1 shared-memory regions could not be unregistered"),
                "{e}"
            );
            assert_eq!(mock.regions().len(), 1);
        }
    }
}

/// `prepare` removes a dead process's region from the server even while the server still calls
/// it in use for a while (requests of the dead process draining): it asks again until
/// `IN_USE_WAIT` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_waits_for_a_dead_process_region_still_in_use() {
    use triton_proto::inference::SystemSharedMemoryRegisterRequest;
    use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
    let mock = MockKserve::start(Script {
        shared_memory: true,
        ..Default::default()
    });
    // A region of a process that cannot exist (pids stop below 2^22), registered as it was.
    let dead = format!("{}{}-1-0", crate::shm::region::PREFIX, 1u32 << 23);
    let key = std::ffi::CString::new(format!("/{dead}")).unwrap();
    // SAFETY: plain libc calls on a descriptor closed here.
    unsafe {
        let fd = libc::shm_open(key.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600);
        assert!(fd >= 0, "shm_open");
        assert_eq!(libc::ftruncate(fd, 4096), 0);
        libc::close(fd);
    }
    let mut rpc = GrpcInferenceServiceClient::connect(mock.url())
        .await
        .unwrap();
    rpc.system_shared_memory_register(SystemSharedMemoryRegisterRequest {
        name: dead.clone(),
        key: format!("/{dead}"),
        offset: 0,
        byte_size: 4096,
    })
    .await
    .unwrap();
    assert_eq!(mock.regions(), std::slice::from_ref(&dead));
    // In use for three answers (300 ms), well inside the wait.
    mock.refuse_unregisters(3);
    let cfg = config(&mock.url(), Transport::TritonStream);
    let removed = ShmPool::new(cfg.target, cfg.auth)
        .prepare()
        .await
        .expect("prepare");
    assert!(removed.contains(&dead), "{removed:?}");
    assert!(!mock.regions().contains(&dead), "{:?}", mock.regions());
}

/// A request a stream left unanswered may still be read or written by the server: its region is
/// retired, and the resend goes through a new one (not the same region handed out again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_of_a_request_left_unanswered_is_not_reused() {
    let mock = MockKserve::start(Script {
        shared_memory: true,
        echo: true,
        end_stream_at: Some(1),
        ..Default::default()
    });
    let mut cfg = config(&mock.url(), Transport::TritonStream);
    let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
    cfg.shm = Some(pool.clone());
    let c = Client::new(cfg);
    let d = desc();
    c.infer(request(0, &d)).await.unwrap();
    assert_eq!(mock.registrations(), 1, "one region for frame 0");
    let r = request(1, &d);
    let sent = r.data.clone();
    let a = c.infer(r).await.expect("the resend is answered");
    assert_eq!(a.outputs[0].data, sent, "frame 1's echo differs");
    assert_eq!(mock.streams_ended(), 1, "the scripted end did not happen");
    assert_eq!(
        mock.registrations(),
        2,
        "the resend of frame 1 went through the region its unanswered request was left in"
    );
}

/// A retired region is unregistered at the next request even when that request finds a free
/// region of its size (not only when it has to make a new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_region_is_unregistered_while_a_free_one_is_reused() {
    let mock = MockKserve::start(Script {
        shared_memory: true,
        echo: true,
        delay_ms: Box::new(|n| if n < 2 { 200 } else { 0 }),
        end_stream_at: Some(2),
        ..Default::default()
    });
    let mut cfg = config(&mock.url(), Transport::TritonStream);
    let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
    cfg.shm = Some(pool.clone());
    let c = Arc::new(Client::new(cfg));
    // Frames 0 and 1 at once: two regions, both free afterwards.
    for (n, outcome) in send_all(&c, 2).await {
        let echo = outcome.unwrap_or_else(|e| panic!("frame {n}: {e}"));
        assert_eq!(echo.outputs[0].data, request(n, &desc()).data, "frame {n}");
    }
    assert_eq!(mock.registrations(), 2, "two requests at once, two regions");
    // Frame 2's stream ends unanswered: its region is retired; the resend takes the other one.
    let d = desc();
    let r = request(2, &d);
    let sent = r.data.clone();
    let a = c.infer(r).await.expect("the resend is answered");
    assert_eq!(a.outputs[0].data, sent);
    assert_eq!(mock.streams_ended(), 1, "the scripted end did not happen");
    assert_eq!(mock.registrations(), 2, "the resend reuses the free region");
    assert_eq!(
        mock.regions().len(),
        1,
        "the retired region is still registered with the server"
    );
}

/// Requests one at a time reuse one region on each transport that takes shared memory (a unary
/// call's answered request gives its region back, as a stream's does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_give_their_region_back_on_both_transports() {
    for transport in [Transport::TritonStream, Transport::KserveUnary] {
        let mock = MockKserve::start(Script {
            shared_memory: true,
            echo: true,
            ..Default::default()
        });
        let mut cfg = config(&mock.url(), transport);
        let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
        cfg.shm = Some(pool.clone());
        let c = Client::new(cfg);
        let d = desc();
        for n in 0..4 {
            let r = request(n, &d);
            let sent = r.data.clone();
            let a = c.infer(r).await.unwrap();
            assert_eq!(a.outputs[0].data, sent, "{transport:?}: frame {n}");
        }
        assert_eq!(
            mock.shm_inputs(),
            4,
            "{transport:?}: an input not in a region"
        );
        assert_eq!(
            mock.registrations(),
            1,
            "{transport:?}: a region was not given back after its answer"
        );
    }
}

//! Shared-memory regions against the mock: tensors carried both ways, regions reused, retired
//! and registered again, unregistered once Triton no longer uses them.

use super::*;

/// A client of `url` whose tensors travel through a shared-memory pool of its own.
fn shm_client(url: &str, transport: Transport) -> (Client, Arc<ShmPool>) {
    let mut cfg = config(url, transport);
    let pool = ShmPool::new(cfg.target.clone(), cfg.auth.clone());
    cfg.shm = Some(pool.clone());
    (Client::new(cfg), pool)
}

/// The mock with shared memory, answering each request with its own input.
fn echo_mock(more: Script) -> MockKserve {
    MockKserve::start(Script {
        shared_memory: true,
        echo: true,
        ..more
    })
}

/// With shared memory the tensor travels in a region (the mock reads it there, and the echo it
/// writes back there comes back intact); closing the pool unregisters every region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_carries_the_tensors_both_ways_and_close_gives_the_regions_back() {
    let mock = echo_mock(Script::default());
    let (c, pool) = shm_client(&mock.url(), Transport::TritonStream);
    pool.prepare().await.expect("the mock offers shared memory");
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

/// A region whose request got its answer is used again; a new input size retires it (the next
/// lease unregisters it); a server that forgot its regions (restarted) costs no request: the
/// client registers anew and sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_are_reused_retired_and_registered_again_after_a_restart() {
    let mock = echo_mock(Script::default());
    let (c, _pool) = shm_client(&mock.url(), Transport::TritonStream);
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

/// Closing while Triton still uses a region: unregistering is tried again until the region is
/// free; a region that stays in use is reported by count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_in_use_are_unregistered_once_free_or_reported() {
    for (refusals, ok) in [(3, true), (usize::MAX, false)] {
        let mock = echo_mock(Script::default());
        let (c, pool) = shm_client(&mock.url(), Transport::TritonStream);
        c.infer(request(0, &desc())).await.unwrap();
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
    let mock = echo_mock(Script {
        end_stream_at: Some(1),
        ..Default::default()
    });
    let (c, _pool) = shm_client(&mock.url(), Transport::TritonStream);
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
    let mock = echo_mock(Script {
        delay_ms: Box::new(|n| if n < 2 { 200 } else { 0 }),
        end_stream_at: Some(2),
        ..Default::default()
    });
    let (c, _pool) = shm_client(&mock.url(), Transport::TritonStream);
    let c = Arc::new(c);
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
        let mock = echo_mock(Script::default());
        let (c, _pool) = shm_client(&mock.url(), transport);
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

/// A request that finds a free region of its size, with nothing retired, opens no connection of
/// its own: registration connections are made only to register or unregister.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_region_is_reused_without_a_connection_of_its_own() {
    let mock = echo_mock(Script::default());
    let (c, _pool) = shm_client(&mock.url(), Transport::TritonStream);
    c.infer(request(0, &desc())).await.unwrap();
    let after_first = mock.connections();
    assert!(after_first >= 1, "the mock counts no connections");
    for n in 1..6 {
        let echo = c.infer(request(n, &desc())).await.unwrap();
        assert_eq!(echo.outputs[0].data, request(n, &desc()).data, "frame {n}");
    }
    assert_eq!(mock.registrations(), 1, "the region was not reused");
    assert_eq!(
        mock.connections(),
        after_first,
        "five requests through a free region opened connections"
    );
}

//! What the client allocates for a frame's tensor on its way to the socket, counted rather than
//! read off a profile: every allocation (or reallocation) of at least half a tensor made on the
//! client's threads (its runtime's and the caller's) is counted in bytes. The mock server, and the
//! proxy for the proxy transport, run on threads of their own that are not counted.
//!
//! What this proves and what it does not: a copy of the tensor into a new buffer (a `to_vec`, a
//! message built by value, a codec that allocates per message) shows as one tensor per frame. The
//! gRPC encoding's copy into a buffer it reuses is not an allocation and is not counted here (the
//! perf figures in docs/benchmarks.md show that one copy).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst_triton_tests::proxy::TestProxy;
use triton_client::mock::{MockKserve, Script};
use triton_client::transport::unary::DEFAULT_SERVICE;
use triton_client::{Client, ClientConfig, InputDesc, Request, Transport};
use triton_endpoint::{Auth, Names, Target};

/// A 640×640 RGB frame as FP32: the demo detector's input.
const TENSOR: usize = 3 * 640 * 640 * 4;
const FRAMES: u64 = 20;
const KEY: &str = "test-key";

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}
static BIG_BYTES: AtomicU64 = AtomicU64::new(0);

struct Counting;

fn count(size: usize) {
    if size >= TENSOR / 2 && COUNTED.try_with(|c| c.get()).unwrap_or(false) {
        BIG_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn config(url: &str, transport: Transport) -> ClientConfig {
    ClientConfig {
        target: Target::new(url, Names::ELEMENT),
        auth: Auth::new(Some(KEY), None, &Names::ELEMENT).unwrap(),
        transport,
        kserve_service: DEFAULT_SERVICE.into(),
        model: "m".into(),
        model_version: String::new(),
        output_names: vec!["output0".into()],
        timeout: Duration::from_secs(20),
        shm: None,
    }
}

/// The client's own runtime: its threads are the counted ones.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .build()
        .unwrap()
}

/// Tensor-sized bytes allocated per frame, in tensors, over `FRAMES` frames sent one after the other (after one to open the
/// connection), each answered.
fn big_per_frame(url: &str, transport: Transport) -> f64 {
    let rt = client_runtime();
    let desc = Arc::new(InputDesc {
        input_name: "images".into(),
        dtype: "FP32".into(),
        shape: vec![1, 3, 640, 640],
    });
    // The frame as the element hands it over: bytes already made (by tritonletterbox).
    let frame = bytes::Bytes::from(vec![7u8; TENSOR]);
    let c = Client::new(config(url, transport));
    // The thread that calls `infer` (the element's streaming thread) is the client's too.
    COUNTED.with(|c| c.set(true));
    rt.block_on(async {
        let first = Request {
            id: "warm".into(),
            desc: desc.clone(),
            data: frame.clone(),
        };
        c.infer(first).await.expect("the first frame");
        BIG_BYTES.store(0, Ordering::Relaxed);
        for n in 0..FRAMES {
            let r = Request {
                id: format!("cam:{n}"),
                desc: desc.clone(),
                data: frame.clone(),
            };
            c.infer(r)
                .await
                .unwrap_or_else(|e| panic!("{transport:?}: frame {n}: {e}"));
        }
    });
    COUNTED.with(|c| c.set(false));
    BIG_BYTES.load(Ordering::Relaxed) as f64 / (FRAMES as f64 * TENSOR as f64)
}

/// The real proxy on a runtime (and threads) of its own, in front of `upstream`.
fn proxy(upstream: &str) -> (TestProxy, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = rt.block_on(TestProxy::start(upstream, &[])).unwrap();
    (p, rt)
}

/// No transport allocates a tensor-sized buffer per frame: the encoding reuses its buffer (a
/// few growths over the run), so the frame's bytes are never copied into a fresh one.
#[test]
fn no_streaming_transport_allocates_a_tensor_sized_buffer_per_frame() {
    let mock = MockKserve::start(Script::default());
    let (proxy, _proxy_rt) = proxy(&mock.url());
    let proxy_url = proxy.url();
    let mut seen = Vec::new();
    for (url, transport) in [
        (mock.url(), Transport::TritonStream),
        (proxy_url, Transport::Proxy),
    ] {
        let per_frame = big_per_frame(url.as_str(), transport);
        println!("{transport:?}: {per_frame:.2} tensors allocated per frame");
        seen.push((transport, per_frame));
    }
    for (transport, per_frame) in seen {
        assert!(
            per_frame < 0.5,
            "{transport:?}: {per_frame:.2} tensor-sized allocations per frame, expected none (a copy into a new buffer each frame)"
        );
    }
}

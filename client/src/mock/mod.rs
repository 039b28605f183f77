//! An in-process KServe v2 server for tests that must not need a real Triton: tonic on
//! 127.0.0.1 (a free port), in a runtime of its own so that [`MockKserve::kill`] drops every
//! connection at once, like a crashed server.
//!
//! Every request gets a scripted answer: after [`Script::delay_ms`] (and while the gate is
//! closed, not at all), either an error ([`Script::fail`]) or one detection in the
//! `[1, 1, 6]` layout (`x1, y1, x2, y2, score, class`) that encodes the request's frame number
//! `n` (from the id `"<stream>:<n>"`): `x1 = n % 40`, `y1 = 2`, `x2 = x1 + 10`, `y2 = 12`,
//! `score = 0.9`, `class = n % 4`. Counters tell how many requests were outstanding at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use triton_proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use triton_proto::inference::model_infer_response::InferOutputTensor;
use triton_proto::inference::model_metadata_response::TensorMetadata;
use triton_proto::inference::*;

use crate::MAX_MESSAGE;

mod plain;
mod shm;

pub use plain::RENAMED_SERVICE;
use plain::{Renamed, typed_contents};

type Rule<T> = Box<dyn Fn(u64) -> T + Send + Sync>;
/// A rule on a request's first input bytes.
type BytesRule<T> = Box<dyn Fn(&[u8]) -> T + Send + Sync>;

/// How the mock answers; change it while the server runs.
pub struct Script {
    /// Delay before answering frame `n`, in ms.
    pub delay_ms: Rule<u64>,
    /// `Some(message)`: answer frame `n` with that in-band error.
    pub fail: Rule<Option<String>>,
    /// `Some(message)`: answer a request whose first input's bytes are these with that in-band
    /// error (a model that refuses some contents, whichever request they come in).
    pub refuse: BytesRule<Option<String>>,
    /// `Some(code)`: ModelMetadata fails with this status.
    pub metadata_error: Option<tonic::Code>,
    /// ModelMetadata answers after this many ms (a server slow to describe its model).
    pub metadata_delay_ms: u64,
    /// Answer with the request's first input as `output0` (same bytes, shape and datatype)
    /// instead of a detection: an identity model with no cost, for benchmarks.
    pub echo: bool,
    /// Behave like a KServe v2 server that is not Triton (MLServer, KServe runtimes): no
    /// `ModelStreamInfer` and no `ModelConfig` (UNIMPLEMENTED), and answers in typed `contents`
    /// instead of `raw_output_contents`.
    pub kserve_only: bool,
    /// `Some(n)`: the first `ModelStreamInfer` stream that carries frame `n` ends (OK trailers)
    /// as that request arrives, leaving it, and whatever else was in flight, unanswered; once.
    pub end_stream_at: Option<u64>,
    /// `ServerReady` answers not ready (a server starting or shutting down).
    pub not_ready: bool,
    /// `ServerReady` answers after this many ms (a ready server that is slow to say so).
    pub ready_delay_ms: u64,
    /// Offer Triton's system shared memory (registration, tensors in regions); without it the
    /// mock answers UNIMPLEMENTED like a KServe v2 server that is not Triton.
    pub shared_memory: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            delay_ms: Box::new(|_| 0),
            fail: Box::new(|_| None),
            refuse: Box::new(|_| None),
            metadata_error: None,
            metadata_delay_ms: 0,
            echo: false,
            kserve_only: false,
            end_stream_at: None,
            shared_memory: false,
            not_ready: false,
            ready_delay_ms: 0,
        }
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicUsize,
    outstanding: AtomicUsize,
    peak: AtomicUsize,
    answered: AtomicUsize,
    /// Streams ended on purpose ([`Script::end_stream_at`]).
    ended: AtomicUsize,
    /// Requests whose input came from a shared-memory region.
    shm_inputs: AtomicUsize,
    /// ModelMetadata calls received.
    metadata_calls: AtomicUsize,
    /// TCP connections accepted.
    connections: AtomicUsize,
}

struct Shared {
    script: Mutex<Script>,
    /// Answers flow only while this is true.
    gate: watch::Sender<bool>,
    counters: Counters,
    regions: shm::Registry,
    last_model: Mutex<(String, String)>,
}

/// A running mock; killed on drop.
pub struct MockKserve {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The frame number in a request id `"<stream>:<n>"`.
pub fn frame_of(id: &str) -> u64 {
    id.rsplit(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The box the mock answers for frame `n`, in tensor pixels.
pub fn box_for(n: u64) -> [f32; 4] {
    let x1 = (n % 40) as f32;
    [x1, 2.0, x1 + 10.0, 12.0]
}

impl MockKserve {
    /// Starts on a free port with an open gate.
    pub fn start(script: Script) -> MockKserve {
        Self::start_on(0, script)
    }

    /// Starts on `port` (0: a free one), e.g. to come back where a killed one was.
    pub fn start_on(port: u16, script: Script) -> MockKserve {
        Self::start_named(port, script, false)
    }

    /// Starts with the service under another gRPC name (`package.Service`), like a server that
    /// renamed the KServe package: `/<name>/ModelInfer` instead of
    /// `/inference.GRPCInferenceService/ModelInfer`.
    pub fn start_renamed(script: Script) -> MockKserve {
        Self::start_named(0, script, true)
    }

    fn start_named(port: u16, script: Script, renamed: bool) -> MockKserve {
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            gate: watch::channel(true).0,
            counters: Counters::default(),
            regions: shm::Registry::default(),
            last_model: Mutex::default(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mock-kserve")
            .enable_all()
            .build()
            .expect("mock runtime");
        // No block_on (a caller may itself be inside a tokio runtime); SO_REUSEADDR so that a
        // restart binds the port of a killed mock at once.
        let listener = {
            let _rt = runtime.enter();
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.set_reuseaddr(true).unwrap();
            s.bind(([127, 0, 0, 1], port).into())
                .expect("bind the mock");
            s.listen(1024).unwrap()
        };
        let addr = listener.local_addr().unwrap();
        let svc = GrpcInferenceServiceServer::new(Service(shared.clone()))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let counted = shared.clone();
        let incoming = TcpListenerStream::new(listener).inspect(move |_| {
            counted.counters.connections.fetch_add(1, Ordering::SeqCst);
        });
        let mut builder = tonic::transport::Server::builder();
        runtime.spawn(async move {
            let _ = match renamed {
                false => builder.add_service(svc).serve_with_incoming(incoming).await,
                true => {
                    builder
                        .add_service(Renamed(svc))
                        .serve_with_incoming(incoming)
                        .await
                }
            };
        });
        MockKserve {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the script (requests already waiting keep their delay).
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = script;
    }

    /// Closed: requests are taken but not answered until it opens again.
    pub fn set_gate(&self, open: bool) {
        self.shared.gate.send_replace(open);
    }

    /// Requests received so far.
    pub fn received(&self) -> usize {
        self.shared.counters.received.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.shared.counters.answered.load(Ordering::SeqCst)
    }

    /// ModelMetadata calls received so far.
    pub fn metadata_calls(&self) -> usize {
        self.shared.counters.metadata_calls.load(Ordering::SeqCst)
    }

    /// Requests whose input the mock read from a shared-memory region.
    pub fn shm_inputs(&self) -> usize {
        self.shared.counters.shm_inputs.load(Ordering::SeqCst)
    }

    /// The shared-memory regions registered now.
    pub fn regions(&self) -> Vec<String> {
        self.shared.regions.names()
    }

    /// Shared-memory registrations so far; [`MockKserve::forget_regions`] forgets them all, as a
    /// restarted Triton does.
    pub fn registrations(&self) -> usize {
        self.shared.regions.registrations()
    }

    pub fn forget_regions(&self) {
        self.shared.regions.forget()
    }

    /// The model name and version of the last request.
    pub fn last_model(&self) -> (String, String) {
        self.shared.last_model.lock().unwrap().clone()
    }

    /// Streams the mock ended on purpose with a request unanswered ([`Script::end_stream_at`]).
    pub fn streams_ended(&self) -> usize {
        self.shared.counters.ended.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.counters.connections.load(Ordering::SeqCst)
    }

    /// The most requests outstanding (received, not yet answered) at any moment.
    pub fn peak_outstanding(&self) -> usize {
        self.shared.counters.peak.load(Ordering::SeqCst)
    }

    /// Waits (at most `timeout`) until `received() >= n`.
    pub fn wait_received(&self, n: usize, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while self.received() < n {
            if std::time::Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Drops the server and every connection at once, like a crash.
    pub fn kill(mut self) -> u16 {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.addr.port()
    }
}

impl Drop for MockKserve {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct Service(Arc<Shared>);

impl Service {
    /// A server without the system shared-memory extension (the KServe v2 servers that are not
    /// Triton) answers UNIMPLEMENTED.
    fn shm_offered(&self) -> Result<(), Status> {
        match self.0.script.lock().unwrap().shared_memory {
            true => Ok(()),
            false => Err(Status::unimplemented("no system shared memory")),
        }
    }

    /// The scripted answer to one request, after its delay and the gate.
    async fn answer(shared: Arc<Shared>, req: ModelInferRequest) -> ModelStreamInferResponse {
        let c = &shared.counters;
        c.received.fetch_add(1, Ordering::SeqCst);
        *shared.last_model.lock().unwrap() = (req.model_name.clone(), req.model_version.clone());
        let now = c.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
        c.peak.fetch_max(now, Ordering::SeqCst);
        let n = frame_of(&req.id);
        let (delay, fail, echo) = {
            let s = shared.script.lock().unwrap();
            ((s.delay_ms)(n), (s.fail)(n), s.echo)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let mut gate = shared.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        c.outstanding.fetch_sub(1, Ordering::SeqCst);
        c.answered.fetch_add(1, Ordering::SeqCst);
        let response = ModelInferResponse {
            model_name: req.model_name.clone(),
            model_version: "1".into(),
            id: req.id.clone(),
            ..Default::default()
        };
        let answered = |r: Result<ModelInferResponse, String>| match r {
            Ok(r) => ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(r),
            },
            Err(e) => ModelStreamInferResponse {
                error_message: e,
                infer_response: Some(ModelInferResponse {
                    id: req.id.clone(),
                    ..Default::default()
                }),
            },
        };
        let input = match Service::input(&shared, &req) {
            Ok(i) => i,
            Err(e) => return answered(Err(e)),
        };
        let refused = input
            .as_deref()
            .and_then(|d| (shared.script.lock().unwrap().refuse)(d));
        if let Some(message) = fail.or(refused) {
            return ModelStreamInferResponse {
                error_message: message,
                infer_response: Some(response),
            };
        }
        let (tensor, data) = match (echo, req.inputs.first(), input) {
            (true, Some(i), Some(data)) => (
                InferOutputTensor {
                    name: "output0".into(),
                    datatype: i.datatype.clone(),
                    shape: i.shape.clone(),
                    ..Default::default()
                },
                data,
            ),
            _ => {
                let b = box_for(n);
                let row = [b[0], b[1], b[2], b[3], 0.9, (n % 4) as f32];
                (
                    InferOutputTensor {
                        name: "output0".into(),
                        datatype: "FP32".into(),
                        shape: vec![1, 1, 6],
                        ..Default::default()
                    },
                    row.iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>()
                        .into(),
                )
            }
        };
        answered(
            Service::output(&shared, &req, tensor, data).map(|(outputs, raw)| ModelInferResponse {
                outputs,
                raw_output_contents: raw,
                ..response
            }),
        )
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    type ModelStreamInferStream = ResponseStream;

    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let (ready, delay) = {
            let s = self.0.script.lock().unwrap();
            (!s.not_ready, s.ready_delay_ms)
        };
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        _: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        Ok(Response::new(ModelReadyResponse { ready: true }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.0
            .counters
            .metadata_calls
            .fetch_add(1, Ordering::SeqCst);
        let (error, delay) = {
            let s = self.0.script.lock().unwrap();
            (s.metadata_error, s.metadata_delay_ms)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if let Some(code) = error {
            return Err(Status::new(code, "scripted metadata failure"));
        }
        let tensor = |name: &str, shape: Vec<i64>| TensorMetadata {
            name: name.into(),
            datatype: "FP32".into(),
            shape,
        };
        Ok(Response::new(ModelMetadataResponse {
            name: req.into_inner().name,
            versions: vec!["1".into()],
            platform: "mock".into(),
            inputs: vec![tensor("images", vec![1, 3, -1, -1])],
            outputs: vec![tensor("output0", vec![1, -1, 6])],
        }))
    }

    async fn model_config(
        &self,
        req: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        if self.0.script.lock().unwrap().kserve_only {
            return Err(Status::unimplemented("ModelConfig is a Triton extension"));
        }
        let mut parameters = std::collections::HashMap::new();
        parameters.insert(
            "class_names".to_string(),
            ModelParameter {
                string_value: "red,green,blue,yellow".into(),
            },
        );
        Ok(Response::new(ModelConfigResponse {
            config: Some(ModelConfig {
                name: req.into_inner().name,
                platform: "mock".into(),
                parameters,
                ..Default::default()
            }),
        }))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let r = Service::answer(self.0.clone(), req.into_inner()).await;
        if r.error_message.is_empty() {
            let mut resp = r.infer_response.unwrap_or_default();
            if self.0.script.lock().unwrap().kserve_only {
                typed_contents(&mut resp);
            }
            Ok(Response::new(resp))
        } else {
            Err(Status::internal(r.error_message))
        }
    }

    async fn system_shared_memory_status(
        &self,
        _: Request<SystemSharedMemoryStatusRequest>,
    ) -> Result<Response<SystemSharedMemoryStatusResponse>, Status> {
        self.shm_offered()?;
        let regions = self
            .0
            .regions
            .names()
            .into_iter()
            .map(|n| (n, Default::default()))
            .collect();
        Ok(Response::new(SystemSharedMemoryStatusResponse { regions }))
    }

    async fn system_shared_memory_register(
        &self,
        req: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Result<Response<SystemSharedMemoryRegisterResponse>, Status> {
        self.shm_offered()?;
        let r = req.into_inner();
        self.0
            .regions
            .register(&r.name, &r.key, r.byte_size as usize)?;
        Ok(Response::new(SystemSharedMemoryRegisterResponse {}))
    }

    async fn system_shared_memory_unregister(
        &self,
        req: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Result<Response<SystemSharedMemoryUnregisterResponse>, Status> {
        self.shm_offered()?;
        self.0.regions.unregister(&req.into_inner().name)?;
        Ok(Response::new(SystemSharedMemoryUnregisterResponse {}))
    }

    async fn model_stream_infer(
        &self,
        req: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        if self.0.script.lock().unwrap().kserve_only {
            return Err(Status::unimplemented("Method not found: ModelStreamInfer"));
        }
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let shared = self.0.clone();
        let end_at = shared.script.lock().unwrap().end_stream_at;
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if end_at == Some(frame_of(&r.id))
                    && shared
                        .counters
                        .ended
                        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    // End this stream now: frame n and whatever is in flight go unanswered.
                    let _ = end.send(());
                    return;
                }
                let (tx, shared) = (tx.clone(), shared.clone());
                // One task per request: answers leave as their delays end, out of order.
                tokio::spawn(async move {
                    let _ = tx.send(Ok(Service::answer(shared, r).await)).await;
                });
            }
        });
        // The answers, until a scripted end (a stream whose inbound side simply closed keeps
        // sending what is still in flight).
        let until = async move {
            if ended.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        use futures::StreamExt;
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).take_until(until),
        )))
    }
}

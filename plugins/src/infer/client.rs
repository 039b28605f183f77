//! The network side of `tritoninfer`: one bidirectional stream per element, to `triton-proxy`
//! (`multimodal.MultiModal/Chat`, binary outputs) or straight to Triton (`ModelStreamInfer`).
//! Responses are matched to requests by id. A broken stream fails its pending requests; the next
//! request reconnects, with exponential backoff between attempts.
//!
//! Address, TLS and credentials come from [`triton_endpoint`], shared with the runner and the
//! proxy; errors are [`InferError`] values, whose text is what the result meta and the element's
//! messages show.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use triton_endpoint::{Auth, Target};
use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use triton_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use triton_proto::inference::{ModelConfigRequest, ModelInferRequest, ModelMetadataRequest};
use triton_proto::multimodal::multi_modal_client::MultiModalClient;
use triton_proto::multimodal::{DataPacket, Frame, Meta, ModelInfoRequest, data_packet::Payload};

use super::answer::{Reply, ack_to_output, read_replies, triton_reply, triton_to_output};
pub use super::error::InferError;
use super::kserve::Kserve;
use super::shm_pool::{OutSpec, ShmPool};

pub use super::runtime::RUNTIME;

const MAX_MESSAGE: usize = 64 * 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Proxy,
    Triton,
    /// Unary `ModelInfer` to any KServe v2 server, one call per request (pipelined by the
    /// element up to `max-in-flight`).
    Kserve,
}

/// Everything the client needs; secrets live inside [`Auth`], which never prints them.
#[derive(Clone)]
pub struct ClientConfig {
    pub target: Target,
    pub auth: Auth,
    pub transport: Transport,
    /// The gRPC service of `Transport::Kserve` (`inference.GRPCInferenceService` by default).
    pub kserve_service: String,
    pub model: String,
    pub model_version: String,
    pub output_names: Vec<String>,
    pub timeout: Duration,
    /// `shared-memory=system` (transport=triton only): tensors go through these regions.
    pub shm: Option<Arc<ShmPool>>,
}

/// One output tensor of an answer.
#[derive(Debug, Clone)]
pub struct OutTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub data: Bytes,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct InferOutput {
    pub model_version: String,
    pub outputs: Vec<OutTensor>,
}

/// What the model says about itself.
#[derive(Debug, Clone, Default)]
pub struct ModelDesc {
    pub input_name: Option<String>,
    pub outputs: Vec<(String, Vec<i64>)>,
    pub class_names: Option<Vec<String>>,
}

/// How the tensor of a request is described; the same `Arc` for every frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub input_name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// One request: the tensor and how to describe it.
pub struct Request {
    pub id: String,
    pub spec: Arc<TensorSpec>,
    pub data: Bytes,
}

pub type Answer = Result<InferOutput, InferError>;
pub(super) type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;
type Intercepted = InterceptedService<Channel, Auth>;

#[derive(Clone)]
enum Sender {
    Proxy(mpsc::Sender<DataPacket>),
    Triton(mpsc::Sender<ModelInferRequest>),
    Kserve(Box<Kserve>),
}

#[derive(Clone)]
struct Conn {
    tx: Sender,
    pending: Pending,
    alive: Arc<AtomicBool>,
    /// Why the stream ended (set by the reader).
    error: Arc<Mutex<Option<InferError>>>,
}

impl Conn {
    fn ended_because(&self) -> InferError {
        self.error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| InferError::Closed("stream closed".into()))
    }

    fn forget(&self, id: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(id);
        }
    }
}

struct ConnState {
    conn: Option<Conn>,
    next_attempt: Instant,
    backoff: Duration,
    last_error: Option<InferError>,
}

/// A per-element client.
pub struct Client {
    cfg: ClientConfig,
    state: tokio::sync::Mutex<ConnState>,
    /// The proxy control JSON for the last tensor description: the same every frame.
    note: Mutex<Option<(Arc<TensorSpec>, String)>>,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Client {
        Client {
            cfg,
            note: Mutex::new(None),
            state: tokio::sync::Mutex::new(ConnState {
                conn: None,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
                last_error: None,
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    async fn channel(&self) -> Result<Intercepted, InferError> {
        let ch = self.cfg.target.connect().await?;
        Ok(InterceptedService::new(ch, self.cfg.auth.clone()))
    }

    /// Model tensors and class names (ModelInfo through the proxy, ModelMetadata + ModelConfig
    /// from Triton).
    pub async fn describe(&self) -> Result<ModelDesc, InferError> {
        let ch = self.channel().await?;
        let c = &self.cfg;
        match c.transport {
            Transport::Proxy => {
                let info = MultiModalClient::new(ch)
                    .model_info(ModelInfoRequest {
                        model: c.model.clone(),
                        version: c.model_version.clone(),
                    })
                    .await
                    .map_err(|s| InferError::status(&s, c.target.tls_enabled()))?
                    .into_inner();
                Ok(ModelDesc {
                    input_name: info.inputs.first().map(|i| i.name.clone()),
                    outputs: info
                        .outputs
                        .into_iter()
                        .map(|o| (o.name, o.shape))
                        .collect(),
                    class_names: info
                        .parameters
                        .get("class_names")
                        .map(|s| crate::decode::parse_labels(s)),
                })
            }
            Transport::Triton | Transport::Kserve => {
                // Triton's own service name for transport=triton; ModelConfig (Triton's
                // extension) only where the server has it.
                let service = match c.transport {
                    Transport::Kserve => c.kserve_service.as_str(),
                    _ => super::kserve::DEFAULT_SERVICE,
                };
                let k = Kserve::new(ch, service, MAX_MESSAGE);
                let meta = k
                    .model_metadata(tonic::Request::new(ModelMetadataRequest {
                        name: c.model.clone(),
                        version: c.model_version.clone(),
                    }))
                    .await
                    .map_err(|s| InferError::status(&s, c.target.tls_enabled()))?;
                let cfg = k
                    .model_config(tonic::Request::new(ModelConfigRequest {
                        name: c.model.clone(),
                        version: c.model_version.clone(),
                    }))
                    .await
                    .ok()
                    .and_then(|r| r.config);
                if let Some(pool) = &c.shm {
                    let batched = cfg.as_ref().is_some_and(|c| c.max_batch_size > 0);
                    pool.set_outputs(
                        meta.outputs
                            .iter()
                            .map(|o| OutSpec {
                                name: o.name.clone(),
                                dtype: o.datatype.clone(),
                                shape: o.shape.clone(),
                                batched,
                            })
                            .collect(),
                    );
                }
                Ok(ModelDesc {
                    input_name: meta.inputs.first().map(|i| i.name.clone()),
                    outputs: meta
                        .outputs
                        .into_iter()
                        .map(|o| (o.name, o.shape))
                        .collect(),
                    class_names: cfg.and_then(|c| {
                        c.parameters
                            .get("class_names")
                            .map(|p| crate::decode::parse_labels(&p.string_value))
                    }),
                })
            }
        }
    }

    async fn connection(&self) -> Result<Conn, InferError> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.conn {
            if c.alive.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
            st.last_error = Some(c.ended_because());
            st.conn = None;
        }
        let now = Instant::now();
        if now < st.next_attempt {
            return Err(InferError::Backoff {
                url: self.cfg.target.url.clone(),
                in_ms: (st.next_attempt - now).as_millis(),
                last: Box::new(
                    st.last_error
                        .clone()
                        .unwrap_or_else(|| InferError::Closed("stream closed".into())),
                ),
            });
        }
        match self.connect().await {
            Ok(c) => {
                st.conn = Some(c.clone());
                st.backoff = BACKOFF_MIN;
                Ok(c)
            }
            Err(e) => {
                st.next_attempt = Instant::now() + st.backoff;
                st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Conn, InferError> {
        let ch = self.channel().await?;
        let tls = self.cfg.target.tls_enabled();
        let conn = Conn {
            tx: Sender::Proxy(mpsc::channel(1).0),
            pending: Default::default(),
            alive: Arc::new(AtomicBool::new(true)),
            error: Arc::new(Mutex::new(None)),
        };
        let tx = match self.cfg.transport {
            Transport::Proxy => {
                let (tx, rx) = mpsc::channel::<DataPacket>(64);
                let mut mm = MultiModalClient::new(ch)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE);
                let reader = conn.clone();
                tokio::spawn(async move {
                    let why = match mm.chat(ReceiverStream::new(rx)).await {
                        Err(s) => InferError::status(&s, tls),
                        Ok(resp) => {
                            read_replies(
                                resp.into_inner(),
                                &reader.pending,
                                ("the proxy", tls),
                                |mut ack| {
                                    let id = std::mem::take(&mut ack.correlation_id);
                                    Reply::For(id, ack_to_output(ack))
                                },
                                |_| None,
                            )
                            .await
                        }
                    };
                    reader.fail_all(why);
                });
                Sender::Proxy(tx)
            }
            Transport::Kserve => Sender::Kserve(Box::new(Kserve::new(
                ch,
                &self.cfg.kserve_service,
                MAX_MESSAGE,
            ))),
            Transport::Triton => {
                let url = self.cfg.target.url.clone();
                let (tx, rx) = mpsc::channel::<ModelInferRequest>(64);
                let mut t = GrpcInferenceServiceClient::new(ch)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE);
                let reader = conn.clone();
                tokio::spawn(async move {
                    let why = match t.model_stream_infer(ReceiverStream::new(rx)).await {
                        Err(s) => {
                            not_streaming(&url, &s).unwrap_or_else(|| InferError::status(&s, tls))
                        }
                        Ok(resp) => {
                            read_replies(
                                resp.into_inner(),
                                &reader.pending,
                                ("Triton", tls),
                                triton_reply,
                                |s| not_streaming(&url, s),
                            )
                            .await
                        }
                    };
                    reader.fail_all(why);
                });
                Sender::Triton(tx)
            }
        };
        Ok(Conn { tx, ..conn })
    }

    /// The control JSON the proxy reads for this request, built once per tensor description.
    fn control_note(&self, spec: &Arc<TensorSpec>) -> String {
        let mut cache = self.note.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, note)) = cache.as_ref()
            && (Arc::ptr_eq(k, spec) || **k == **spec)
        {
            return note.clone();
        }
        let c = &self.cfg;
        let note = serde_json::json!({
            "model": c.model,
            "version": c.model_version,
            "inputs": [{"name": spec.input_name, "shape": spec.shape, "dtype": spec.dtype, "from": "frame"}],
            "outputs": c.output_names,
            "timeout": c.timeout.as_secs_f64(),
            "binary": true,
        })
        .to_string();
        *cache = Some((spec.clone(), note.clone()));
        note
    }

    /// Sends one request and waits for its answer, at most `timeout` from now. A request whose
    /// stream ended before its answer (it may never have been processed) is sent once more on a
    /// new stream, within the same deadline: a proxy that ends streams for their connection's
    /// age, an idle timeout or a shutdown costs no frame.
    pub async fn infer(&self, r: Request) -> Answer {
        let deadline = tokio::time::Instant::now() + self.cfg.timeout;
        match self.attempt(&r, deadline).await {
            Err(InferError::StreamEnded(first) | InferError::Resend(first)) => {
                match self.attempt(&r, deadline).await {
                    Err(InferError::StreamEnded(e) | InferError::Resend(e)) => Err(*e),
                    Err(InferError::Backoff { .. }) => Err(*first),
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn attempt(&self, r: &Request, deadline: tokio::time::Instant) -> Answer {
        let c = &self.cfg;
        let conn = tokio::time::timeout_at(deadline, self.connection())
            .await
            .map_err(|_| InferError::ConnectTimeout {
                url: c.target.url.clone(),
                ms: c.timeout.as_millis(),
            })??;
        // With shared memory the tensor is in a region before the request is sent.
        let lease = match (&conn.tx, &c.shm) {
            (Sender::Triton(_) | Sender::Kserve(_), Some(pool)) => Some(
                tokio::time::timeout_at(deadline, pool.lease(&r.spec, &r.data, &c.output_names))
                    .await
                    .map_err(|_| InferError::Timeout {
                        ms: c.timeout.as_millis(),
                    })??,
            ),
            _ => None,
        };
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = conn.pending.lock() {
            p.insert(r.id.clone(), tx);
        }
        let sent = match &conn.tx {
            Sender::Proxy(s) => {
                let p = DataPacket {
                    meta: Some(Meta {
                        correlation_id: r.id.clone(),
                        note: self.control_note(&r.spec),
                        stream_id: String::new(),
                        capture_ts_ns: 0,
                    }),
                    payload: Some(Payload::Frame(Frame {
                        data: r.data.clone(),
                    })),
                };
                s.send(p).await.is_ok()
            }
            Sender::Triton(s) => s.send(self.infer_request(r, lease.as_ref())).await.is_ok(),
            Sender::Kserve(k) => {
                conn.forget(&r.id);
                let res = self
                    .unary(k, &conn, self.infer_request(r, lease.as_ref()), deadline)
                    .await;
                return match lease {
                    Some(l) if !matches!(res, Err(InferError::Timeout { .. })) => l.finish(res),
                    _ => res,
                };
            }
        };
        if !sent {
            conn.forget(&r.id);
            return Err(InferError::StreamEnded(Box::new(conn.ended_because())));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(res)) => match lease {
                Some(l) => l.finish(res),
                None => res,
            },
            Ok(Err(_)) => Err(InferError::Closed("stream closed before the answer".into())),
            Err(_) => {
                conn.forget(&r.id);
                Err(InferError::Timeout {
                    ms: c.timeout.as_millis(),
                })
            }
        }
    }
}

impl Client {
    /// The request for Triton or a KServe server: the tensor as raw bytes, or in the lease's
    /// shared-memory region.
    fn infer_request(
        &self,
        r: &Request,
        lease: Option<&super::shm_pool::Lease>,
    ) -> ModelInferRequest {
        let c = &self.cfg;
        let mut req = ModelInferRequest {
            model_name: c.model.clone(),
            model_version: c.model_version.clone(),
            id: r.id.clone(),
            inputs: vec![InferInputTensor {
                name: r.spec.input_name.clone(),
                datatype: r.spec.dtype.clone(),
                shape: r.spec.shape.clone(),
                ..Default::default()
            }],
            outputs: c
                .output_names
                .iter()
                .map(|n| InferRequestedOutputTensor {
                    name: n.clone(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: vec![r.data.clone()],
            ..Default::default()
        };
        if let Some(l) = lease {
            l.fill(&mut req);
        }
        req
    }

    /// One unary ModelInfer (transport=kserve). A connection that failed under it ends `conn`
    /// (the next request reconnects, with backoff) and counts as a stream that ended, so the
    /// request is sent once more.
    async fn unary(
        &self,
        k: &Kserve,
        conn: &Conn,
        req: ModelInferRequest,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let ms = self.cfg.timeout.as_millis();
        let mut call = tonic::Request::new(req);
        call.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout_at(deadline, k.model_infer(call)).await {
            Err(_) => Err(InferError::Timeout { ms }),
            Ok(Ok(resp)) => triton_to_output(resp),
            Ok(Err(s)) => {
                let lost =
                    s.code() == tonic::Code::Unavailable || triton_endpoint::connection_lost(&s);
                if s.code() == tonic::Code::DeadlineExceeded
                    || s.message().contains("Timeout expired")
                {
                    Err(InferError::Timeout { ms })
                } else if lost {
                    let why = InferError::status(&s, self.cfg.target.tls_enabled());
                    conn.fail_all(why.clone());
                    Err(InferError::StreamEnded(Box::new(why)))
                } else {
                    Err(InferError::Server {
                        code: s.code(),
                        message: s.message().to_string(),
                    })
                }
            }
        }
    }
}

/// A server without Triton's streaming extension: it has no ModelStreamInfer (UNIMPLEMENTED), or
/// its stream carries other messages (MLServer's answers `ModelInferResponse`s there).
fn not_streaming(url: &str, s: &tonic::Status) -> Option<InferError> {
    let other = s.message().contains("failed to decode Protobuf message")
        && s.message().contains("ModelStreamInferResponse");
    (s.code() == tonic::Code::Unimplemented || other).then(|| {
        InferError::Protocol(format!(
            "{url} does not offer Triton's streaming extension (ModelStreamInfer: {}); set \
             transport=kserve for plain KServe v2 ModelInfer",
            s.message()
        ))
    })
}

impl Conn {
    /// The stream is over: every pending request fails with `why`.
    fn fail_all(&self, why: InferError) {
        self.alive.store(false, Ordering::Release);
        if let Ok(mut e) = self.error.lock() {
            *e = Some(why.clone());
        }
        if let Ok(mut p) = self.pending.lock() {
            for (_, tx) in p.drain() {
                let _ = tx.send(Err(InferError::StreamEnded(Box::new(why.clone()))));
            }
        }
    }
}

//! The network side of `tritoninfer`: one bidirectional stream per element, to `triton-proxy`
//! (`multimodal.MultiModal/Chat`, binary outputs) or straight to Triton (`ModelStreamInfer`).
//! Responses are matched to requests by id. A broken stream fails its pending requests; the next
//! request reconnects, with exponential backoff between attempts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use triton_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use triton_proto::inference::{ModelConfigRequest, ModelInferRequest, ModelMetadataRequest};
use triton_proto::multimodal::multi_modal_client::MultiModalClient;
use triton_proto::multimodal::{DataPacket, Frame, Meta, ModelInfoRequest, data_packet::Payload};

/// The process-wide runtime of all `tritoninfer` instances.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tritoninfer-rt")
        .enable_all()
        .build()
        .expect("tokio runtime for tritoninfer")
});

const MAX_MESSAGE: usize = 64 * 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Proxy,
    Triton,
}

/// Everything the client needs; secrets are never printed (no Debug).
#[derive(Clone)]
pub struct ClientConfig {
    pub url: String,
    pub transport: Transport,
    pub model: String,
    pub model_version: String,
    pub output_names: Vec<String>,
    pub api_key: Option<String>,
    pub bearer_token: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub tls_domain: Option<String>,
    pub timeout: Duration,
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

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<InferOutput, String>>>>>;

#[derive(Clone)]
enum Sender {
    Proxy(mpsc::Sender<DataPacket>),
    Triton(mpsc::Sender<ModelInferRequest>),
}

#[derive(Clone)]
struct Conn {
    tx: Sender,
    pending: Pending,
    alive: Arc<AtomicBool>,
    /// Why the stream ended (set by the reader).
    error: Arc<Mutex<Option<String>>>,
}

struct ConnState {
    conn: Option<Conn>,
    next_attempt: Instant,
    backoff: Duration,
    last_error: String,
}

/// A per-element client.
pub struct Client {
    cfg: ClientConfig,
    state: tokio::sync::Mutex<ConnState>,
    /// The proxy control JSON for the last (input name, dtype, shape): the same every frame.
    note: Mutex<Option<(NoteKey, String)>>,
}

type NoteKey = (String, String, Vec<i64>);

/// One request: the tensor and how to describe it.
pub struct Request {
    pub id: String,
    pub input_name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub data: Bytes,
}

fn auth_hint(s: &tonic::Status) -> String {
    if s.code() == tonic::Code::Unauthenticated {
        format!(
            "authentication failed ({}); set the api-key or bearer-token property (or the DOMINO_API_KEY / GRPC_BEARER_TOKEN environment variable)",
            s.message()
        )
    } else if s.code() == tonic::Code::PermissionDenied {
        format!("permission denied: {}", s.message())
    } else {
        format!("{:?}: {}", s.code(), s.message())
    }
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
                last_error: String::new(),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    fn with_auth<T>(&self, mut req: tonic::Request<T>) -> tonic::Request<T> {
        if let Some(k) = self.cfg.api_key.as_deref().filter(|k| !k.is_empty())
            && let Ok(v) = k.parse()
        {
            req.metadata_mut().insert("x-domino-api-key", v);
        }
        if let Some(t) = self.cfg.bearer_token.as_deref().filter(|k| !k.is_empty())
            && let Ok(v) = format!("Bearer {t}").parse()
        {
            req.metadata_mut().insert("authorization", v);
        }
        req
    }

    async fn channel(&self) -> Result<Channel, String> {
        let c = &self.cfg;
        let url = if c.url.contains("://") {
            c.url.clone()
        } else {
            format!("http://{}", c.url)
        };
        let mut ep = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("url: '{}' is not a valid address ({e})", c.url))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let tls_wanted =
            url.starts_with("https://") || c.tls_ca_file.is_some() || c.tls_cert_file.is_some();
        if tls_wanted {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &c.tls_ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("tls-ca-file: cannot read {ca}: {e}"))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            match (&c.tls_cert_file, &c.tls_key_file) {
                (Some(cert), Some(key)) => {
                    let cert = std::fs::read(cert)
                        .map_err(|e| format!("tls-cert-file: cannot read {cert}: {e}"))?;
                    let key = std::fs::read(key)
                        .map_err(|e| format!("tls-key-file: cannot read {key}: {e}"))?;
                    tls = tls.identity(Identity::from_pem(cert, key));
                }
                (None, None) => {}
                _ => return Err("tls-cert-file and tls-key-file must be set together".into()),
            }
            if let Some(d) = &c.tls_domain {
                tls = tls.domain_name(d.clone());
            }
            ep = ep
                .tls_config(tls)
                .map_err(|e| format!("TLS configuration: {e}"))?;
        }
        ep.connect().await.map_err(|e| {
            let mut msg = format!("cannot connect to {}: {e}", c.url);
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            msg
        })
    }

    /// Model tensors and class names (ModelInfo through the proxy, ModelMetadata + ModelConfig
    /// from Triton).
    pub async fn describe(&self) -> Result<ModelDesc, String> {
        let ch = self.channel().await?;
        let c = &self.cfg;
        match c.transport {
            Transport::Proxy => {
                let mut mm = MultiModalClient::new(ch);
                let req = self.with_auth(tonic::Request::new(ModelInfoRequest {
                    model: c.model.clone(),
                    version: c.model_version.clone(),
                }));
                let info = mm
                    .model_info(req)
                    .await
                    .map_err(|s| auth_hint(&s))?
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
            Transport::Triton => {
                let mut t =
                    GrpcInferenceServiceClient::new(ch).max_decoding_message_size(MAX_MESSAGE);
                let meta = t
                    .model_metadata(self.with_auth(tonic::Request::new(ModelMetadataRequest {
                        name: c.model.clone(),
                        version: c.model_version.clone(),
                    })))
                    .await
                    .map_err(|s| auth_hint(&s))?
                    .into_inner();
                let cfg = t
                    .model_config(self.with_auth(tonic::Request::new(ModelConfigRequest {
                        name: c.model.clone(),
                        version: c.model_version.clone(),
                    })))
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().config);
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

    async fn connection(&self) -> Result<Conn, String> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.conn {
            if c.alive.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
            st.last_error = c
                .error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "stream closed".into());
            st.conn = None;
        }
        let now = Instant::now();
        if now < st.next_attempt {
            return Err(format!(
                "not connected to {} (next attempt in {} ms): {}",
                self.cfg.url,
                (st.next_attempt - now).as_millis(),
                st.last_error
            ));
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
                st.last_error = e.clone();
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let ch = self.channel().await?;
        let pending: Pending = Default::default();
        let alive = Arc::new(AtomicBool::new(true));
        let error = Arc::new(Mutex::new(None));
        let fail_all = {
            let (pending, alive, error) = (pending.clone(), alive.clone(), error.clone());
            move |why: String| {
                alive.store(false, Ordering::Release);
                if let Ok(mut e) = error.lock() {
                    *e = Some(why.clone());
                }
                if let Ok(mut p) = pending.lock() {
                    for (_, tx) in p.drain() {
                        let _ = tx.send(Err(why.clone()));
                    }
                }
            }
        };
        let tx = match self.cfg.transport {
            Transport::Proxy => {
                let (tx, rx) = mpsc::channel::<DataPacket>(64);
                let mut mm = MultiModalClient::new(ch)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE);
                let req = self.with_auth(tonic::Request::new(ReceiverStream::new(rx)));
                let pending = pending.clone();
                tokio::spawn(async move {
                    let why = match mm.chat(req).await {
                        Err(s) => auth_hint(&s),
                        Ok(resp) => {
                            let mut acks = resp.into_inner();
                            loop {
                                match acks.message().await {
                                    Ok(Some(ack)) => {
                                        let tx = pending
                                            .lock()
                                            .ok()
                                            .and_then(|mut p| p.remove(&ack.correlation_id));
                                        if let Some(tx) = tx {
                                            let _ = tx.send(ack_to_output(ack));
                                        }
                                    }
                                    Ok(None) => break "the proxy closed the stream".to_string(),
                                    Err(s) => break auth_hint(&s),
                                }
                            }
                        }
                    };
                    fail_all(why);
                });
                Sender::Proxy(tx)
            }
            Transport::Triton => {
                let (tx, rx) = mpsc::channel::<ModelInferRequest>(64);
                let mut t = GrpcInferenceServiceClient::new(ch)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE);
                let req = self.with_auth(tonic::Request::new(ReceiverStream::new(rx)));
                let pending = pending.clone();
                tokio::spawn(async move {
                    let why = match t.model_stream_infer(req).await {
                        Err(s) => auth_hint(&s),
                        Ok(resp) => {
                            let mut s = resp.into_inner();
                            loop {
                                match s.message().await {
                                    Ok(Some(r)) => {
                                        let resp = r.infer_response.unwrap_or_default();
                                        let tx = pending
                                            .lock()
                                            .ok()
                                            .and_then(|mut p| p.remove(&resp.id));
                                        if let Some(tx) = tx {
                                            let out = if r.error_message.is_empty() {
                                                triton_to_output(resp)
                                            } else {
                                                Err(format!("Triton: {}", r.error_message))
                                            };
                                            let _ = tx.send(out);
                                        } else if !r.error_message.is_empty() && resp.id.is_empty()
                                        {
                                            // An error without an id: fail the oldest request rather than hang it.
                                            let first = pending.lock().ok().and_then(|mut p| {
                                                let k = p.keys().min().cloned()?;
                                                p.remove(&k)
                                            });
                                            if let Some(tx) = first {
                                                let _ = tx.send(Err(format!(
                                                    "Triton: {}",
                                                    r.error_message
                                                )));
                                            }
                                        }
                                    }
                                    Ok(None) => break "Triton closed the stream".to_string(),
                                    Err(s) => break auth_hint(&s),
                                }
                            }
                        }
                    };
                    fail_all(why);
                });
                Sender::Triton(tx)
            }
        };
        Ok(Conn {
            tx,
            pending,
            alive,
            error,
        })
    }

    /// The control JSON the proxy reads for this request, built once per tensor description.
    fn control_note(&self, r: &Request) -> String {
        let key = (r.input_name.clone(), r.dtype.clone(), r.shape.clone());
        let mut cache = self.note.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, note)) = cache.as_ref()
            && *k == key
        {
            return note.clone();
        }
        let c = &self.cfg;
        let note = serde_json::json!({
            "model": c.model,
            "version": c.model_version,
            "inputs": [{"name": r.input_name, "shape": r.shape, "dtype": r.dtype, "from": "frame"}],
            "outputs": c.output_names,
            "timeout": c.timeout.as_secs_f64(),
            "binary": true,
        })
        .to_string();
        *cache = Some((key, note.clone()));
        note
    }

    /// Sends one request and waits for its answer, at most `timeout` from now.
    pub async fn infer(&self, r: Request) -> Result<InferOutput, String> {
        let deadline = tokio::time::Instant::now() + self.cfg.timeout;
        let conn = tokio::time::timeout_at(deadline, self.connection())
            .await
            .map_err(|_| {
                format!(
                    "timeout: no connection to {} within {} ms",
                    self.cfg.url,
                    self.cfg.timeout.as_millis()
                )
            })??;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = conn.pending.lock() {
            p.insert(r.id.clone(), tx);
        }
        let c = &self.cfg;
        let sent = match &conn.tx {
            Sender::Proxy(s) => {
                let note = self.control_note(&r);
                let p = DataPacket {
                    meta: Some(Meta {
                        correlation_id: r.id.clone(),
                        note,
                        stream_id: String::new(),
                        capture_ts_ns: 0,
                    }),
                    payload: Some(Payload::Frame(Frame { data: r.data })),
                };
                s.send(p).await.is_ok()
            }
            Sender::Triton(s) => {
                let req = ModelInferRequest {
                    model_name: c.model.clone(),
                    model_version: c.model_version.clone(),
                    id: r.id.clone(),
                    inputs: vec![InferInputTensor {
                        name: r.input_name,
                        datatype: r.dtype,
                        shape: r.shape,
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
                    raw_input_contents: vec![r.data],
                    ..Default::default()
                };
                s.send(req).await.is_ok()
            }
        };
        if !sent {
            if let Ok(mut p) = conn.pending.lock() {
                p.remove(&r.id);
            }
            return Err(conn
                .error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "stream closed".into()));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err("stream closed before the answer".into()),
            Err(_) => {
                if let Ok(mut p) = conn.pending.lock() {
                    p.remove(&r.id);
                }
                Err(format!(
                    "timeout: no answer within {} ms (timeout-ms)",
                    c.timeout.as_millis()
                ))
            }
        }
    }
}

fn ack_to_output(ack: triton_proto::multimodal::Ack) -> Result<InferOutput, String> {
    use base64::Engine;
    if ack.status_code != 0 {
        return Err(format!(
            "proxy: {:?}: {}",
            tonic::Code::from(ack.status_code),
            ack.status_message
        ));
    }
    let msg: serde_json::Value = serde_json::from_str(&ack.message)
        .map_err(|e| format!("proxy: Ack.message is not JSON: {e}"))?;
    let version = msg["version"].as_str().unwrap_or_default().to_string();
    let mut outputs: Vec<OutTensor> = ack
        .raw_outputs
        .into_iter()
        .map(|o| OutTensor {
            name: o.name,
            dtype: o.dtype,
            shape: o.shape,
            data: o.data,
        })
        .collect();
    if outputs.is_empty()
        && let Some(map) = msg["outputs"].as_object()
    {
        for (name, o) in map {
            let data = base64::engine::general_purpose::STANDARD
                .decode(o["b64"].as_str().unwrap_or_default())
                .map_err(|e| format!("proxy: output {name}: bad base64: {e}"))?;
            let shape = o["shape"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
                .unwrap_or_default();
            outputs.push(OutTensor {
                name: name.clone(),
                dtype: o["dtype"].as_str().unwrap_or_default().into(),
                shape,
                data: data.into(),
            });
        }
    }
    Ok(InferOutput {
        model_version: version,
        outputs,
    })
}

fn triton_to_output(r: triton_proto::inference::ModelInferResponse) -> Result<InferOutput, String> {
    if r.raw_output_contents.len() != r.outputs.len() {
        return Err(format!(
            "Triton answered {} outputs with {} raw buffers",
            r.outputs.len(),
            r.raw_output_contents.len()
        ));
    }
    Ok(InferOutput {
        model_version: r.model_version,
        outputs: r
            .outputs
            .into_iter()
            .zip(r.raw_output_contents)
            .map(|(o, data)| OutTensor {
                name: o.name,
                dtype: o.datatype,
                shape: o.shape,
                data,
            })
            .collect(),
    })
}

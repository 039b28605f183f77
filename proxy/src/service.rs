//! The `multimodal.MultiModal` service: one Ack per packet, in order, up to `max_inflight`
//! requests outstanding to Triton per stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Code, Request, Response, Status, Streaming};
use triton_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use triton_proto::inference::{ModelConfigRequest, ModelInferRequest, ModelMetadataRequest};
use triton_proto::multimodal::multi_modal_server::MultiModal;
use triton_proto::multimodal::{Ack, DataPacket, ModelInfoRequest, ModelInfoResponse, TensorInfo};

use crate::ack::{Outputs, Reply};
use crate::grpc::infer::{Answer, Infer};
use crate::rope::Rope;

use crate::auth::{Authenticator, Principal};
use crate::control::{self, Defaults, Packet, PacketError, Plan};
use crate::forward::{self, triton_status};
use crate::limits::{self, Activity, End, Limits};
use crate::metrics::Metrics;

/// Shared state of the service.
pub struct Inner {
    /// The Triton servers requests are balanced over.
    pub upstreams: Arc<crate::upstream::Pool>,
    /// `PROXY_BATCH_MAX` > 1: packets of any stream for the same model and shape are stacked.
    pub batcher: Option<Arc<crate::batch::Batcher>>,
    pub auth: Authenticator,
    pub defaults: Defaults,
    pub max_inflight: usize,
    pub max_message_bytes: usize,
    pub metrics: Arc<Metrics>,
    /// Stream limits and the streams open under them.
    pub limits: Arc<Limits>,
    /// Open client connections (for their age).
    pub conns: Arc<crate::conn::Registry>,
    /// Becomes true on shutdown: streams stop taking packets, finish in-flight ones and end.
    pub draining: watch::Receiver<bool>,
    /// Changes with every reload of `PROXY_KEYS_FILE`: each stream checks its key again.
    pub keys_reloaded: Arc<watch::Sender<u64>>,
    /// `PROXY_MAX_BUFFERED_BYTES`: the client bytes held, all streams.
    pub budget: crate::budget::Budget,
}

/// The tonic service.
#[derive(Clone)]
pub struct Service(pub Arc<Inner>);

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send>>;

/// Authentication as a tonic interceptor: every call of the service is checked once, before it
/// reaches a method, and the method finds its [`Principal`] in the request extensions.
#[derive(Clone)]
pub struct AuthInterceptor {
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
}

impl AuthInterceptor {
    /// The caller the request's credentials name, or UNAUTHENTICATED (counted and logged).
    pub fn admit(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        remote: Option<std::net::SocketAddr>,
    ) -> Result<Principal, Status> {
        self.auth.check(metadata).inspect_err(|_| {
            self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(?remote, "rejected a request without valid credentials");
        })
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.admit(req.metadata(), req.remote_addr())?;
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}

/// The caller admitted by [`AuthInterceptor`].
fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::internal("the service was mounted without its auth interceptor"))
}

#[tonic::async_trait]
impl MultiModal for Service {
    type ChatStream = AckStream;

    /// Never reached: `Chat` is answered by [`crate::grpc::chat`] before tonic's router, which
    /// keeps the tensors in the frames they came in.
    async fn chat(&self, _: Request<Streaming<DataPacket>>) -> Result<Response<AckStream>, Status> {
        Err(Status::internal(
            "Chat reached tonic's handler; the proxy serves it with grpc::chat::Route",
        ))
    }

    async fn model_info(
        &self,
        req: Request<ModelInfoRequest>,
    ) -> Result<Response<ModelInfoResponse>, Status> {
        let principal = principal(&req)?;
        let r = req.into_inner();
        let model = if r.model.is_empty() {
            self.0.defaults.model.clone()
        } else {
            r.model
        };
        if !principal.may_use(&model) {
            return Err(Status::permission_denied(not_allowed(&model, &principal)));
        }
        let upstream = forward::pick(&self.0.upstreams, None)?;
        let lease = upstream.lease();
        let mut c = lease.client();
        let meta = c
            .model_metadata(ModelMetadataRequest {
                name: model.clone(),
                version: r.version.clone(),
            })
            .await
            .map_err(|e| triton_status(e, &upstream.url))?
            .into_inner();
        // ModelConfig is Triton's extension: a plain KServe v2 server (MLServer) has none.
        let cfg = match c
            .model_config(ModelConfigRequest {
                name: model,
                version: r.version,
            })
            .await
        {
            Ok(r) => r.into_inner().config.unwrap_or_default(),
            Err(e) if e.code() == Code::Unimplemented => Default::default(),
            Err(e) => return Err(triton_status(e, &upstream.url)),
        };
        let info =
            |t: triton_proto::inference::model_metadata_response::TensorMetadata| TensorInfo {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            };
        Ok(Response::new(ModelInfoResponse {
            name: meta.name,
            versions: meta.versions,
            platform: meta.platform,
            inputs: meta.inputs.into_iter().map(info).collect(),
            outputs: meta.outputs.into_iter().map(info).collect(),
            parameters: cfg
                .parameters
                .into_iter()
                .map(|(k, v)| (k, v.string_value))
                .collect(),
            max_batch_size: cfg.max_batch_size,
        }))
    }
}

/// Counts an open stream for as long as it lives.
struct StreamGuard(Arc<Metrics>);

impl StreamGuard {
    fn new(m: Arc<Metrics>) -> Self {
        m.open_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(m)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
        tracing::info!("stream closed");
    }
}

fn client_stream_error(status: Status, max_bytes: usize) -> Status {
    if status.code() == Code::OutOfRange || status.message().contains("message length too large") {
        Status::resource_exhausted(format!(
            "packet larger than the proxy's limit of {max_bytes} bytes (PROXY_MAX_MESSAGE_BYTES); \
             expected smaller tensors, or raise the limit. Open a new stream to continue ({})",
            status.message()
        ))
    } else {
        status
    }
}

fn not_allowed(model: &str, p: &Principal) -> String {
    format!(
        "model: '{model}' is not allowed for this credential; expected one of {:?}",
        p.models.as_deref().unwrap_or_default()
    )
}

fn parameter_not_allowed(plan: &Plan, p: &Principal) -> String {
    let refused: Vec<&str> = (plan.parameters.iter())
        .map(|(k, _)| k.as_str())
        .filter(|k| !p.may_set(k))
        .collect();
    format!(
        "parameters.{}: not allowed for this credential (it may set {:?}); a key sets Triton \
         request parameters only where PROXY_ALLOWED_PARAMETERS or its params= in PROXY_KEYS_FILE \
         names them",
        refused.join(", parameters."),
        p.params
    )
}

/// Resolves when a reload of the keys file removed the stream's key; until then each reload
/// brings the key's model list up to date.
async fn revoked(inner: &Inner, principal: &std::sync::RwLock<Principal>) {
    let mut reloads = inner.keys_reloaded.subscribe();
    while reloads.changed().await.is_ok() {
        let mut p = principal.write().unwrap_or_else(|e| e.into_inner());
        match inner.auth.recheck(&p) {
            Some(now) => *p = now,
            None => return,
        }
    }
    std::future::pending().await
}

impl Inner {
    /// A `Chat` stream of `principal` from `remote`: one [`Reply`] per packet, in order, up to
    /// `max_inflight` at a time, then the status that ended it (a broken client stream, a limit,
    /// the drain) if any.
    pub fn chat(
        self: &Arc<Self>,
        principal: Principal,
        remote: Option<std::net::SocketAddr>,
        inbound: impl Stream<Item = Result<(Packet, crate::budget::Held), Status>> + Send + 'static,
    ) -> Result<impl Stream<Item = Result<Reply, Status>> + Send + 'static, Status> {
        let inner = self.clone();
        let slot = inner.limits.admit(&principal.label).map_err(|(limit, status)| {
            inner.metrics.streams_rejected.inc(limit);
            tracing::warn!(?remote, credential = %principal.label, limit, "refused a stream over the limit");
            status
        })?;
        tracing::info!(?remote, credential = %principal.label, "stream opened");
        // The key as the keys in force see it: a reload changes its models from the next
        // packet on, or revokes it.
        let principal = Arc::new(std::sync::RwLock::new(principal));
        let guard = StreamGuard::new(inner.metrics.clone());
        let activity = Arc::new(Activity::default());
        let age_deadline = inner.limits.age_end(inner.conns.born(remote));
        let end = Arc::new(std::sync::Mutex::new(None::<End>));
        let stop = {
            let (end, activity, inner) = (end.clone(), activity.clone(), inner.clone());
            let principal = principal.clone();
            async move {
                let why = tokio::select! {
                    why = limits::stop(
                        inner.draining.clone(),
                        activity,
                        inner.limits.idle,
                        age_deadline,
                    ) => why,
                    () = revoked(&inner, &principal) => End::Revoked,
                };
                if let Some(label) = why.label() {
                    inner.metrics.streams_ended.inc(label);
                    tracing::info!(
                        ?remote,
                        reason = label,
                        "ending the stream after its owed Acks"
                    );
                }
                if let Ok(mut e) = end.lock() {
                    *e = Some(why);
                }
            }
        };
        let last = {
            let (inner, end) = (inner.clone(), end.clone());
            futures::stream::once(async move {
                let why = end.lock().ok().and_then(|e| *e);
                why.and_then(|w| w.status(&inner.limits)).map(Err)
            })
            .filter_map(std::future::ready)
        };
        let n = inner.max_inflight.max(1);
        let max_bytes = inner.max_message_bytes;
        let acks = inbound
            .take_until(Box::pin(stop))
            .map(move |r| {
                let inner = inner.clone();
                let principal = principal.read().unwrap_or_else(|e| e.into_inner()).clone();
                let activity = activity.clone();
                activity.packet_in();
                async move {
                    let item = match r {
                        // The packet's bytes stay held against the budget until answered.
                        Ok((pkt, _held)) => Ok(inner.answer(&pkt, &principal).await),
                        // The client's stream broke (e.g. an oversized message): end ours with a
                        // status that says why, after the Acks already owed.
                        Err(status) => Err(client_stream_error(status, max_bytes)),
                    };
                    activity.ack_out();
                    item
                }
            })
            .buffered(n)
            .chain(last)
            .scan(false, |failed, item| {
                if *failed {
                    return std::future::ready(None);
                }
                *failed = item.is_err();
                std::future::ready(Some(item))
            })
            .map(move |item| {
                let _ = (&guard, &slot);
                item
            });
        Ok(acks)
    }

    /// The Ack for one packet; never fails.
    async fn answer(&self, packet: &Packet, principal: &Principal) -> Reply {
        let started = Instant::now();
        let correlation_id = packet
            .pkt
            .meta
            .as_ref()
            .map(|m| m.correlation_id.clone())
            .unwrap_or_default();
        let (result, model, triton_secs) = match control::plan(packet, &self.defaults) {
            Err(e) => (Err(e), String::new(), 0.0),
            Ok(plan) if !principal.may_use(&plan.model) => (
                Err(PacketError {
                    code: Code::PermissionDenied,
                    message: not_allowed(&plan.model, principal),
                }),
                plan.model,
                0.0,
            ),
            Ok(plan) if plan.parameters.iter().any(|(k, _)| !principal.may_set(k)) => (
                Err(PacketError {
                    code: Code::PermissionDenied,
                    message: parameter_not_allowed(&plan, principal),
                }),
                plan.model,
                0.0,
            ),
            Ok(plan) => {
                let t0 = Instant::now();
                self.metrics.inflight.fetch_add(1, Ordering::Relaxed);
                let r = self.infer(packet, &plan).await;
                self.metrics.inflight.fetch_sub(1, Ordering::Relaxed);
                let secs = t0.elapsed().as_secs_f64();
                self.metrics.triton_latency.observe(secs);
                (r, plan.model, secs)
            }
        };
        let reply = match result {
            Ok(Outputs { message, raw }) => {
                let (raw_outputs, raw) = raw.into_iter().unzip();
                Reply {
                    ack: Ack {
                        correlation_id,
                        status_code: 0,
                        status_message: String::new(),
                        message,
                        raw_outputs,
                    },
                    raw,
                }
            }
            Err(e) => {
                tracing::debug!(%correlation_id, code = ?e.code, error = %e.message, "packet failed");
                Reply {
                    ack: Ack {
                        correlation_id,
                        status_code: e.code as i32,
                        status_message: e.message,
                        message: String::new(),
                        raw_outputs: vec![],
                    },
                    raw: vec![],
                }
            }
        };
        self.metrics
            .request(&model, Code::from(reply.ack.status_code));
        self.metrics
            .proxy_latency
            .observe((started.elapsed().as_secs_f64() - triton_secs).max(0.0));
        reply
    }

    async fn infer(&self, packet: &Packet, plan: &Plan) -> Result<Outputs, PacketError> {
        let mut raw = Vec::with_capacity(plan.inputs.len());
        let mut inputs = Vec::with_capacity(plan.inputs.len());
        for (spec, range) in plan.inputs.iter().zip(&plan.ranges) {
            self.metrics
                .bytes_in
                .fetch_add(range.len() as u64, Ordering::Relaxed);
            raw.push(packet.data.slice(range.clone()));
            inputs.push(InferInputTensor {
                name: spec.name.clone(),
                datatype: spec.dtype.clone(),
                shape: spec.shape.clone(),
                ..Default::default()
            });
        }
        let req = ModelInferRequest {
            model_name: plan.model.clone(),
            model_version: plan.version.clone(),
            id: packet
                .pkt
                .meta
                .as_ref()
                .map(|m| m.correlation_id.clone())
                .unwrap_or_default(),
            inputs,
            outputs: plan
                .outputs
                .iter()
                .map(|n| InferRequestedOutputTensor {
                    name: n.clone(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: vec![],
            parameters: plan
                .parameters
                .iter()
                .map(|(k, v)| {
                    use triton_proto::inference::infer_parameter::ParameterChoice as P;
                    let choice = match v {
                        control::Param::Bool(b) => P::BoolParam(*b),
                        control::Param::Int(i) => P::Int64Param(*i),
                        control::Param::Double(d) => P::DoubleParam(*d),
                        control::Param::Str(s) => P::StringParam(s.clone()),
                    };
                    (
                        k.clone(),
                        triton_proto::inference::InferParameter {
                            parameter_choice: Some(choice),
                        },
                    )
                })
                .collect(),
        };
        let infer = Infer { req, raw };
        let answer = match &self.batcher {
            // Stacking copies the tensors into one batch anyway: join them first.
            Some(b) => {
                let req = infer.into_request();
                match crate::batch::key(&req) {
                    Some(key) => b
                        .submit(key, req, plan.timeout_secs)
                        .await
                        .map(Answer::from_response),
                    None => {
                        let infer = Infer::from_request(req);
                        forward::forward(&self.upstreams, infer, plan.timeout_secs).await
                    }
                }
            }
            None => forward::forward(&self.upstreams, infer, plan.timeout_secs).await,
        };
        self.encode(answer.map_err(PacketError::from)?, plan.binary)
    }

    fn encode(&self, answer: Answer, binary: bool) -> Result<Outputs, PacketError> {
        let bytes: usize = answer.raw.iter().map(Rope::len).sum();
        let r = crate::ack::ack_outputs(answer, binary)?;
        self.metrics
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(r)
    }
}

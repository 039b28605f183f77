//! [`Client`]: one logical connection to a server for one user (an element, a camera).
//! Requests are matched to answers by id. A broken link fails its pending requests; the next
//! request reconnects, with exponential backoff between attempts, and a request whose link ended
//! before its answer is sent once more within its deadline. After the server ended the stream
//! itself (a graceful stop: the proxy's drain on SIGTERM), requests wait for a connection, each
//! within its own deadline and for [`RESTART_WAIT`] at most, instead of failing at once: a restart
//! on the same address quicker than that, and than `timeout-ms`, costs no frame.
//!
//! Address, TLS and credentials come from [`triton_endpoint`], shared with the runner and the
//! proxy; errors are [`InferError`] values, whose text is what the element's result meta and
//! messages show.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use triton_endpoint::Auth;
use triton_proto::inference::ModelInferRequest;
use triton_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};

use crate::shm::Lease;
use crate::transport::{self, Link, Sender, proxy::NoteCache};
use crate::{ClientConfig, InferError, MAX_MESSAGE, Outcome, Request, Transport};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long after the server ended our stream itself requests wait for it to take connections
/// again (a restart, a rolling update behind the same address), trying every [`BACKOFF_MIN`].
/// A server not back by then is down: requests fail at once again, with backoff.
pub const RESTART_WAIT: Duration = Duration::from_secs(5);
/// During that wait, one connection attempt may take this long: a name whose DNS record went
/// with the stopped server (podman's aardvark-dns drops it) can hang a lookup for many seconds,
/// and the next attempt finds the new one.
const RESTART_ATTEMPT: Duration = Duration::from_secs(1);

pub(crate) type Intercepted = InterceptedService<Channel, Auth>;

struct LinkState {
    link: Option<Link>,
    next_attempt: Instant,
    backoff: Duration,
    last_error: Option<InferError>,
    /// Until when a server that ended our stream itself is expected back.
    back_by: Option<Instant>,
}

/// A client: one link at a time, opened on the first request and again after it ends.
pub struct Client {
    cfg: ClientConfig,
    state: tokio::sync::Mutex<LinkState>,
    /// The proxy's control JSON for the last input description: the same every frame.
    notes: NoteCache,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Client {
        Client {
            cfg,
            notes: NoteCache::default(),
            state: tokio::sync::Mutex::new(LinkState {
                link: None,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
                last_error: None,
                back_by: None,
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub(crate) async fn channel(&self) -> Result<Intercepted, InferError> {
        let ch = self.cfg.target.connect().await?;
        Ok(InterceptedService::new(ch, self.cfg.auth.clone()))
    }

    async fn link(&self) -> Result<Link, InferError> {
        let mut st = self.state.lock().await;
        if let Some(l) = &st.link {
            if l.is_alive() {
                return Ok(l.clone());
            }
            let why = l.ended_because();
            if matches!(why, InferError::EndedByServer(_)) {
                st.back_by = Some(Instant::now() + RESTART_WAIT);
                st.next_attempt = Instant::now();
            }
            st.last_error = Some(why);
            st.link = None;
        }
        let now = Instant::now();
        if st.back_by.is_some_and(|b| now >= b) {
            st.back_by = None;
        }
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
        let opened = if st.back_by.is_some() {
            tokio::time::timeout(RESTART_ATTEMPT, self.open())
                .await
                .unwrap_or_else(|_| {
                    Err(InferError::ConnectTimeout {
                        url: triton_endpoint::shown_url(&self.cfg.target.url),
                        ms: RESTART_ATTEMPT.as_millis(),
                    })
                })
        } else {
            self.open().await
        };
        match opened {
            Ok(l) => {
                st.link = Some(l.clone());
                st.backoff = BACKOFF_MIN;
                st.back_by = None;
                Ok(l)
            }
            Err(e) => {
                if st.back_by.is_some() {
                    st.next_attempt = Instant::now() + BACKOFF_MIN;
                } else {
                    st.next_attempt = Instant::now() + st.backoff;
                    st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                }
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// A link; while a server that ended our stream itself is expected back, tries again after
    /// each backoff until it answers, that wait is over or `deadline` would pass.
    async fn link_within(&self, deadline: tokio::time::Instant) -> Result<Link, InferError> {
        loop {
            let err = match self.link().await {
                Ok(l) => return Ok(l),
                Err(e) => e,
            };
            let st = self.state.lock().await;
            let Some(back_by) = st.back_by else {
                return Err(err);
            };
            let next = tokio::time::Instant::from_std(st.next_attempt);
            drop(st);
            if next >= deadline.min(tokio::time::Instant::from_std(back_by)) {
                return Err(err);
            }
            tokio::time::sleep_until(next).await;
        }
    }

    async fn open(&self) -> Result<Link, InferError> {
        let ch = self.channel().await?;
        let tls = self.cfg.target.tls_enabled();
        Ok(match self.cfg.transport {
            Transport::Proxy => transport::proxy::open(ch, tls),
            Transport::TritonStream => {
                transport::stream::open(ch, self.cfg.target.url.clone(), tls)
            }
            Transport::KserveUnary => Link::new(Sender::Unary(Box::new(
                transport::unary::Kserve::new(ch, &self.cfg.kserve_service, MAX_MESSAGE),
            ))),
        })
    }

    /// Sends one request and waits for its answer, at most `timeout` from now. A request whose
    /// stream ended before its answer (it may never have been processed) is sent once more on a
    /// new stream, within the same deadline: a proxy that ends streams for their connection's
    /// age, an idle timeout or a shutdown costs no frame.
    pub async fn infer(&self, r: Request) -> Outcome {
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

    async fn attempt(&self, r: &Request, deadline: tokio::time::Instant) -> Outcome {
        let c = &self.cfg;
        let link = tokio::time::timeout_at(deadline, self.link_within(deadline))
            .await
            .map_err(|_| InferError::ConnectTimeout {
                url: triton_endpoint::shown_url(&c.target.url),
                ms: c.timeout.as_millis(),
            })??;
        // With shared memory the tensor is in a region before the request is sent.
        let lease = match (&link.tx, &c.shm) {
            (Sender::Stream(_) | Sender::Unary(_), Some(pool)) => Some(
                tokio::time::timeout_at(deadline, pool.lease(&r.desc, &r.data, &c.output_names))
                    .await
                    .map_err(|_| InferError::Timeout {
                        ms: c.timeout.as_millis(),
                    })??,
            ),
            _ => None,
        };
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = link.pending.lock() {
            p.insert(r.id.clone(), tx);
        }
        let sent = match &link.tx {
            Sender::Proxy(s) => {
                let note = self.notes.get(c, &r.desc);
                s.send(transport::proxy::packet(r, note)).await.is_ok()
            }
            Sender::Stream(s) => s.send(self.infer_request(r, lease.as_ref())).await.is_ok(),
            Sender::Unary(k) => {
                link.forget(&r.id);
                let req = self.infer_request(r, lease.as_ref());
                let limits = (c.timeout, c.target.tls_enabled());
                let res = transport::unary::call(k, &link, req, deadline, limits).await;
                return match lease {
                    Some(l) if !matches!(res, Err(InferError::Timeout { .. })) => l.finish(res),
                    _ => res,
                };
            }
        };
        if !sent {
            link.forget(&r.id);
            return Err(InferError::StreamEnded(Box::new(link.ended_because())));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(res)) => match lease {
                Some(l) => l.finish(res),
                None => res,
            },
            Ok(Err(_)) => Err(InferError::Closed("stream closed before the answer".into())),
            Err(_) => {
                link.forget(&r.id);
                Err(InferError::Timeout {
                    ms: c.timeout.as_millis(),
                })
            }
        }
    }

    /// The request for Triton or a KServe server: the tensor as raw bytes, or in the lease's
    /// shared-memory region.
    fn infer_request(&self, r: &Request, lease: Option<&Lease>) -> ModelInferRequest {
        let c = &self.cfg;
        let mut req = ModelInferRequest {
            model_name: c.model.clone(),
            model_version: c.model_version.clone(),
            id: r.id.clone(),
            inputs: vec![InferInputTensor {
                name: r.desc.input_name.clone(),
                datatype: r.desc.dtype.clone(),
                shape: r.desc.shape.clone(),
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
}

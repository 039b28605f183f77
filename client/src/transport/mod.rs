//! How a request travels: one module per transport, each opening a [`Link`] on a channel.
//!
//! * [`proxy`]: triton-proxy's `multimodal.MultiModal/Chat` (packets with a control note, Acks).
//! * [`stream`]: Triton's `ModelStreamInfer` (KServe v2 requests on one stream).
//! * [`unary`]: plain KServe v2 `ModelInfer`, one call per request, on any service name.
//!
//! A new transport is a module here with an `open` (or a call) and one arm of [`Sender`]; the
//! [`crate::Client`] keeps reconnecting, deadlines and the resend for all of them.

pub mod proxy;
pub mod stream;
pub mod unary;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use triton_proto::inference::ModelInferRequest;
use triton_proto::multimodal::DataPacket;

use crate::{InferError, Outcome};

/// Requests sent on a link and not answered yet, by id.
pub(crate) type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>;

/// Where a link's requests go.
#[derive(Clone)]
pub(crate) enum Sender {
    Proxy(mpsc::Sender<DataPacket>),
    Stream(mpsc::Sender<ModelInferRequest>),
    Unary(Box<unary::Kserve>),
}

/// One open connection of a client: its sender, the requests waiting for an answer, and why it
/// ended once it has.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) tx: Sender,
    pub(crate) pending: Pending,
    alive: Arc<AtomicBool>,
    /// Why the stream ended (set by the reader).
    error: Arc<Mutex<Option<InferError>>>,
}

impl Link {
    /// A link for `tx`, alive until [`Link::fail_all`].
    pub(crate) fn new(tx: Sender) -> Link {
        Link {
            tx,
            pending: Default::default(),
            alive: Arc::new(AtomicBool::new(true)),
            error: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn ended_because(&self) -> InferError {
        self.error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| InferError::Closed("stream closed".into()))
    }

    /// Stops waiting for `id` (sent nowhere, timed out, or answered by a unary call).
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(id);
        }
    }

    /// The link is over: every pending request fails with `why`.
    pub(crate) fn fail_all(&self, why: InferError) {
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

/// What one message read from a response stream means.
pub enum StreamItem {
    /// The outcome of request `id`.
    For(String, Outcome),
    /// An error that names no request: it fails the oldest one rather than leave it hanging.
    Orphan(InferError),
}

/// The one reader loop of both streams: hands each message's outcome to its pending request
/// until the stream ends, and returns why it ended (`explain` may say it better than the
/// status).
pub(crate) async fn read_stream<M>(
    mut stream: tonic::Streaming<M>,
    pending: &Pending,
    (peer, tls): (&str, bool),
    mut item: impl FnMut(M) -> StreamItem,
    explain: impl Fn(&tonic::Status) -> Option<InferError>,
) -> InferError {
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                let (tx, outcome) = match item(m) {
                    StreamItem::For(id, outcome) => {
                        (pending.lock().ok().and_then(|mut p| p.remove(&id)), outcome)
                    }
                    StreamItem::Orphan(e) => {
                        let oldest = pending.lock().ok().and_then(|mut p| {
                            let k = p.keys().min().cloned()?;
                            p.remove(&k)
                        });
                        (oldest, Err(e))
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(outcome);
                }
            }
            Ok(None) => return InferError::EndedByServer(format!("{peer} closed the stream")),
            Err(s) => return explain(&s).unwrap_or_else(|| InferError::status(&s, tls)),
        }
    }
}

//! Why a request got no answer: one cloneable error type whose text is what the
//! result meta and the element's messages show.

use std::sync::Arc;

use triton_endpoint::Names;

/// Why a request got no answer. Cloneable: one broken stream fails every pending request with
/// the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferError {
    /// Address, TLS, credentials or a refusal by the server (see [`triton_endpoint::Error`]).
    #[error(transparent)]
    Endpoint(Arc<triton_endpoint::Error>),
    /// Reconnecting is backing off after a failure.
    #[error("not connected to {url} (next attempt in {in_ms} ms): {last}")]
    Backoff {
        url: String,
        in_ms: u128,
        last: Box<InferError>,
    },
    #[error("timeout: no connection to {url} within {ms} ms")]
    ConnectTimeout { url: String, ms: u128 },
    #[error("timeout: no answer within {ms} ms (timeout-ms)")]
    Timeout { ms: u128 },
    /// The stream ended (the text says who ended it).
    #[error("{0}")]
    Closed(String),
    /// The server ended the stream itself, with OK: a graceful stop (the proxy's drain) or an
    /// idle or age limit. [`Client::infer`] expects it back on the same address for a while.
    #[error("{0}")]
    EndedByServer(String),
    /// Triton reported an error for this request.
    #[error("Triton: {0}")]
    Triton(String),
    /// A KServe v2 server (transport=kserve) refused this request.
    #[error("server: {code:?}: {message}")]
    Server { code: tonic::Code, message: String },
    /// The proxy answered this packet with an error status.
    #[error("proxy: {code:?}: {message}")]
    Proxy { code: tonic::Code, message: String },
    /// An answer we cannot read.
    #[error("{0}")]
    Protocol(String),
    /// The stream ended before this request's answer (the server ended it: connection age, idle
    /// timeout, shutdown; or the connection broke). [`Client::infer`] sends such a request once
    /// more on a new stream before it reports the inner error.
    #[error("{0}")]
    StreamEnded(Box<InferError>),
    /// `shared-memory=system` could not be set up or used (the text says why and what to do).
    #[error("{0}")]
    SharedMemory(String),
    /// Shared memory met a change: an output did not fit the room set aside for it (it goes as
    /// bytes from now on), or Triton restarted and forgot our regions (new ones are registered).
    /// [`Client::infer`] sends the request once more.
    #[error("{0}")]
    Resend(Box<InferError>),
}

impl From<triton_endpoint::Error> for InferError {
    fn from(e: triton_endpoint::Error) -> Self {
        InferError::Endpoint(Arc::new(e))
    }
}

impl InferError {
    /// The server's own words about a request it refused (Triton's in-band error, or a KServe
    /// server's status).
    pub fn server_message(&self) -> Option<&str> {
        match self {
            InferError::Triton(m) | InferError::Server { message: m, .. } => Some(m),
            _ => None,
        }
    }

    pub fn status(s: &tonic::Status, tls: bool) -> InferError {
        triton_endpoint::Error::from_status_on(s, &Names::ELEMENT, tls).into()
    }
}

//! gst-triton's inference client, with no GStreamer in it: what `tritoninfer`, the runner's
//! preflight, the tests and the benchmarks use to talk to a server.
//!
//! * [`Client`]: one logical connection per user (an element, a camera): requests matched to
//!   answers by id, reconnect with backoff, one resend of what an ended stream left unanswered.
//! * [`transport`]: the three ways a request travels, one module each — `proxy` (triton-proxy's
//!   `multimodal.MultiModal/Chat`), `stream` (Triton's `ModelStreamInfer`) and `unary` (plain
//!   KServe v2 `ModelInfer`, any server, any service name).
//! * [`describe`]: what a model says about itself ([`ModelDesc`]); [`readiness`]: is the server
//!   and the model ready (the runner's preflight).
//! * [`answer`]: what a server sent back, turned into an [`Answer`] (proxy `Ack`s, stream
//!   responses, unary responses with raw or typed contents).
//! * [`shm`]: `shared-memory=system` — POSIX regions registered with Triton, leased per request.
//! * [`labels`]: class names from a file or a model parameter.
//! * `mock` (feature `mock`): an in-process KServe v2 server with scripted answers.
//!
//! Words, each with one meaning: a **request** is one tensor sent ([`Request`], described by
//! an [`InputDesc`]); its **answer** is the output tensors ([`Answer`]) or an [`InferError`]
//! ([`Outcome`] is either); an **Ack** is the proxy's wire message that carries an answer; a
//! **link** is one open connection of a [`Client`].

pub mod answer;
mod client;
pub mod describe;
mod error;
pub mod labels;
#[cfg(any(test, feature = "mock"))]
pub mod mock;
pub mod readiness;
mod request;
pub mod shm;
pub mod transport;

#[cfg(test)]
mod tests;

pub use client::{Client, RESTART_WAIT};
pub use describe::ModelDesc;
pub use error::InferError;
pub use request::{Answer, ClientConfig, InputDesc, OutTensor, Outcome, Request, Transport};

/// Message size limit in both directions (a 1280×1280 FP32 tensor is 19.7 MB).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

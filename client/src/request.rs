//! What a request is, what its answer is, and how a [`crate::Client`] is configured.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use triton_endpoint::{Auth, Target};

use crate::InferError;
use crate::shm::ShmPool;

/// How requests travel (the element's `transport` property names them `proxy`, `triton` and
/// `kserve`). Both direct transports speak KServe v2; they differ in streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// triton-proxy's `multimodal.MultiModal/Chat`: one bidirectional stream of packets and Acks.
    Proxy,
    /// Triton's streaming extension of KServe v2, `ModelStreamInfer`: one bidirectional stream.
    TritonStream,
    /// Plain KServe v2 `ModelInfer`, one unary call per request (pipelined by the caller), to any
    /// KServe v2 server under any service name.
    KserveUnary,
}

/// Everything a client needs; secrets live inside [`Auth`], which never prints them.
#[derive(Clone)]
pub struct ClientConfig {
    pub target: Target,
    pub auth: Auth,
    pub transport: Transport,
    /// The gRPC service of [`Transport::KserveUnary`] (`inference.GRPCInferenceService` by
    /// default).
    pub kserve_service: String,
    pub model: String,
    pub model_version: String,
    pub output_names: Vec<String>,
    /// The deadline of one request, resend included.
    pub timeout: Duration,
    /// `shared-memory=system` (the two direct transports): tensors go through these regions.
    pub shm: Option<Arc<ShmPool>>,
}

/// How a request's input tensor is described; the same `Arc` for every frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDesc {
    pub input_name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// One request: the tensor and how to describe it.
pub struct Request {
    /// Matches the answer to the request; unique among the requests in flight.
    pub id: String,
    pub desc: Arc<InputDesc>,
    pub data: Bytes,
}

/// One output tensor of an answer, as raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct OutTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub data: Bytes,
}

/// What the server computed for one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub model_version: String,
    pub outputs: Vec<OutTensor>,
}

/// A request's end: its answer, or why there is none.
pub type Outcome = Result<Answer, InferError>;

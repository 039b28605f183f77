//! `ModelInfer` to one upstream with the tensors as ropes: the request's `raw_input_contents`
//! are the client's frames, and the answer's `raw_output_contents` are Triton's.

use std::time::Duration;

use http_body_util::BodyExt;
use prost::Message;
use tonic::Status;
use tonic::codegen::Service;
use tonic::transport::Channel;
use triton_proto::inference::{ModelInferRequest, ModelInferResponse};

use super::{Deframer, Parts, http_status, prefixed};
use crate::rope::{self, Out, Rope};

/// `ModelInferRequest.raw_input_contents`.
const RAW_INPUT: u32 = 7;
/// `ModelInferResponse.raw_output_contents`.
const RAW_OUTPUT: u32 = 6;
const PATH: &str = "/inference.GRPCInferenceService/ModelInfer";

/// A request whose tensors are held apart (`req.raw_input_contents` is empty).
#[derive(Clone, Debug, Default)]
pub struct Infer {
    pub req: ModelInferRequest,
    pub raw: Vec<Rope>,
}

/// An answer whose tensors are held apart (`resp.raw_output_contents` is empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    pub resp: ModelInferResponse,
    pub raw: Vec<Rope>,
}

/// Tensors as ropes (no copy).
fn ropes(raw: Vec<bytes::Bytes>) -> Vec<Rope> {
    raw.into_iter().map(Rope::from).collect()
}

/// Tensors joined (a copy where a tensor is in several pieces).
fn joined(raw: &[Rope]) -> Vec<bytes::Bytes> {
    raw.iter().map(Rope::to_bytes).collect()
}

impl Infer {
    pub fn from_request(mut req: ModelInferRequest) -> Self {
        let raw = ropes(std::mem::take(&mut req.raw_input_contents));
        Infer { req, raw }
    }

    /// A request with its tensors joined.
    pub fn into_request(self) -> ModelInferRequest {
        let mut req = self.req;
        req.raw_input_contents = joined(&self.raw);
        req
    }

    /// The gRPC message: the small fields copied, then each tensor as its own pieces.
    pub fn encode(&self) -> Rope {
        let mut out = Out::default();
        self.req
            .encode(out.small())
            .expect("a BytesMut grows as needed");
        for r in &self.raw {
            out.field(RAW_INPUT, &[], r);
        }
        prefixed(out.finish())
    }
}

impl Answer {
    pub fn from_response(mut resp: ModelInferResponse) -> Self {
        let raw = ropes(std::mem::take(&mut resp.raw_output_contents));
        Answer { resp, raw }
    }

    /// An answer with its tensors joined.
    pub fn into_response(self) -> ModelInferResponse {
        let mut resp = self.resp;
        resp.raw_output_contents = joined(&self.raw);
        resp
    }

    /// Reads a `ModelInferResponse`, its tensors left in the pieces they came in.
    pub fn decode(msg: Rope) -> Result<Self, Status> {
        let bad = |e: String| Status::internal(format!("Triton's ModelInferResponse: {e}"));
        let s = rope::split(msg, &[&[RAW_OUTPUT]]).map_err(|e| bad(e.to_string()))?;
        let resp = ModelInferResponse::decode(s.small.freeze()).map_err(|e| bad(e.to_string()))?;
        Ok(Answer {
            resp,
            raw: s.large.into_iter().map(|(_, r)| r).collect(),
        })
    }
}

/// `grpc-timeout` in milliseconds (at most 8 digits).
fn timeout_header(t: Duration) -> String {
    format!("{}m", t.as_millis().clamp(1, 99_999_999))
}

/// One `ModelInfer` on `channel`, answered within `timeout` (the server is told so), with
/// answers up to `max` bytes. Errors are the statuses tonic's client would give: a lost
/// connection, the server's status, a deadline.
pub async fn call(
    mut channel: Channel,
    infer: &Infer,
    timeout: Duration,
    max: usize,
) -> Result<Answer, Status> {
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(PATH)
        .version(http::Version::HTTP_2)
        .header(http::header::TE, "trailers")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("grpc-timeout", timeout_header(timeout))
        .body(tonic::body::Body::new(Parts::new(infer.encode())))
        .expect("a request of constant parts");
    let lost = |e: tonic::transport::Error| Status::from_error(Box::new(e));
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(lost)?;
    let response = channel.call(request).await.map_err(lost)?;
    if let Some(s) = Status::from_header_map(response.headers()) {
        // Trailers-only: an error before any message.
        return Err(if s.code() == tonic::Code::Ok {
            Status::internal("Triton answered OK without a message")
        } else {
            s
        });
    }
    if response.status() != http::StatusCode::OK {
        return Err(http_status(response.status()));
    }
    let mut body = response.into_body();
    let mut frames = Deframer::new(max);
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => frames.push(data),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    match trailers.as_ref().and_then(Status::from_header_map) {
        Some(s) if s.code() != tonic::Code::Ok => return Err(s),
        Some(_) => {}
        None => {
            return Err(Status::internal(
                "Triton's answer ended without a grpc-status",
            ));
        }
    }
    let msg = frames
        .message()?
        .ok_or_else(|| Status::internal("Triton answered OK without a message"))?;
    if frames.pending() > 0 {
        return Err(Status::internal(
            "Triton answered more than one message to a unary call",
        ));
    }
    Answer::decode(msg)
}

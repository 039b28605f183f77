//! `multimodal.MultiModal/Chat` served before tonic's router: the request body's DATA frames are
//! cut into `DataPacket`s whose payload stays those frames, and each Ack is sent as its small
//! fields followed by Triton's own frames. The service's other methods go on to tonic.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};
use triton_proto::multimodal::DataPacket;
use triton_proto::multimodal::multi_modal_server::MultiModalServer;

use super::Deframer;
use crate::budget::{Budget, Held};
use crate::control::Packet;
use crate::rope::{self, Rope};
use crate::service::{AuthInterceptor, Inner, Service as ChatService};

const PATH: &str = "/multimodal.MultiModal/Chat";
/// `DataPacket.frame.data`, `.image.data`, `.video.data`.
const PAYLOADS: [&[u32]; 3] = [&[2, 1], &[3, 1], &[4, 1]];

/// The most protobuf fields (at every level) a `DataPacket` may have: its meta and one payload
/// are a dozen, a newer client's extra fields a few more. A packet of millions of tiny fields
/// would hold a worker for its whole scan; it is refused after this many.
const MAX_PACKET_FIELDS: usize = 4096;

/// The `multimodal.MultiModal` service: `Chat` here, the rest by `rest` (tonic's server).
#[derive(Clone)]
pub struct Route<S> {
    pub inner: Arc<Inner>,
    pub auth: AuthInterceptor,
    pub rest: S,
}

impl<S> NamedService for Route<S> {
    const NAME: &'static str = <MultiModalServer<ChatService> as NamedService>::NAME;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<S, B> tonic::codegen::Service<http::Request<Body>> for Route<S>
where
    S: tonic::codegen::Service<
            http::Request<Body>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.rest.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> BoxFuture {
        if req.uri().path() == PATH {
            let response = chat(&self.inner, &self.auth, req);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let fut = self.rest.call(req);
        Box::pin(async move { fut.await.map(|r| r.map(Body::new)) })
    }
}

/// Answers one `Chat` call: its Acks as they are ready, then the status that ended it.
fn chat(
    inner: &Arc<Inner>,
    auth: &AuthInterceptor,
    req: http::Request<Body>,
) -> http::Response<Body> {
    let remote = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr);
    let metadata = tonic::metadata::MetadataMap::from_headers(req.headers().clone());
    let principal = match auth.admit(&metadata, remote) {
        Ok(p) => p,
        Err(s) => return s.into_http(),
    };
    let packets = packets(
        req.into_body(),
        inner.max_message_bytes,
        inner.budget.clone(),
        principal.label.as_str().into(),
    );
    let replies = match inner.chat(principal, remote, packets) {
        Ok(r) => r,
        Err(s) => return s.into_http(),
    };
    let max = inner.max_message_bytes;
    let frames = replies
        .map(move |r| match r {
            Ok(reply) => {
                let msg = reply.encode();
                if msg.len() - 5 > max {
                    return Err(Status::resource_exhausted(format!(
                        "an Ack of {} bytes is over the proxy's limit of {max} bytes \
                         (PROXY_MAX_MESSAGE_BYTES); expected smaller outputs, or raise the limit",
                        msg.len() - 5
                    )));
                }
                Ok(msg)
            }
            Err(s) => Err(s),
        })
        .flat_map(|r| {
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = match r {
                Ok(msg) => msg.parts().cloned().map(Frame::data).map(Ok).collect(),
                Err(s) => vec![Ok(Frame::trailers(trailers(&s)))],
            };
            futures::stream::iter(frames)
        });
    // OK, unless an error's trailers were sent already: the body ends at the first trailers.
    let end = futures::stream::once(async { Ok(Frame::trailers(trailers(&Status::ok("")))) });
    let body = StreamBody::new(frames.chain(end).scan(false, |done, f| {
        if *done {
            return std::future::ready(None);
        }
        *done = matches!(&f, Ok(f) if f.is_trailers());
        std::future::ready(Some(f))
    }));
    let mut response = http::Response::new(Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The trailers that end a stream with `s`.
fn trailers(s: &Status) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    if s.add_header(&mut h).is_err() {
        h.insert(
            Status::GRPC_STATUS,
            http::HeaderValue::from(s.code() as i32),
        );
    }
    h
}

/// The client's packets: each gRPC message of the body read as a `DataPacket` whose payload
/// stays in the frames it came in, with its bytes held against the `budget` from its header on.
/// A body that breaks, a message that is not a `DataPacket`, one over `max` bytes or one the
/// budget has no room for ends the packets with an error.
fn packets(
    body: Body,
    max: usize,
    budget: Budget,
    key: std::sync::Arc<str>,
) -> impl Stream<Item = Result<(Packet, Held), Status>> + Send + 'static {
    futures::stream::unfold(
        Some((body, Deframer::new(max), None::<Held>)),
        move |state| {
            let (budget, key) = (budget.clone(), key.clone());
            async move {
                let (mut body, mut frames, mut held) = state?;
                loop {
                    match frames.message() {
                        Ok(Some(msg)) => {
                            let held = match held
                                .take()
                                .map_or_else(|| budget.hold(&key, msg.len()), Ok)
                            {
                                Ok(h) => h,
                                Err(s) => return Some((Err(s), None)),
                            };
                            let packet = decode(msg).map(|p| (p, held));
                            return Some((packet, Some((body, frames, None))));
                        }
                        Ok(None) => {}
                        Err(s) => return Some((Err(s), None)),
                    }
                    // Room for the message whose header is here, before its body is read.
                    if held.is_none()
                        && let Some(len) = frames.declared()
                    {
                        match budget.hold(&key, len) {
                            Ok(h) => held = Some(h),
                            Err(s) => return Some((Err(s), None)),
                        }
                    }
                    match body.frame().await {
                        Some(Ok(f)) => {
                            if let Ok(data) = f.into_data() {
                                frames.push(data);
                            }
                        }
                        Some(Err(s)) => return Some((Err(s), None)),
                        None if frames.pending() > 0 => {
                            let s = Status::new(
                                Code::Internal,
                                format!(
                                    "the stream ended inside a message ({} bytes of it received)",
                                    frames.pending()
                                ),
                            );
                            return Some((Err(s), None));
                        }
                        None => return None,
                    }
                }
            }
        },
    )
}

/// One `DataPacket`, its payload held apart.
pub(super) fn decode(msg: Rope) -> Result<Packet, Status> {
    let bad = |e: String| {
        Status::internal(format!(
            "failed to decode Protobuf message: DataPacket: {e}"
        ))
    };
    let s = rope::split_limited(msg, &PAYLOADS, MAX_PACKET_FIELDS).map_err(|e| {
        if e.0 == rope::TOO_MANY_FIELDS {
            Status::invalid_argument(format!(
                "a DataPacket of more than {MAX_PACKET_FIELDS} protobuf fields is refused \
                 (expected meta and one payload: a dozen fields)"
            ))
        } else {
            bad(e.to_string())
        }
    })?;
    let pkt = DataPacket::decode(s.small.freeze()).map_err(|e| bad(e.to_string()))?;
    // The bytes of the payload the decoder kept (a oneof: the last one wins, and within it the
    // last `data`).
    use triton_proto::multimodal::data_packet::Payload;
    let kept = match &pkt.payload {
        Some(Payload::Frame(_)) => Some(0),
        Some(Payload::Image(_)) => Some(1),
        Some(Payload::Video(_)) => Some(2),
        _ => None,
    };
    let data = s
        .large
        .into_iter()
        .filter(|(i, _)| Some(*i) == kept)
        .last()
        .map(|(_, r)| r)
        .unwrap_or_default();
    Ok(Packet { pkt, data })
}

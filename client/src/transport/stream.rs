//! Triton's `ModelStreamInfer`: KServe v2 requests on one bidirectional stream, answers matched
//! by request id; a stream error without an id fails the oldest request.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use triton_endpoint::Auth;
use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use triton_proto::inference::{ModelInferRequest, ModelStreamInferResponse};

use super::{Link, Sender, StreamItem, read_stream};
use crate::{InferError, MAX_MESSAGE, answer};

/// Opens a `ModelStreamInfer` stream on `ch`; its reader answers the link's pending requests
/// until it ends.
pub(crate) fn open(ch: InterceptedService<Channel, Auth>, url: String, tls: bool) -> Link {
    let (tx, rx) = mpsc::channel::<ModelInferRequest>(64);
    let link = Link::new(Sender::Stream(tx));
    let mut t = GrpcInferenceServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let reader = link.clone();
    tokio::spawn(async move {
        let why = match t.model_stream_infer(ReceiverStream::new(rx)).await {
            Err(s) => not_streaming(&url, &s).unwrap_or_else(|| InferError::status(&s, tls)),
            Ok(resp) => {
                read_stream(
                    resp.into_inner(),
                    &reader.pending,
                    ("Triton", tls),
                    stream_item,
                    |s| not_streaming(&url, s),
                )
                .await
            }
        };
        reader.fail_all(why);
    });
    link
}

/// One message of the response stream: an outcome for its request id, or an orphan error.
pub fn stream_item(r: ModelStreamInferResponse) -> StreamItem {
    let resp = r.infer_response.unwrap_or_default();
    if r.error_message.is_empty() {
        StreamItem::For(resp.id.clone(), answer::from_response(resp))
    } else if resp.id.is_empty() {
        StreamItem::Orphan(InferError::Triton(r.error_message))
    } else {
        StreamItem::For(resp.id, Err(InferError::Triton(r.error_message)))
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

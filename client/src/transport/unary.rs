//! Plain KServe v2 over gRPC: unary `ModelInfer`, `ModelMetadata` and `ModelConfig` on a service
//! whose full name is configurable (`kserve-service`; servers that rename the package serve the
//! same messages under another path). One call per request; a connection lost under a call ends
//! the link, so that the request is sent once more on a new one.

use tonic::codegen::http::uri::PathAndQuery;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;
use triton_endpoint::Auth;
use triton_proto::inference::{
    ModelConfigRequest, ModelConfigResponse, ModelInferRequest, ModelInferResponse,
    ModelMetadataRequest, ModelMetadataResponse,
};

use super::Link;
use crate::{InferError, Outcome, answer};

/// The service name of the KServe v2 protocol (and Triton's).
pub const DEFAULT_SERVICE: &str = "inference.GRPCInferenceService";

/// Unary calls to one KServe v2 server.
#[derive(Clone)]
pub struct Kserve {
    grpc: tonic::client::Grpc<InterceptedService<Channel, Auth>>,
    service: std::sync::Arc<str>,
}

macro_rules! unary {
    ($(#[$doc:meta])* $fn:ident, $method:literal, $req:ty, $resp:ty) => {
        $(#[$doc])*
        pub async fn $fn(&self, req: tonic::Request<$req>) -> Result<$resp, tonic::Status> {
            let mut grpc = self.grpc.clone();
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("transport error: {e}")))?;
            let path = PathAndQuery::try_from(format!("/{}/{}", self.service, $method))
                .map_err(|_| tonic::Status::invalid_argument("kserve-service: not a gRPC service name"))?;
            grpc.unary(req, path, ProstCodec::<$req, $resp>::default())
                .await
                .map(tonic::Response::into_inner)
        }
    };
}

impl Kserve {
    pub fn new(channel: InterceptedService<Channel, Auth>, service: &str, max: usize) -> Kserve {
        Kserve {
            grpc: tonic::client::Grpc::new(channel)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            service: service.into(),
        }
    }

    unary!(
        /// One inference.
        model_infer,
        "ModelInfer",
        ModelInferRequest,
        ModelInferResponse
    );
    unary!(
        /// The model's tensors (every KServe v2 server has it).
        model_metadata,
        "ModelMetadata",
        ModelMetadataRequest,
        ModelMetadataResponse
    );
    unary!(
        /// Triton's model configuration (an extension: other servers answer UNIMPLEMENTED).
        model_config,
        "ModelConfig",
        ModelConfigRequest,
        ModelConfigResponse
    );
}

/// One `ModelInfer` for `req` within `deadline`. A connection that failed under it ends `link`
/// (the next request reconnects, with backoff) and counts as a stream that ended, so that the
/// request is sent once more.
pub(crate) async fn call(
    k: &Kserve,
    link: &Link,
    req: ModelInferRequest,
    deadline: tokio::time::Instant,
    (timeout, tls): (std::time::Duration, bool),
) -> Outcome {
    let ms = timeout.as_millis();
    let mut call = tonic::Request::new(req);
    call.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
    match tokio::time::timeout_at(deadline, k.model_infer(call)).await {
        Err(_) => Err(InferError::Timeout { ms }),
        Ok(Ok(resp)) => answer::from_response(resp),
        Ok(Err(s)) => {
            let lost = s.code() == tonic::Code::Unavailable || triton_endpoint::connection_lost(&s);
            if s.code() == tonic::Code::DeadlineExceeded || s.message().contains("Timeout expired")
            {
                Err(InferError::Timeout { ms })
            } else if lost {
                let why = InferError::status(&s, tls);
                link.fail_all(why.clone());
                Err(InferError::StreamEnded(Box::new(why)))
            } else {
                Err(InferError::Server {
                    code: s.code(),
                    message: s.message().to_string(),
                })
            }
        }
    }
}

/// Whether `name` can be a gRPC service name (`package.Service`, no slashes or spaces).
pub fn valid_service(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && !name.starts_with('.')
        && !name.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert!(valid_service(DEFAULT_SERVICE));
        assert!(valid_service("my_pkg.v2.Inference"));
        for bad in ["", "a/b", ".a", "a.", "a b"] {
            assert!(!valid_service(bad), "{bad}");
        }
    }
}

//! Is the server there, does it take our credentials, and is the model ready — asked once before
//! a run starts (the runner's preflight), so that a wrong address, key or model is one clear
//! line instead of a stream of failed frames.

use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use triton_proto::inference::{ModelReadyRequest, ServerReadyRequest};
use triton_proto::multimodal::ModelInfoRequest;
use triton_proto::multimodal::multi_modal_client::MultiModalClient;

use crate::{Client, Transport};

/// Why the server or the model is not ready to serve.
#[derive(Debug)]
pub enum Unready {
    /// No connection: the address, TLS or the connect timeout.
    Connect(triton_endpoint::Error),
    /// The server refused the question (credentials, unknown model, TLS mismatch, ...).
    Refused(tonic::Status),
    /// The server answered that it is not ready.
    Server,
    /// The server is ready but the model is not (or the server does not know it).
    Model,
}

impl Client {
    /// Through the proxy: its `ModelInfo` for the model (a proxy too old to have it counts as
    /// ready: inference will tell). Directly: `ServerReady`, then `ModelReady`.
    pub async fn readiness(&self) -> Result<(), Unready> {
        let c = self.config();
        let ch = c.target.connect().await.map_err(Unready::Connect)?;
        let ch = tonic::service::interceptor::InterceptedService::new(ch, c.auth.clone());
        if c.transport == Transport::Proxy {
            let info = MultiModalClient::new(ch)
                .model_info(ModelInfoRequest {
                    model: c.model.clone(),
                    version: c.model_version.clone(),
                })
                .await;
            return match info {
                Err(s) if s.code() != tonic::Code::Unimplemented => Err(Unready::Refused(s)),
                _ => Ok(()),
            };
        }
        let mut k = GrpcInferenceServiceClient::new(ch);
        let ready = k
            .server_ready(ServerReadyRequest {})
            .await
            .map_err(Unready::Refused)?;
        if !ready.into_inner().ready {
            return Err(Unready::Server);
        }
        let m = k
            .model_ready(ModelReadyRequest {
                name: c.model.clone(),
                version: c.model_version.clone(),
            })
            .await;
        match m {
            Ok(r) if r.get_ref().ready => Ok(()),
            _ => Err(Unready::Model),
        }
    }
}

//! How KServe v2 servers that are not Triton look to a client: answers in typed `contents`
//! instead of raw buffers, and the service under another gRPC package name.

use triton_proto::inference::{InferTensorContents, ModelInferResponse};

/// Moves FP32 raw outputs into typed `contents` (how servers other than Triton answer).
pub(super) fn typed_contents(resp: &mut ModelInferResponse) {
    for (o, raw) in resp
        .outputs
        .iter_mut()
        .zip(resp.raw_output_contents.drain(..))
    {
        assert_eq!(o.datatype, "FP32", "the mock types FP32 outputs only");
        o.contents = Some(InferTensorContents {
            fp32_contents: raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            ..Default::default()
        });
    }
}

/// The mock's service under another gRPC name: requests to `/acme.v2.Inference/<method>` reach
/// `/inference.GRPCInferenceService/<method>`.
#[derive(Clone)]
pub(super) struct Renamed<S>(pub S);

impl<S> tonic::server::NamedService for Renamed<S> {
    const NAME: &'static str = RENAMED_SERVICE;
}

/// The name [`MockKserve::start_renamed`] serves under.
pub const RENAMED_SERVICE: &str = "acme.v2.Inference";

impl<S, B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for Renamed<S>
where
    S: tonic::codegen::Service<tonic::codegen::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: tonic::codegen::http::Request<B>) -> Self::Future {
        let path = req.uri().path().replacen(
            &format!("/{RENAMED_SERVICE}/"),
            "/inference.GRPCInferenceService/",
            1,
        );
        if let Ok(uri) = path.parse() {
            *req.uri_mut() = uri;
        }
        self.0.call(req)
    }
}

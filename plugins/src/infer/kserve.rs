//! Plain KServe v2 over gRPC: unary `ModelInfer`, `ModelMetadata` and `ModelConfig` on a service
//! whose full name is configurable (`kserve-service`; servers that rename the package serve the
//! same messages under another path), and the typed `contents` of an answer turned into the raw
//! little-endian bytes the decoders read (servers other than Triton may answer that way).

use bytes::{BufMut, Bytes, BytesMut};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;
use triton_endpoint::Auth;
use triton_proto::inference::{
    InferTensorContents, ModelConfigRequest, ModelConfigResponse, ModelInferRequest,
    ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
};

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

/// Whether `name` can be a gRPC service name (`package.Service`, no slashes or spaces).
pub fn valid_service(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && !name.starts_with('.')
        && !name.ends_with('.')
}

/// The raw little-endian bytes of a tensor answered in typed `contents` (`BYTES` elements each
/// with a 4-byte length prefix, as Triton's raw format has them). FP16 and BF16 have no typed
/// field in KServe v2, so a server sends them raw.
pub fn contents_to_raw(dtype: &str, c: &InferTensorContents) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    macro_rules! put {
        ($field:expr, $put:ident, $cast:ty) => {
            for &v in &$field {
                out.$put(v as $cast)
            }
        };
    }
    match dtype {
        "BOOL" => put!(c.bool_contents, put_u8, u8),
        "INT8" => put!(c.int_contents, put_i8, i8),
        "INT16" => put!(c.int_contents, put_i16_le, i16),
        "INT32" => put!(c.int_contents, put_i32_le, i32),
        "INT64" => put!(c.int64_contents, put_i64_le, i64),
        "UINT8" => put!(c.uint_contents, put_u8, u8),
        "UINT16" => put!(c.uint_contents, put_u16_le, u16),
        "UINT32" => put!(c.uint_contents, put_u32_le, u32),
        "UINT64" => put!(c.uint64_contents, put_u64_le, u64),
        "FP32" => put!(c.fp32_contents, put_f32_le, f32),
        "FP64" => put!(c.fp64_contents, put_f64_le, f64),
        "BYTES" => {
            for b in &c.bytes_contents {
                out.put_u32_le(b.len() as u32);
                out.put_slice(b);
            }
        }
        other => {
            return Err(format!(
                "datatype {other} in typed contents; expected raw_output_contents for it"
            ));
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_contents_become_little_endian_bytes() {
        let c = InferTensorContents {
            fp32_contents: vec![1.5, -2.0],
            int_contents: vec![-1, 258],
            int64_contents: vec![-2],
            uint_contents: vec![255, 1],
            bool_contents: vec![true, false],
            bytes_contents: vec![b"ab".to_vec().into()],
            ..Default::default()
        };
        let raw = |d| contents_to_raw(d, &c).unwrap().to_vec();
        assert_eq!(
            raw("FP32"),
            [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
        );
        assert_eq!(
            raw("INT32"),
            [(-1i32).to_le_bytes(), 258i32.to_le_bytes()].concat()
        );
        assert_eq!(
            raw("INT16"),
            [(-1i16).to_le_bytes(), 258i16.to_le_bytes()].concat()
        );
        assert_eq!(raw("INT8"), [0xff, 2]);
        assert_eq!(raw("INT64"), (-2i64).to_le_bytes());
        assert_eq!(raw("UINT8"), [255, 1]);
        assert_eq!(raw("UINT16"), [255, 0, 1, 0]);
        assert_eq!(raw("UINT32"), [255, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(raw("BOOL"), [1, 0]);
        assert_eq!(raw("BYTES"), [2, 0, 0, 0, b'a', b'b']);
        assert_eq!(raw("FP64"), Vec::<u8>::new());
        let e = contents_to_raw("FP16", &c).unwrap_err();
        assert!(
            e.contains("FP16") && e.contains("raw_output_contents"),
            "{e}"
        );
    }

    #[test]
    fn service_names() {
        assert!(valid_service(DEFAULT_SERVICE));
        assert!(valid_service("my_pkg.v2.Inference"));
        for bad in ["", "a/b", ".a", "a.", "a b"] {
            assert!(!valid_service(bad), "{bad}");
        }
    }
}

//! Generated gRPC code for gst-triton's own `.proto` files.
//!
//! * [`multimodal`]: the client-facing `multimodal.MultiModal` service (`Chat`, `ModelInfo`).
//! * [`inference`]: a wire-compatible subset of the KServe v2 / Triton `inference.GRPCInferenceService`.
//! * [`wire`]: the JSON texts inside `multimodal` messages (control JSON, Ack message), shared by
//!   the proxy and the client.
//! * [`dtype`]: Triton datatype names and sizes.

/// `multimodal.proto`: DataPacket in, Ack out.
#[allow(clippy::all, missing_docs)]
pub mod multimodal {
    tonic::include_proto!("multimodal");
}

/// `inference.proto`: the Triton gRPC protocol subset.
#[allow(clippy::all, missing_docs)]
pub mod inference {
    tonic::include_proto!("inference");
}

pub mod wire;

/// Encoded `FileDescriptorSet` of both files, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptors");

/// Triton datatype names and element sizes shared by the proxy and the elements.
pub mod dtype {
    /// Size in bytes of one element of a Triton datatype name, `None` when unknown or variable-size.
    pub fn size_of(triton: &str) -> Option<usize> {
        Some(match triton {
            "BOOL" | "UINT8" | "INT8" => 1,
            "FP16" | "BF16" | "UINT16" | "INT16" => 2,
            "FP32" | "UINT32" | "INT32" => 4,
            "FP64" | "UINT64" | "INT64" => 8,
            _ => return None,
        })
    }

    /// numpy-style dtype name for a Triton datatype ("FP32" → "float32").
    pub fn numpy_name(triton: &str) -> Option<&'static str> {
        Some(match triton {
            "BOOL" => "bool",
            "UINT8" => "uint8",
            "INT8" => "int8",
            "UINT16" => "uint16",
            "INT16" => "int16",
            "FP16" => "float16",
            "BF16" => "bfloat16",
            "FP32" => "float32",
            "UINT32" => "uint32",
            "INT32" => "int32",
            "FP64" => "float64",
            "UINT64" => "uint64",
            "INT64" => "int64",
            _ => return None,
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn sizes_and_names_agree() {
            for t in [
                "BOOL", "UINT8", "INT8", "UINT16", "INT16", "FP16", "BF16", "FP32", "UINT32",
                "INT32", "FP64", "UINT64", "INT64",
            ] {
                assert!(super::size_of(t).is_some(), "{t}");
                assert!(super::numpy_name(t).is_some(), "{t}");
            }
            assert_eq!(super::size_of("FP32"), Some(4));
            assert_eq!(super::numpy_name("FP16"), Some("float16"));
            assert_eq!(super::size_of("BYTES"), None);
        }
    }
}

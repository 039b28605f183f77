//! The Ack for Triton's answer: output descriptions as JSON in `message`, the tensors either
//! base64 inside it or as binary `raw_outputs`.

use tonic::Code;
use triton_proto::dtype;
use triton_proto::inference::ModelInferResponse;
use triton_proto::multimodal::RawOutput;

use crate::control::PacketError;

/// The Ack's JSON message and binary outputs for Triton's answer.
pub fn ack_outputs(
    resp: ModelInferResponse,
    binary: bool,
) -> Result<(String, Vec<RawOutput>), PacketError> {
    if resp.raw_output_contents.len() != resp.outputs.len() {
        return Err(PacketError {
            code: Code::Internal,
            message: format!(
                "Triton answered {} outputs but {} raw_output_contents; expected one raw buffer per output",
                resp.outputs.len(),
                resp.raw_output_contents.len()
            ),
        });
    }
    // The message is written directly: base64 needs no JSON escaping, so the (large) text is
    // encoded once, straight into the message, instead of built, copied and scanned again.
    let quoted = |s: &str| serde_json::to_string(s).expect("a str serializes");
    let room: usize = if binary {
        0
    } else {
        resp.raw_output_contents
            .iter()
            .map(|d| d.len().div_ceil(3) * 4)
            .sum()
    };
    let mut message = String::with_capacity(128 + room);
    message.push_str(&format!(
        "{{\"model\":{},\"version\":{},\"outputs\":{{",
        quoted(&resp.model_name),
        quoted(&resp.model_version)
    ));
    let mut raws = Vec::new();
    for (i, (o, data)) in resp
        .outputs
        .into_iter()
        .zip(resp.raw_output_contents)
        .enumerate()
    {
        let np = dtype::numpy_name(&o.datatype).unwrap_or("bytes");
        if i > 0 {
            message.push(',');
        }
        message.push_str(&format!(
            "{}:{{\"dtype\":{},\"shape\":{}",
            quoted(&o.name),
            quoted(np),
            serde_json::Value::from(o.shape.clone())
        ));
        if binary {
            raws.push(RawOutput {
                name: o.name,
                dtype: np.into(),
                shape: o.shape,
                data,
            });
        } else {
            message.push_str(",\"b64\":\"");
            // SIMD base64 (AVX2/SSE4.1/NEON chosen at run time).
            base64_simd::STANDARD.encode_append(&data, &mut message);
            message.push('"');
        }
        message.push('}');
    }
    message.push_str("}}");
    Ok((message, raws))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use triton_proto::inference::model_infer_response::InferOutputTensor;

    fn answer() -> ModelInferResponse {
        let out = |name: &str, dt: &str, shape: Vec<i64>| InferOutputTensor {
            name: name.into(),
            datatype: dt.into(),
            shape,
            ..Default::default()
        };
        ModelInferResponse {
            model_name: "m\"1".into(),
            model_version: "3".into(),
            outputs: vec![
                out("output0", "FP32", vec![1, 2]),
                out("a\\b", "UINT8", vec![4]),
            ],
            raw_output_contents: vec![
                vec![0u8, 0, 128, 63, 0, 0, 0, 64].into(),
                vec![1, 2, 3, 250].into(),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn base64_outputs_are_valid_json_with_every_field() {
        let (msg, raws) = ack_outputs(answer(), false).unwrap();
        assert!(raws.is_empty());
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(v["model"], "m\"1");
        assert_eq!(v["version"], "3");
        let o = &v["outputs"]["output0"];
        assert_eq!(o["dtype"], "float32");
        assert_eq!(o["shape"], serde_json::json!([1, 2]));
        let b64 = |o: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD
                .decode(o["b64"].as_str().unwrap())
                .unwrap()
        };
        assert_eq!(b64(o), vec![0u8, 0, 128, 63, 0, 0, 0, 64]);
        let o = &v["outputs"]["a\\b"];
        assert_eq!(o["dtype"], "uint8");
        assert_eq!(b64(o), vec![1, 2, 3, 250]);
        assert_eq!(v["outputs"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn binary_outputs_carry_the_bytes_and_json_without_b64() {
        let (msg, raws) = ack_outputs(answer(), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert!(v["outputs"]["output0"].get("b64").is_none(), "{msg}");
        assert_eq!(v["outputs"]["output0"]["shape"], serde_json::json!([1, 2]));
        assert_eq!(raws.len(), 2);
        assert_eq!(
            (raws[1].name.as_str(), raws[1].dtype.as_str()),
            ("a\\b", "uint8")
        );
        assert_eq!(&raws[1].data[..], &[1, 2, 3, 250]);
    }

    /// The hand-written message is the shared type's JSON: what the client parses it with.
    #[test]
    fn the_message_reads_as_the_shared_ack_type() {
        use triton_proto::wire::{AckMessage, AckOutput};
        for binary in [false, true] {
            let (msg, _) = ack_outputs(answer(), binary).unwrap();
            let m: AckMessage = serde_json::from_str(&msg).unwrap();
            assert_eq!((m.model.as_str(), m.version.as_str()), ("m\"1", "3"));
            let b64 =
                |b: &[u8]| (!binary).then(|| base64::engine::general_purpose::STANDARD.encode(b));
            assert_eq!(
                m.outputs["output0"],
                AckOutput {
                    dtype: "float32".into(),
                    shape: vec![1, 2],
                    b64: b64(&[0u8, 0, 128, 63, 0, 0, 0, 64]),
                }
            );
            assert_eq!(m.outputs["a\\b"].b64, b64(&[1, 2, 3, 250]));
        }
    }

    #[test]
    fn a_missing_raw_buffer_is_an_internal_error() {
        let mut r = answer();
        r.raw_output_contents.pop();
        let e = ack_outputs(r, true).unwrap_err();
        assert_eq!(e.code, Code::Internal);
        assert!(
            e.message.contains("2 outputs but 1 raw_output_contents"),
            "{}",
            e.message
        );
    }
}

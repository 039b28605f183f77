//! The Ack for Triton's answer: output descriptions as JSON in `message`, the tensors either
//! base64 inside it or as binary `raw_outputs`.

use bytes::Bytes;
use prost::Message;
use tonic::Code;
use triton_proto::dtype;
use triton_proto::multimodal::{Ack, RawOutput};

use crate::control::PacketError;
use crate::grpc::infer::Answer;
use crate::rope::{Out, Rope, put_varint};

/// `Ack.message`.
const MESSAGE: u32 = 4;
/// `Ack.raw_outputs`.
const RAW_OUTPUTS: u32 = 5;
/// `RawOutput.data`.
const RAW_DATA: u32 = 4;

/// The Ack's JSON message and its binary outputs, each with its bytes apart (`data` empty).
#[derive(Debug, Default)]
pub struct Outputs {
    pub message: String,
    pub raw: Vec<(RawOutput, Rope)>,
}

/// The Ack's JSON message and binary outputs for Triton's answer.
pub fn ack_outputs(answer: Answer, binary: bool) -> Result<Outputs, PacketError> {
    let Answer { resp, raw } = answer;
    if raw.len() != resp.outputs.len() {
        return Err(PacketError {
            code: Code::Internal,
            message: format!(
                "Triton answered {} outputs but {} raw_output_contents; expected one raw buffer per output",
                resp.outputs.len(),
                raw.len()
            ),
        });
    }
    // The message is written directly: base64 needs no JSON escaping, so the (large) text is
    // encoded once, straight into the message, instead of built, copied and scanned again.
    let quoted = |s: &str| serde_json::to_string(s).expect("a str serializes");
    let room: usize = if binary {
        0
    } else {
        raw.iter().map(|d| d.len().div_ceil(3) * 4).sum()
    };
    let mut message = String::with_capacity(128 + room);
    message.push_str(&format!(
        "{{\"model\":{},\"version\":{},\"outputs\":{{",
        quoted(&resp.model_name),
        quoted(&resp.model_version)
    ));
    let mut raws = Vec::new();
    for (i, (o, data)) in resp.outputs.into_iter().zip(raw).enumerate() {
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
            let out = RawOutput {
                name: o.name,
                dtype: np.into(),
                shape: o.shape,
                data: Bytes::new(),
            };
            raws.push((out, data));
        } else {
            message.push_str(",\"b64\":\"");
            base64_rope(&data, &mut message);
            message.push('"');
        }
        message.push('}');
    }
    message.push_str("}}");
    Ok(Outputs { message, raw: raws })
}

/// Standard base64 of the rope's bytes, appended: SIMD (AVX2/SSE4.1/NEON chosen at run time)
/// over each piece, the up to two bytes a piece ends with joined to the next piece's first.
fn base64_rope(data: &Rope, out: &mut String) {
    let mut carry: Vec<u8> = Vec::with_capacity(3);
    for p in data.parts() {
        let mut p = &p[..];
        if !carry.is_empty() {
            let n = (3 - carry.len()).min(p.len());
            carry.extend_from_slice(&p[..n]);
            p = &p[n..];
            if carry.len() < 3 {
                continue;
            }
            base64_simd::STANDARD.encode_append(&carry, out);
            carry.clear();
        }
        let whole = p.len() / 3 * 3;
        base64_simd::STANDARD.encode_append(&p[..whole], out);
        carry.extend_from_slice(&p[whole..]);
    }
    base64_simd::STANDARD.encode_append(&carry, out);
}

/// One Ack on its way to the client: its binary outputs' bytes apart (each `data` empty), as
/// the frames Triton sent them in.
#[derive(Debug, Default)]
pub struct Reply {
    pub ack: Ack,
    pub raw: Vec<Rope>,
}

impl Reply {
    /// The gRPC message: the small fields copied, the message text and each output's bytes
    /// passed on as they are.
    pub fn encode(self) -> Rope {
        let Reply { mut ack, raw } = self;
        let message = Rope::from(Bytes::from(std::mem::take(&mut ack.message).into_bytes()));
        let outputs = std::mem::take(&mut ack.raw_outputs);
        let mut out = Out::default();
        ack.encode(out.small()).expect("a BytesMut grows as needed");
        if !message.is_empty() {
            out.field(MESSAGE, &[], &message);
        }
        for (o, data) in outputs
            .iter()
            .zip(raw.iter().chain(std::iter::repeat(&Rope::default())))
        {
            let mut head = bytes::BytesMut::new();
            o.encode(&mut head).expect("a BytesMut grows as needed");
            if !data.is_empty() {
                put_varint(&mut head, (u64::from(RAW_DATA) << 3) | 2);
                put_varint(&mut head, data.len() as u64);
            }
            out.field(RAW_OUTPUTS, &head, data);
        }
        crate::grpc::prefixed(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use triton_proto::inference::ModelInferResponse;
    use triton_proto::inference::model_infer_response::InferOutputTensor;

    /// The Ack's message and outputs with their bytes joined.
    fn outputs(
        r: ModelInferResponse,
        binary: bool,
    ) -> Result<(String, Vec<RawOutput>), PacketError> {
        let o = ack_outputs(Answer::from_response(r), binary)?;
        let raws = o.raw.into_iter().map(|(mut r, d)| {
            r.data = d.to_bytes();
            r
        });
        Ok((o.message, raws.collect()))
    }

    /// `bytes` in pieces cut at `cuts`.
    fn rope(bytes: &[u8], cuts: &[usize]) -> Rope {
        let mut r = Rope::default();
        let mut at = 0;
        for c in cuts.iter().copied().chain([bytes.len()]) {
            r.push(Bytes::copy_from_slice(&bytes[at..c]));
            at = c;
        }
        r
    }

    #[test]
    fn base64_of_bytes_in_pieces_is_the_base64_of_the_whole() {
        let bytes: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let whole = base64::engine::general_purpose::STANDARD.encode(&bytes);
        for a in 0..=bytes.len() {
            for b in a..=bytes.len().min(a + 7) {
                let mut s = String::new();
                base64_rope(&rope(&bytes, &[a, b]), &mut s);
                assert_eq!(s, whole, "cut at {a} and {b}");
            }
        }
    }

    #[test]
    fn an_encoded_reply_is_the_ack_with_its_outputs_and_shares_their_pieces() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let pieces = rope(&data, &[1000, 1001, 4000]);
        let out = RawOutput {
            name: "output0".into(),
            dtype: "uint8".into(),
            shape: vec![5000],
            data: Bytes::new(),
        };
        let ack = Ack {
            correlation_id: "cam:1".into(),
            status_code: 0,
            status_message: String::new(),
            message: "{\"model\":\"m\"}".into(),
            raw_outputs: vec![out.clone(), out.clone()],
        };
        let wire = Reply {
            ack: ack.clone(),
            raw: vec![pieces.clone(), Rope::default()],
        }
        .encode();
        let all = wire.to_bytes();
        assert_eq!(all[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes(all[1..5].try_into().unwrap()) as usize,
            all.len() - 5
        );
        let back = Ack::decode(&all[5..]).unwrap();
        let mut want = ack;
        want.raw_outputs[0].data = data.into();
        assert_eq!(back, want);
        for p in pieces.parts() {
            assert!(
                wire.parts().any(|w| w.as_ptr() == p.as_ptr()),
                "a piece of the output was copied"
            );
        }
    }

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
        let (msg, raws) = outputs(answer(), false).unwrap();
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
        let (msg, raws) = outputs(answer(), true).unwrap();
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
            let (msg, _) = outputs(answer(), binary).unwrap();
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
        let e = outputs(r, true).unwrap_err();
        assert_eq!(e.code, Code::Internal);
        assert!(
            e.message.contains("2 outputs but 1 raw_output_contents"),
            "{}",
            e.message
        );
    }
}

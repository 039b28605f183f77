//! Turning what a server sent into an [`Answer`]: a proxy `Ack` (binary or base64 outputs,
//! [`triton_proto::wire::AckMessage`]) or a KServe v2 `ModelInferResponse` (raw buffers, or the
//! typed `contents` servers other than Triton answer with).

use bytes::{BufMut, Bytes, BytesMut};
use triton_proto::inference::{InferTensorContents, ModelInferResponse};
use triton_proto::multimodal::Ack;
use triton_proto::wire::AckMessage;

use crate::{Answer, InferError, OutTensor, Outcome};

/// The outcome an `Ack` carries: its outputs, or the proxy's error.
pub fn from_ack(ack: Ack) -> Outcome {
    use base64::Engine;
    if ack.status_code != 0 {
        return Err(InferError::Proxy {
            code: tonic::Code::from(ack.status_code),
            message: ack.status_message,
        });
    }
    let msg: AckMessage = serde_json::from_str(&ack.message)
        .map_err(|e| InferError::Protocol(format!("proxy: Ack.message is not JSON: {e}")))?;
    let mut outputs: Vec<OutTensor> = ack
        .raw_outputs
        .into_iter()
        .map(|o| OutTensor {
            name: o.name,
            dtype: o.dtype,
            shape: o.shape,
            data: o.data,
        })
        .collect();
    if outputs.is_empty() {
        for (name, o) in msg.outputs {
            let data = base64::engine::general_purpose::STANDARD
                .decode(o.b64.as_deref().unwrap_or_default())
                .map_err(|e| {
                    InferError::Protocol(format!("proxy: output {name}: bad base64: {e}"))
                })?;
            outputs.push(OutTensor {
                name,
                dtype: o.dtype,
                shape: o.shape,
                data: data.into(),
            });
        }
    }
    Ok(Answer {
        model_version: msg.version,
        outputs,
    })
}

/// The outcome of a KServe v2 answer.
pub fn from_response(r: ModelInferResponse) -> Outcome {
    // Raw buffers (Triton, and any server asked for them) or typed contents (the KServe v2
    // default of other servers).
    let raw = if r.raw_output_contents.len() == r.outputs.len() {
        r.raw_output_contents
    } else if r.raw_output_contents.is_empty() {
        r.outputs
            .iter()
            .map(|o| {
                contents_to_raw(&o.datatype, &o.contents.clone().unwrap_or_default())
                    .map_err(|e| InferError::Protocol(format!("output '{}': {e}", o.name)))
            })
            .collect::<Result<_, _>>()?
    } else {
        return Err(InferError::Protocol(format!(
            "the server answered {} outputs with {} raw buffers",
            r.outputs.len(),
            r.raw_output_contents.len()
        )));
    };
    Ok(Answer {
        model_version: r.model_version,
        outputs: r
            .outputs
            .into_iter()
            .zip(raw)
            .map(|(o, data)| OutTensor {
                name: o.name,
                dtype: o.datatype,
                shape: o.shape,
                data,
            })
            .collect(),
    })
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
    use crate::transport::{StreamItem, stream::stream_item};
    use triton_proto::inference::ModelStreamInferResponse;
    use triton_proto::inference::model_infer_response::InferOutputTensor;
    use triton_proto::multimodal::RawOutput;

    #[test]
    fn an_error_ack_names_the_code_and_message() {
        let e = from_ack(Ack {
            correlation_id: "c:1".into(),
            status_code: tonic::Code::InvalidArgument as i32,
            status_message: "inputs[0].shape: expected 4 dims".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy: InvalidArgument: inputs[0].shape: expected 4 dims"
        );
    }

    #[test]
    fn binary_and_base64_acks_give_the_same_tensors() {
        let raw = from_ack(Ack {
            message:
                r#"{"model":"m","version":"3","outputs":{"o":{"dtype":"FP32","shape":[1,2]}}}"#
                    .into(),
            raw_outputs: vec![RawOutput {
                name: "o".into(),
                dtype: "FP32".into(),
                shape: vec![1, 2],
                data: vec![1, 2, 3, 4, 5, 6, 7, 8].into(),
            }],
            ..Default::default()
        })
        .unwrap();
        let b64 = from_ack(Ack {
            message: r#"{"model":"m","version":"3","outputs":{"o":{"dtype":"FP32","shape":[1,2],"b64":"AQIDBAUGBwg="}}}"#.into(),
            ..Default::default()
        })
        .unwrap();
        for out in [&raw, &b64] {
            assert_eq!(out.model_version, "3");
            assert_eq!(out.outputs.len(), 1);
            let o = &out.outputs[0];
            assert_eq!((o.name.as_str(), o.dtype.as_str()), ("o", "FP32"));
            assert_eq!(o.shape, [1, 2]);
            assert_eq!(&o.data[..], [1, 2, 3, 4, 5, 6, 7, 8]);
        }
        let bad = from_ack(Ack {
            message: r#"{"outputs":{"o":{"b64":"%%%"}}}"#.into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            bad.to_string().starts_with("proxy: output o: bad base64"),
            "{bad}"
        );
        let not_json = from_ack(Ack {
            message: "nope".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            not_json
                .to_string()
                .starts_with("proxy: Ack.message is not JSON")
        );
    }

    #[test]
    fn triton_replies_match_by_id_and_an_anonymous_error_is_an_orphan() {
        let ok = stream_item(ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(ModelInferResponse {
                id: "c:7".into(),
                model_version: "1".into(),
                outputs: vec![InferOutputTensor {
                    name: "o".into(),
                    datatype: "INT32".into(),
                    shape: vec![1],
                    ..Default::default()
                }],
                raw_output_contents: vec![vec![9, 0, 0, 0].into()],
                ..Default::default()
            }),
        });
        let StreamItem::For(id, Ok(out)) = ok else {
            panic!("expected an answer for c:7")
        };
        assert_eq!(id, "c:7");
        assert_eq!(&out.outputs[0].data[..], [9, 0, 0, 0]);

        let failed = stream_item(ModelStreamInferResponse {
            error_message: "model busy".into(),
            infer_response: Some(ModelInferResponse {
                id: "c:8".into(),
                ..Default::default()
            }),
        });
        let StreamItem::For(id, Err(e)) = failed else {
            panic!("expected an error for c:8")
        };
        assert_eq!(
            (id.as_str(), e.to_string().as_str()),
            ("c:8", "Triton: model busy")
        );

        let orphan = stream_item(ModelStreamInferResponse {
            error_message: "bad request".into(),
            infer_response: None,
        });
        assert!(matches!(orphan, StreamItem::Orphan(InferError::Triton(m)) if m == "bad request"));

        let short = stream_item(ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(ModelInferResponse {
                id: "c:9".into(),
                outputs: vec![InferOutputTensor::default(), InferOutputTensor::default()],
                raw_output_contents: vec![vec![1].into()],
                ..Default::default()
            }),
        });
        let StreamItem::For(_, Err(e)) = short else {
            panic!("expected a protocol error")
        };
        assert_eq!(
            e.to_string(),
            "the server answered 2 outputs with 1 raw buffers"
        );

        // No raw buffers: the typed contents (how servers other than Triton answer).
        let typed = from_response(ModelInferResponse {
            outputs: vec![InferOutputTensor {
                name: "o".into(),
                datatype: "FP32".into(),
                shape: vec![2],
                contents: Some(triton_proto::inference::InferTensorContents {
                    fp32_contents: vec![0.5, 2.0],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            &typed.outputs[0].data[..],
            [0.5f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat()
        );
        let fp16 = from_response(ModelInferResponse {
            outputs: vec![InferOutputTensor {
                name: "h".into(),
                datatype: "FP16".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let e = fp16.unwrap_err().to_string();
        assert!(e.starts_with("output 'h': datatype FP16"), "{e}");
    }

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
}

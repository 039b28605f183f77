//! Turning what a server sent into an answer: a proxy `Ack` (binary or base64 outputs) or a
//! Triton stream response (matched by id; an error without an id fails the oldest request), or a
//! unary KServe answer; and the reader loop of both streams.

use triton_proto::inference::{ModelInferResponse, ModelStreamInferResponse};
use triton_proto::multimodal::Ack;

use super::client::{Answer, InferError, InferOutput, OutTensor, Pending};

/// What one message read from a response stream means.
pub enum Reply {
    /// The answer to request `id`.
    For(String, Answer),
    /// An error that names no request: it fails the oldest one rather than leave it hanging.
    Orphan(InferError),
}

pub fn triton_reply(r: ModelStreamInferResponse) -> Reply {
    let resp = r.infer_response.unwrap_or_default();
    if r.error_message.is_empty() {
        Reply::For(resp.id.clone(), triton_to_output(resp))
    } else if resp.id.is_empty() {
        Reply::Orphan(InferError::Triton(r.error_message))
    } else {
        Reply::For(resp.id, Err(InferError::Triton(r.error_message)))
    }
}

pub fn ack_to_output(ack: Ack) -> Answer {
    use base64::Engine;
    if ack.status_code != 0 {
        return Err(InferError::Proxy {
            code: tonic::Code::from(ack.status_code),
            message: ack.status_message,
        });
    }
    let msg: serde_json::Value = serde_json::from_str(&ack.message)
        .map_err(|e| InferError::Protocol(format!("proxy: Ack.message is not JSON: {e}")))?;
    let version = msg["version"].as_str().unwrap_or_default().to_string();
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
    if outputs.is_empty()
        && let Some(map) = msg["outputs"].as_object()
    {
        for (name, o) in map {
            let data = base64::engine::general_purpose::STANDARD
                .decode(o["b64"].as_str().unwrap_or_default())
                .map_err(|e| {
                    InferError::Protocol(format!("proxy: output {name}: bad base64: {e}"))
                })?;
            let shape = o["shape"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
                .unwrap_or_default();
            outputs.push(OutTensor {
                name: name.clone(),
                dtype: o["dtype"].as_str().unwrap_or_default().into(),
                shape,
                data: data.into(),
            });
        }
    }
    Ok(InferOutput {
        model_version: version,
        outputs,
    })
}

pub fn triton_to_output(r: ModelInferResponse) -> Answer {
    // Raw buffers (Triton, and any server asked for them) or typed contents (the KServe v2
    // default of other servers).
    let raw = if r.raw_output_contents.len() == r.outputs.len() {
        r.raw_output_contents
    } else if r.raw_output_contents.is_empty() {
        r.outputs
            .iter()
            .map(|o| {
                super::kserve::contents_to_raw(&o.datatype, &o.contents.clone().unwrap_or_default())
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
    Ok(InferOutput {
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

/// The one reader loop of both streams: hands each reply to its pending request until the
/// stream ends, and returns why it ended (`explain` may say it better than the status).
pub async fn read_replies<M>(
    mut stream: tonic::Streaming<M>,
    pending: &Pending,
    (peer, tls): (&str, bool),
    mut reply: impl FnMut(M) -> Reply,
    explain: impl Fn(&tonic::Status) -> Option<InferError>,
) -> InferError {
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                let (tx, answer) = match reply(m) {
                    Reply::For(id, answer) => {
                        (pending.lock().ok().and_then(|mut p| p.remove(&id)), answer)
                    }
                    Reply::Orphan(e) => {
                        let oldest = pending.lock().ok().and_then(|mut p| {
                            let k = p.keys().min().cloned()?;
                            p.remove(&k)
                        });
                        (oldest, Err(e))
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(answer);
                }
            }
            Ok(None) => return InferError::Closed(format!("{peer} closed the stream")),
            Err(s) => return explain(&s).unwrap_or_else(|| InferError::status(&s, tls)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triton_proto::inference::model_infer_response::InferOutputTensor;
    use triton_proto::multimodal::RawOutput;

    #[test]
    fn an_error_ack_names_the_code_and_message() {
        let e = ack_to_output(Ack {
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
        let raw = ack_to_output(Ack {
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
        let b64 = ack_to_output(Ack {
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
        let bad = ack_to_output(Ack {
            message: r#"{"outputs":{"o":{"b64":"%%%"}}}"#.into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            bad.to_string().starts_with("proxy: output o: bad base64"),
            "{bad}"
        );
        let not_json = ack_to_output(Ack {
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
        let ok = triton_reply(ModelStreamInferResponse {
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
        let Reply::For(id, Ok(out)) = ok else {
            panic!("expected an answer for c:7")
        };
        assert_eq!(id, "c:7");
        assert_eq!(&out.outputs[0].data[..], [9, 0, 0, 0]);

        let failed = triton_reply(ModelStreamInferResponse {
            error_message: "model busy".into(),
            infer_response: Some(ModelInferResponse {
                id: "c:8".into(),
                ..Default::default()
            }),
        });
        let Reply::For(id, Err(e)) = failed else {
            panic!("expected an error for c:8")
        };
        assert_eq!(
            (id.as_str(), e.to_string().as_str()),
            ("c:8", "Triton: model busy")
        );

        let orphan = triton_reply(ModelStreamInferResponse {
            error_message: "bad request".into(),
            infer_response: None,
        });
        assert!(matches!(orphan, Reply::Orphan(InferError::Triton(m)) if m == "bad request"));

        let short = triton_reply(ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(ModelInferResponse {
                id: "c:9".into(),
                outputs: vec![InferOutputTensor::default(), InferOutputTensor::default()],
                raw_output_contents: vec![vec![1].into()],
                ..Default::default()
            }),
        });
        let Reply::For(_, Err(e)) = short else {
            panic!("expected a protocol error")
        };
        assert_eq!(
            e.to_string(),
            "the server answered 2 outputs with 1 raw buffers"
        );

        // No raw buffers: the typed contents (how servers other than Triton answer).
        let typed = triton_to_output(ModelInferResponse {
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
        let fp16 = triton_to_output(ModelInferResponse {
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
}

//! Control JSON: which model, which inputs read which payload bytes, which outputs, timeout.
//!
//! Schema: `{"model","version"?,"inputs":[{"name","shape","dtype","from"}],"outputs":[..],
//! "timeout"?,"binary"?}`. First found wins: `meta.note`, else the text payload, else the proxy's
//! defaults. Every problem is a [`PacketError`] naming the field and the expected value.

use serde::Deserialize;
use tonic::Code;
use triton_proto::dtype;
use triton_proto::multimodal::{DataPacket, data_packet::Payload};

/// A per-packet failure: returned to the client in the packet's Ack, never ends the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct PacketError {
    pub code: Code,
    pub message: String,
}

impl PacketError {
    pub fn invalid(message: impl Into<String>) -> Self {
        PacketError {
            code: Code::InvalidArgument,
            message: message.into(),
        }
    }
}

/// One input as the client describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
    #[serde(default = "default_from")]
    pub from: String,
}

fn default_from() -> String {
    "image".into()
}

/// The control JSON as sent.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    model: Option<String>,
    version: Option<serde_json::Value>,
    inputs: Option<Vec<InputSpec>>,
    outputs: Option<Vec<String>>,
    timeout: Option<f64>,
    binary: Option<bool>,
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Defaults from the proxy's configuration.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub model: String,
    pub input: InputSpec,
    pub outputs: Vec<String>,
    pub timeout_secs: f64,
}

/// A validated request plan for one packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub model: String,
    pub version: String,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<String>,
    pub timeout_secs: f64,
    pub binary: bool,
    /// Request parameters forwarded to Triton (strings, integers, floats, booleans).
    pub parameters: Vec<(String, Param)>,
    /// Byte range of the payload each input reads, same order as `inputs`.
    pub ranges: Vec<std::ops::Range<usize>>,
}

/// A Triton request parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
}

/// Upper bound of a timeout the client may ask for (1 hour).
const MAX_TIMEOUT_SECS: f64 = 3600.0;

const DTYPES: &str = "FP32, FP16, BF16, INT64, INT32, INT8, UINT8, BOOL";

fn supported_dtype(d: &str) -> bool {
    matches!(
        d,
        "FP32" | "FP16" | "BF16" | "INT64" | "INT32" | "INT8" | "UINT8" | "BOOL"
    )
}

/// Name of the payload kind a packet carries.
pub fn payload_kind(p: &DataPacket) -> &'static str {
    match &p.payload {
        Some(Payload::Frame(_)) => "frame",
        Some(Payload::Image(_)) => "image",
        Some(Payload::Video(_)) => "video",
        Some(Payload::Text(_)) => "text",
        None => "none",
    }
}

/// The payload field `from` (`frame`, `image` or `video`), if the packet carries that field.
/// Cloning the returned `Bytes` shares the data.
pub fn payload_bytes<'a>(p: &'a DataPacket, from: &str) -> Option<&'a bytes::Bytes> {
    match (&p.payload, from) {
        (Some(Payload::Frame(f)), "frame") => Some(&f.data),
        (Some(Payload::Image(f)), "image") => Some(&f.data),
        (Some(Payload::Video(f)), "video") => Some(&f.data),
        _ => None,
    }
}

/// Bytes of a tensor: `prod(shape) * sizeof(dtype)`, overflow-checked.
pub fn tensor_bytes(shape: &[i64], dtype_name: &str) -> Result<usize, String> {
    let elem = dtype::size_of(dtype_name).ok_or_else(|| format!("unknown dtype '{dtype_name}'"))?;
    let mut n: usize = elem;
    for (i, &d) in shape.iter().enumerate() {
        if d < 0 {
            return Err(format!("shape[{i}] is {d}; expected a non-negative size"));
        }
        n = n
            .checked_mul(usize::try_from(d).map_err(|_| format!("shape[{i}] = {d} is too large"))?)
            .ok_or_else(|| format!("shape {shape:?} overflows: more than {} bytes", usize::MAX))?;
    }
    Ok(n)
}

/// Parses and validates the control JSON of a packet against its payload.
pub fn plan(p: &DataPacket, defaults: &Defaults) -> Result<Plan, PacketError> {
    let note = p.meta.as_ref().map(|m| m.note.trim()).unwrap_or("");
    let raw: RawControl = if !note.is_empty() {
        serde_json::from_str(note)
            .map_err(|e| PacketError::invalid(format!("meta.note: not valid control JSON: {e}")))?
    } else if let Some(Payload::Text(t)) = &p.payload {
        serde_json::from_str(t.text.trim())
            .map_err(|e| PacketError::invalid(format!("text.text: not valid control JSON: {e}")))?
    } else {
        RawControl::default()
    };

    let model = raw.model.unwrap_or_else(|| defaults.model.clone());
    if model.trim().is_empty() {
        return Err(PacketError::invalid(
            "model: expected a non-empty model name",
        ));
    }
    let version = match raw.version {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(PacketError::invalid(format!(
                "version: expected a version number or string, got {other}"
            )));
        }
    };
    let inputs = raw.inputs.unwrap_or_else(|| vec![defaults.input.clone()]);
    if inputs.is_empty() {
        return Err(PacketError::invalid("inputs: expected at least one input"));
    }
    let outputs = raw.outputs.unwrap_or_else(|| defaults.outputs.clone());
    let timeout_secs = raw.timeout.unwrap_or(defaults.timeout_secs);
    if !(timeout_secs > 0.0 && timeout_secs <= MAX_TIMEOUT_SECS) {
        return Err(PacketError::invalid(format!(
            "timeout: expected seconds in (0, {MAX_TIMEOUT_SECS}], got {timeout_secs}"
        )));
    }

    // Each payload field is read front to back by the inputs naming it, in order; the sizes must
    // add up to the field's length exactly.
    let mut offsets: std::collections::HashMap<&str, usize> = Default::default();
    let mut ranges = Vec::with_capacity(inputs.len());
    for (i, inp) in inputs.iter().enumerate() {
        let at = format!("inputs[{i}] ({})", inp.name);
        if inp.name.is_empty() {
            return Err(PacketError::invalid(format!(
                "inputs[{i}].name: expected a tensor name"
            )));
        }
        if !supported_dtype(&inp.dtype) {
            return Err(PacketError::invalid(format!(
                "{at}.dtype: '{}' is not supported; expected one of {DTYPES}",
                inp.dtype
            )));
        }
        let from = inp.from.as_str();
        if !matches!(from, "frame" | "image" | "video") {
            return Err(PacketError::invalid(format!(
                "{at}.from: '{from}'; expected frame, image or video"
            )));
        }
        let Some(bytes) = payload_bytes(p, from) else {
            return Err(PacketError::invalid(format!(
                "{at}.from: '{from}', but the packet carries a '{}' payload; expected a '{from}' payload",
                payload_kind(p)
            )));
        };
        if bytes.is_empty() {
            return Err(PacketError::invalid(format!(
                "{from}.data: payload is empty; expected the bytes of {at}"
            )));
        }
        let need = tensor_bytes(&inp.shape, &inp.dtype)
            .map_err(|e| PacketError::invalid(format!("{at}.shape: {e}")))?;
        let start = *offsets.get(from).unwrap_or(&0);
        let end = start.checked_add(need).filter(|&e| e <= bytes.len()).ok_or_else(|| {
            PacketError::invalid(format!(
                "{at}: needs {need} bytes (shape {:?} × {} bytes per {}) from '{from}', but only {} of its {} bytes are left",
                inp.shape,
                dtype::size_of(&inp.dtype).unwrap_or(0),
                inp.dtype,
                bytes.len() - start.min(bytes.len()),
                bytes.len()
            ))
        })?;
        offsets.insert(from, end);
        ranges.push(start..end);
    }
    for (from, used) in &offsets {
        let len = payload_bytes(p, from).map(bytes::Bytes::len).unwrap_or(0);
        if *used != len {
            return Err(PacketError::invalid(format!(
                "{from}.data: {len} bytes, but the inputs reading it need {used}; expected len(bytes) == prod(shape) * sizeof(dtype)"
            )));
        }
    }
    let mut parameters = Vec::new();
    for (k, v) in raw.parameters.unwrap_or_default() {
        let p = match v {
            serde_json::Value::Bool(b) => Param::Bool(b),
            serde_json::Value::Number(n) if n.is_i64() => {
                Param::Int(n.as_i64().unwrap_or_default())
            }
            serde_json::Value::Number(n) => Param::Double(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => Param::Str(s),
            other => {
                return Err(PacketError::invalid(format!(
                    "parameters.{k}: {other} is not supported; expected a string, number or boolean"
                )));
            }
        };
        parameters.push((k, p));
    }
    Ok(Plan {
        model,
        version,
        inputs,
        outputs,
        timeout_secs,
        binary: raw.binary.unwrap_or(false),
        parameters,
        ranges,
    })
}

/// Parses `TRITON_INPUT_SHAPE` (`[1,3,640,640]` or `1,3,640,640`).
pub fn parse_shape(s: &str) -> Result<Vec<i64>, String> {
    let t = s.trim().trim_start_matches('[').trim_end_matches(']');
    t.split(',')
        .map(|d| {
            d.trim().parse::<i64>().map_err(|_| {
                format!("TRITON_INPUT_SHAPE: '{s}' is not a list of integers like [1,3,640,640]")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use triton_proto::multimodal::{Frame, Image, Meta, Text};

    fn defaults() -> Defaults {
        Defaults {
            model: "yolov8n".into(),
            input: InputSpec {
                name: "images".into(),
                shape: vec![1, 3, 4, 4],
                dtype: "FP32".into(),
                from: "image".into(),
            },
            outputs: vec!["output0".into()],
            timeout_secs: 30.0,
        }
    }

    fn packet(note: &str, payload: Option<Payload>) -> DataPacket {
        DataPacket {
            meta: Some(Meta {
                correlation_id: "c".into(),
                note: note.into(),
                ..Default::default()
            }),
            payload,
        }
    }

    fn image(n: usize) -> Option<Payload> {
        Some(Payload::Image(Image {
            data: vec![0; n].into(),
        }))
    }

    #[test]
    fn defaults_apply_and_sizes_checked() {
        let p = plan(&packet("", image(192)), &defaults()).unwrap();
        assert_eq!(p.model, "yolov8n");
        assert_eq!(p.ranges, vec![0..192]);
        let e = plan(&packet("", image(191)), &defaults()).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(e.message.contains("needs 192 bytes"), "{}", e.message);
        let e = plan(&packet("", image(200)), &defaults()).unwrap_err();
        assert!(
            e.message.contains("200 bytes") && e.message.contains("need 192"),
            "{}",
            e.message
        );
    }

    #[test]
    fn note_beats_text_and_text_is_used() {
        let note =
            r#"{"model":"m","inputs":[{"name":"x","shape":[2],"dtype":"UINT8","from":"frame"}]}"#;
        let p = DataPacket {
            meta: Some(Meta {
                note: note.into(),
                ..Default::default()
            }),
            payload: Some(Payload::Frame(Frame {
                data: vec![1, 2].into(),
            })),
        };
        assert_eq!(plan(&p, &defaults()).unwrap().model, "m");
        let t = packet(
            "",
            Some(Payload::Text(Text {
                text: r#"{"model":"fromtext","inputs":[]}"#.into(),
            })),
        );
        assert!(
            plan(&t, &defaults())
                .unwrap_err()
                .message
                .contains("inputs")
        );
    }

    #[test]
    fn several_inputs_share_one_field() {
        let note = r#"{"inputs":[{"name":"a","shape":[2],"dtype":"FP32","from":"image"},{"name":"b","shape":[3],"dtype":"UINT8","from":"image"}]}"#;
        let p = plan(&packet(note, image(11)), &defaults()).unwrap();
        assert_eq!(p.ranges, vec![0..8, 8..11]);
        assert!(plan(&packet(note, image(12)), &defaults()).is_err());
        assert!(plan(&packet(note, image(10)), &defaults()).is_err());
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            ("{not json", "meta.note"),
            (r#"{"modle":"x"}"#, "unknown field"),
            (
                r#"{"inputs":[{"name":"a","shape":[1],"dtype":"FP64","from":"image"}]}"#,
                "dtype",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[1],"dtype":"FP32","from":"audio"}]}"#,
                ".from",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[1],"dtype":"FP32","from":"frame"}]}"#,
                "carries a 'image' payload",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[-1],"dtype":"FP32","from":"image"}]}"#,
                "shape[0]",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[4294967296,4294967296,4294967296],"dtype":"FP32","from":"image"}]}"#,
                "overflows",
            ),
            (r#"{"timeout":-1}"#, "timeout"),
            (r#"{"version":[1]}"#, "version"),
            (r#"{"model":""}"#, "model"),
        ];
        for (note, want) in cases {
            let e = plan(&packet(note, image(192)), &defaults()).unwrap_err();
            assert!(e.message.contains(want), "{note}: {}", e.message);
            assert_eq!(e.code, Code::InvalidArgument);
        }
        let e = plan(&packet("", image(0)), &defaults()).unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
        let e = plan(&packet("", None), &defaults()).unwrap_err();
        assert!(e.message.contains("'none' payload"), "{}", e.message);
    }

    #[test]
    fn dtypes_triton_knows_but_we_do_not_take_are_refused_by_name() {
        for d in ["FP64", "UINT16", "INT16", "UINT32", "UINT64"] {
            assert!(dtype::size_of(d).is_some(), "{d}");
            let note = format!(
                r#"{{"inputs":[{{"name":"a","shape":[1],"dtype":"{d}","from":"image"}}]}}"#
            );
            let e = plan(&packet(&note, image(8)), &defaults()).unwrap_err();
            assert_eq!(
                e.message,
                format!("inputs[0] (a).dtype: '{d}' is not supported; expected one of {DTYPES}")
            );
        }
        for d in [
            "FP32", "FP16", "BF16", "INT64", "INT32", "INT8", "UINT8", "BOOL",
        ] {
            let n = dtype::size_of(d).unwrap();
            let note = format!(
                r#"{{"inputs":[{{"name":"a","shape":[3],"dtype":"{d}","from":"image"}}]}}"#
            );
            assert_eq!(
                plan(&packet(&note, image(3 * n)), &defaults())
                    .unwrap()
                    .ranges,
                vec![0..3 * n],
                "{d}"
            );
        }
    }

    #[test]
    fn tensor_sizes_allow_zero_dims_and_refuse_negative_ones() {
        assert_eq!(tensor_bytes(&[2, 3], "FP32"), Ok(24));
        assert_eq!(tensor_bytes(&[], "INT64"), Ok(8));
        assert_eq!(tensor_bytes(&[4, 0], "FP32"), Ok(0));
        assert_eq!(
            tensor_bytes(&[1, -1], "FP32"),
            Err("shape[1] is -1; expected a non-negative size".into())
        );
        assert_eq!(tensor_bytes(&[1], "F32"), Err("unknown dtype 'F32'".into()));
    }

    #[test]
    fn from_defaults_to_the_image_payload() {
        let note = r#"{"inputs":[{"name":"a","shape":[2],"dtype":"UINT8"}]}"#;
        let p = plan(&packet(note, image(2)), &defaults()).unwrap();
        assert_eq!(p.inputs[0].from, "image");
        assert_eq!(p.ranges, vec![0..2]);
    }

    #[test]
    fn versions_are_whole_numbers_or_strings() {
        let v = |version: &str| {
            plan(
                &packet(&format!(r#"{{"version":{version}}}"#), image(192)),
                &defaults(),
            )
            .map(|p| p.version)
            .map_err(|e| e.message)
        };
        assert_eq!(v("3"), Ok("3".into()));
        assert_eq!(v(r#""2""#), Ok("2".into()));
        assert_eq!(v("null"), Ok(String::new()));
        for bad in ["-1", "1.5", "true"] {
            let e = v(bad).unwrap_err();
            assert!(
                e.starts_with("version: expected a version number or string"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn parameters_keep_their_types() {
        let note = r#"{"parameters":{"i":5,"neg":-2,"big":18446744073709551615,"f":2.5,"s":"x","b":true}}"#;
        let mut p = plan(&packet(note, image(192)), &defaults())
            .unwrap()
            .parameters;
        p.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            p,
            vec![
                ("b".into(), Param::Bool(true)),
                ("big".into(), Param::Double(18446744073709551615.0)),
                ("f".into(), Param::Double(2.5)),
                ("i".into(), Param::Int(5)),
                ("neg".into(), Param::Int(-2)),
                ("s".into(), Param::Str("x".into())),
            ]
        );
        let e = plan(
            &packet(r#"{"parameters":{"l":[1]}}"#, image(192)),
            &defaults(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "parameters.l: [1] is not supported; expected a string, number or boolean"
        );
    }

    #[test]
    fn timeouts_between_zero_and_an_hour() {
        let t = |s: &str| {
            plan(
                &packet(&format!(r#"{{"timeout":{s}}}"#), image(192)),
                &defaults(),
            )
            .map(|p| p.timeout_secs)
        };
        assert_eq!(t("3600"), Ok(3600.0));
        assert_eq!(t("0.001"), Ok(0.001));
        assert!(t("0").is_err());
        assert!(t("3600.5").is_err());
        assert_eq!(
            plan(&packet("", image(192)), &defaults())
                .unwrap()
                .timeout_secs,
            30.0
        );
    }

    #[test]
    fn binary_and_outputs_come_from_the_note_or_the_defaults() {
        let p = plan(&packet("", image(192)), &defaults()).unwrap();
        assert!(!p.binary);
        assert_eq!(p.outputs, ["output0"]);
        let p = plan(
            &packet(r#"{"binary":true,"outputs":["a","b"]}"#, image(192)),
            &defaults(),
        )
        .unwrap();
        assert!(p.binary);
        assert_eq!(p.outputs, ["a", "b"]);
    }

    #[test]
    fn payload_kinds_and_bytes() {
        let frame = Some(Payload::Frame(Frame {
            data: vec![1].into(),
        }));
        let p = packet("", frame);
        assert_eq!(payload_kind(&p), "frame");
        assert_eq!(payload_bytes(&p, "frame").map(|b| b.len()), Some(1));
        assert!(payload_bytes(&p, "image").is_none());
        assert_eq!(payload_kind(&packet("", image(1))), "image");
        let video = packet(
            "",
            Some(Payload::Video(triton_proto::multimodal::Video {
                data: vec![1, 2].into(),
            })),
        );
        assert_eq!(payload_kind(&video), "video");
        assert_eq!(payload_bytes(&video, "video").map(|b| b.len()), Some(2));
        assert!(payload_bytes(&video, "frame").is_none());
        assert_eq!(payload_kind(&packet("", None)), "none");
        let text = packet("", Some(Payload::Text(Text { text: "{}".into() })));
        assert_eq!(payload_kind(&text), "text");
        assert!(payload_bytes(&text, "text").is_none());
    }

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("[1,3,640,640]").unwrap(), vec![1, 3, 640, 640]);
        assert_eq!(parse_shape(" 1, 2 ").unwrap(), vec![1, 2]);
        assert!(parse_shape("[1,x]").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_control_json_never_panics(note in ".{0,200}", n in 0usize..300) {
            let _ = plan(&packet(&note, image(n)), &defaults());
        }

        #[test]
        fn arbitrary_structured_json_never_panics(
            dims in proptest::collection::vec(proptest::num::i64::ANY, 0..6),
            dtype in "(FP32|FP16|INT8|UINT8|BOOL|INT64|X)",
            from in "(image|frame|video|text|)",
            n in 0usize..64,
        ) {
            let note = serde_json::json!({"inputs":[{"name":"a","shape":dims,"dtype":dtype,"from":from}]}).to_string();
            let r = plan(&packet(&note, image(n)), &defaults());
            if let Ok(p) = r {
                // Accepted plans always cover the payload exactly.
                proptest::prop_assert_eq!(p.ranges[0].clone(), 0..n);
            }
        }
    }
}

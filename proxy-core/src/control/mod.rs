//! Control JSON: which model, which inputs read which payload bytes, which outputs, timeout.
//!
//! Schema: [`triton_proto::wire::Control`], the type the client writes it with:
//! `{"model","version"?,"inputs":[{"name","shape","dtype","from"}],"outputs":[..],"timeout"?,
//! "binary"?,"parameters"?}`. First found wins: `meta.note`, else the text payload, else the proxy's
//! defaults. Every problem is a [`PacketError`] naming the field and the expected value.

use tonic::Code;
use triton_proto::dtype;
use triton_proto::multimodal::{DataPacket, data_packet::Payload};
use triton_proto::wire::Control;
pub use triton_proto::wire::ControlInput;

use crate::rope::Rope;

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

/// A failed call to Triton, answered in the packet's Ack with the same code and message.
impl From<tonic::Status> for PacketError {
    fn from(s: tonic::Status) -> Self {
        PacketError {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// Defaults from the proxy's configuration.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub model: String,
    pub input: ControlInput,
    pub outputs: Vec<String>,
    pub timeout_secs: f64,
}

/// A validated request plan for one packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub model: String,
    pub version: String,
    pub inputs: Vec<ControlInput>,
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

/// A received packet: its fields, with the bytes of its payload held apart (the payload
/// message's own `data` is empty), in the pieces they arrived in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packet {
    pub pkt: DataPacket,
    pub data: Rope,
}

impl From<DataPacket> for Packet {
    fn from(mut pkt: DataPacket) -> Self {
        let data = match &mut pkt.payload {
            Some(Payload::Frame(f)) => std::mem::take(&mut f.data),
            Some(Payload::Image(f)) => std::mem::take(&mut f.data),
            Some(Payload::Video(f)) => std::mem::take(&mut f.data),
            _ => bytes::Bytes::new(),
        };
        Packet {
            pkt,
            data: Rope::from(data),
        }
    }
}

/// Length of the payload field `from` (`frame`, `image` or `video`), if the packet carries that
/// field.
pub fn payload_len(p: &Packet, from: &str) -> Option<usize> {
    match (&p.pkt.payload, from) {
        (Some(Payload::Frame(_)), "frame")
        | (Some(Payload::Image(_)), "image")
        | (Some(Payload::Video(_)), "video") => Some(p.data.len()),
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
pub fn plan(packet: &Packet, defaults: &Defaults) -> Result<Plan, PacketError> {
    let p = &packet.pkt;
    let note = p.meta.as_ref().map(|m| m.note.trim()).unwrap_or("");
    let raw: Control = if !note.is_empty() {
        serde_json::from_str(note)
            .map_err(|e| PacketError::invalid(format!("meta.note: not valid control JSON: {e}")))?
    } else if let Some(Payload::Text(t)) = &p.payload {
        serde_json::from_str(t.text.trim())
            .map_err(|e| PacketError::invalid(format!("text.text: not valid control JSON: {e}")))?
    } else {
        Control::default()
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
        let Some(len) = payload_len(packet, from) else {
            return Err(PacketError::invalid(format!(
                "{at}.from: '{from}', but the packet carries a '{}' payload; expected a '{from}' payload",
                payload_kind(p)
            )));
        };
        if len == 0 {
            return Err(PacketError::invalid(format!(
                "{from}.data: payload is empty; expected the bytes of {at}"
            )));
        }
        let need = tensor_bytes(&inp.shape, &inp.dtype)
            .map_err(|e| PacketError::invalid(format!("{at}.shape: {e}")))?;
        let start = *offsets.get(from).unwrap_or(&0);
        let end = start.checked_add(need).filter(|&e| e <= len).ok_or_else(|| {
            PacketError::invalid(format!(
                "{at}: needs {need} bytes (shape {:?} × {} bytes per {}) from '{from}', but only {} of its {} bytes are left",
                inp.shape,
                dtype::size_of(&inp.dtype).unwrap_or(0),
                inp.dtype,
                len - start.min(len),
                len
            ))
        })?;
        offsets.insert(from, end);
        ranges.push(start..end);
    }
    for (from, used) in &offsets {
        let len = payload_len(packet, from).unwrap_or(0);
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
mod tests;

//! The two JSON texts of the `multimodal` protocol, as types that both sides use: the control
//! JSON a client puts in `Meta.note` ([`Control`]) and the JSON of an `Ack.message`
//! ([`AckMessage`]). The field names are the seed protocol's and are pinned by the tests below;
//! renaming one breaks every deployed client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The control JSON: which model, which inputs read which payload bytes, which outputs, and the
/// timeout. Every field is optional (the proxy's defaults fill the gaps); unknown fields are
/// refused, so that a misspelt one is an error rather than silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A version number or string; empty or absent: the server's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<ControlInput>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<String>>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Outputs as binary `Ack.raw_outputs` (true) or base64 inside the message (false, default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<bool>,
    /// Request parameters forwarded to Triton (strings, numbers, booleans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One input of [`Control`]: its tensor, and the payload field its bytes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
    /// `frame`, `image` or `video`; `image` when absent.
    #[serde(default = "default_from")]
    pub from: String,
}

fn default_from() -> String {
    "image".into()
}

/// The JSON of an `Ack.message`: the model that answered and each output's description, with
/// its bytes in base64 unless they travel as binary `raw_outputs`. Unknown fields are ignored
/// (a newer proxy may say more).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AckMessage {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub version: String,
    /// By output name, in name order.
    #[serde(default)]
    pub outputs: BTreeMap<String, AckOutput>,
}

/// One output in an [`AckMessage`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AckOutput {
    /// numpy-style name (`float32`), see [`crate::dtype::numpy_name`].
    #[serde(default)]
    pub dtype: String,
    #[serde(default)]
    pub shape: Vec<i64>,
    /// The tensor's bytes in standard base64; absent when they are in `raw_outputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The seed protocol's names, byte for byte: what a client written against it sends.
    #[test]
    fn control_field_names_are_the_seed_protocols() {
        let c = Control {
            model: Some("m".into()),
            version: Some(json!("2")),
            inputs: Some(vec![ControlInput {
                name: "images".into(),
                shape: vec![1, 3, 2, 2],
                dtype: "UINT8".into(),
                from: "frame".into(),
            }]),
            outputs: Some(vec!["output0".into()]),
            timeout: Some(1.5),
            binary: Some(true),
            parameters: None,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"model":"m","version":"2","inputs":[{"name":"images","shape":[1,3,2,2],"dtype":"UINT8","from":"frame"}],"outputs":["output0"],"timeout":1.5,"binary":true}"#
        );
        let seed: Control = serde_json::from_str(
            r#"{"model":"m","inputs":[{"name":"x","shape":[4],"dtype":"FP32"}],"parameters":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(seed.inputs.unwrap()[0].from, "image");
        assert_eq!(seed.parameters.unwrap()["k"], json!(1));
        let typo = serde_json::from_str::<Control>(r#"{"modle":"m"}"#).unwrap_err();
        assert!(typo.to_string().contains("unknown field `modle`"), "{typo}");
    }

    #[test]
    fn ack_message_names_are_the_seed_protocols() {
        let m: AckMessage = serde_json::from_str(
            r#"{"model":"m","version":"3","outputs":{"b":{"dtype":"float32","shape":[1,2],"b64":"AAAA"},"a":{"dtype":"int32","shape":[1]}},"future":1}"#,
        )
        .unwrap();
        assert_eq!((m.model.as_str(), m.version.as_str()), ("m", "3"));
        assert_eq!(m.outputs.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.outputs["b"].b64.as_deref(), Some("AAAA"));
        assert_eq!(m.outputs["a"].shape, [1]);
        assert_eq!(
            serde_json::to_value(&m.outputs["a"]).unwrap(),
            json!({"dtype": "int32", "shape": [1]})
        );
    }
}

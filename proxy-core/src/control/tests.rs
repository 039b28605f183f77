//! Tests of the control JSON's validation: every refusal names its field and the expected value.

use super::*;
use triton_proto::multimodal::{Frame, Image, Meta, Text};

/// The plan of a packet as the proxy receives it (its payload held apart).
fn plan(p: &DataPacket, d: &Defaults) -> Result<Plan, PacketError> {
    super::plan(&Packet::from(p.clone()), d)
}

fn defaults() -> Defaults {
    Defaults {
        model: "yolov8n".into(),
        input: ControlInput {
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
        let note =
            format!(r#"{{"inputs":[{{"name":"a","shape":[1],"dtype":"{d}","from":"image"}}]}}"#);
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
        let note =
            format!(r#"{{"inputs":[{{"name":"a","shape":[3],"dtype":"{d}","from":"image"}}]}}"#);
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
    let note =
        r#"{"parameters":{"i":5,"neg":-2,"big":18446744073709551615,"f":2.5,"s":"x","b":true}}"#;
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
    let payload_bytes = |p: &DataPacket, from: &str| payload_len(&Packet::from(p.clone()), from);
    let frame = Some(Payload::Frame(Frame {
        data: vec![1].into(),
    }));
    let p = packet("", frame);
    assert_eq!(payload_kind(&p), "frame");
    assert_eq!(payload_bytes(&p, "frame"), Some(1));
    assert!(payload_bytes(&p, "image").is_none());
    assert_eq!(payload_kind(&packet("", image(1))), "image");
    let video = packet(
        "",
        Some(Payload::Video(triton_proto::multimodal::Video {
            data: vec![1, 2].into(),
        })),
    );
    assert_eq!(payload_kind(&video), "video");
    assert_eq!(payload_bytes(&video, "video"), Some(2));
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

//! Tests of [`super`]: output sizes, the region offsets, the lease's request (no bytes, three
//! parameters per tensor) and Triton's too-small refusal.

use super::*;

fn out(name: &str, dtype: &str, shape: &[i64], batched: bool) -> OutSpec {
    OutSpec {
        name: name.into(),
        dtype: dtype.into(),
        shape: shape.to_vec(),
        batched,
    }
}

#[test]
fn output_sizes_come_from_fixed_shapes_only() {
    assert_eq!(
        out("o", "FP32", &[-1, 8, 8400], true).bytes(2),
        Some(2 * 8 * 8400 * 4)
    );
    assert_eq!(out("o", "FP16", &[1, 8, 10], false).bytes(5), Some(160));
    assert_eq!(out("o", "FP32", &[-1, -1, 6], true).bytes(1), None);
    assert_eq!(out("o", "FP32", &[-1, 6], false).bytes(1), None);
    assert_eq!(out("o", "BYTES", &[4], false).bytes(1), None);
    assert_eq!(out("o", "INT64", &[], false).bytes(1), Some(8));
    assert_eq!(out("o", "FP32", &[i64::MAX, 4], false).bytes(1), None);
}

#[test]
fn layout_aligns_guesses_and_skips_bytes_outputs() {
    let pool = ShmPool::new(
        Target::new("http://127.0.0.1:1", triton_endpoint::Names::ELEMENT),
        Auth::default(),
    );
    pool.set_outputs(vec![
        out("boxes", "FP32", &[-1, 100, 4], true),
        out("dets", "FP32", &[-1, -1, 6], true),
        out("class_names", "BYTES", &[4], false),
    ]);
    let spec = InputDesc {
        input_name: "images".into(),
        dtype: "FP32".into(),
        shape: vec![1, 3, 8, 8],
    };
    let names: Vec<String> = ["boxes", "dets", "class_names", "unknown"]
        .map(String::from)
        .into();
    let l = pool.offsets(&spec, 768, &names);
    assert_eq!(l.input, 768);
    assert_eq!(
        l.outputs,
        vec![
            ("boxes".into(), 768, 1600),
            ("dets".into(), 2368, GUESS_MIN)
        ]
    );
    assert_eq!(l.len(), 2368 + GUESS_MIN);
    pool.state().bytes_only.insert("dets".into());
    assert_eq!(pool.offsets(&spec, 768, &names).outputs.len(), 1);
    // A described size of 4 TiB gets no room (its output comes back as bytes); the others keep
    // theirs.
    pool.set_outputs(vec![
        out("boxes", "FP32", &[-1, 100, 4], true),
        out("huge", "FP32", &[-1, 1 << 40], true),
    ]);
    let names: Vec<String> = ["huge", "boxes"].map(String::from).into();
    let l = pool.offsets(&spec, 768, &names);
    assert_eq!(l.outputs, vec![("boxes".into(), 768, 1600)]);
}

#[test]
fn the_too_small_refusal_names_its_output() {
    let m = "shared memory size specified with the request for output 'output0' (100 bytes) should be at least 192 bytes to hold the results";
    assert_eq!(too_small(m), Some("output0"));
    assert_eq!(too_small("for output 'x' failed"), None);
    assert_eq!(too_small("should be at least 3 bytes"), None);
}

#[test]
fn a_leased_request_carries_no_bytes_and_points_each_tensor_at_its_place_in_the_region() {
    use triton_proto::inference::model_infer_request::{
        InferInputTensor, InferRequestedOutputTensor,
    };
    let pool = ShmPool::new(
        Target::new("http://127.0.0.1:1", triton_endpoint::Names::ELEMENT),
        Auth::default(),
    );
    let offsets = Offsets {
        input: 768,
        outputs: vec![("boxes".into(), 768, 1600)],
    };
    let region = shm::Region::create(&shm::new_name(), offsets.len()).unwrap();
    let name = region.name().to_string();
    let lease = Lease {
        pool: pool.clone(),
        slot: Some(Slot {
            region,
            offsets,
            generation: 0,
        }),
    };
    let mut req = ModelInferRequest {
        inputs: vec![InferInputTensor {
            name: "images".into(),
            ..Default::default()
        }],
        outputs: ["boxes", "class_names"]
            .map(|n| InferRequestedOutputTensor {
                name: n.into(),
                ..Default::default()
            })
            .into(),
        raw_input_contents: vec![vec![7u8; 768].into()],
        ..Default::default()
    };
    lease.fill(&mut req);
    assert!(
        req.raw_input_contents.is_empty(),
        "the tensor travels in the region, not in the message"
    );
    let points = |p: &std::collections::HashMap<String, InferParameter>| {
        use infer_parameter::ParameterChoice::{Int64Param, StringParam};
        let get = |k: &str| p.get(k).and_then(|v| v.parameter_choice.clone());
        match (
            get("shared_memory_region"),
            get("shared_memory_offset"),
            get("shared_memory_byte_size"),
        ) {
            (Some(StringParam(r)), Some(Int64Param(o)), Some(Int64Param(n))) => Some((r, o, n)),
            _ => None,
        }
    };
    assert_eq!(
        points(&req.inputs[0].parameters),
        Some((name.clone(), 0, 768))
    );
    assert_eq!(
        points(&req.outputs[0].parameters),
        Some((name.clone(), 768, 1600))
    );
    assert!(
        req.outputs[1].parameters.is_empty(),
        "an output without room comes back as bytes"
    );
    drop(lease);
    assert_eq!(
        pool.state().retired,
        vec![name],
        "an unfinished lease's region is retired"
    );
}

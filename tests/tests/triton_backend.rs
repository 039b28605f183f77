//! The real Triton test backend: health, metadata, configuration, unary and streaming inference
//! of `shapes_yolov8` on a tensor with two drawn rectangles, plus the other layouts.

use gst_triton_tests::triton::{Triton, shared_url};
use gst_triton_tests::*;
use triton_proto::inference::model_infer_request::InferInputTensor;
use triton_proto::inference::*;

fn request(model: &str, id: &str, w: usize, h: usize, rects: &[Rect]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        id: id.into(),
        inputs: vec![InferInputTensor {
            name: "images".into(),
            datatype: "FP32".into(),
            shape: vec![1, 3, h as i64, w as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![draw_tensor(w, h, rects).into()],
        ..Default::default()
    }
}

fn two_rects() -> Vec<Rect> {
    vec![
        Rect::new(50, 100, 200, 100, 0),
        Rect::new(400, 300, 60, 120, 2),
    ]
}

fn yolov8_boxes(resp: &ModelInferResponse) -> Vec<Rect> {
    assert_eq!(resp.outputs.len(), 1);
    assert_eq!(resp.outputs[0].name, "output0");
    assert_eq!(resp.outputs[0].shape, vec![1, 8, 8400]);
    decode_yolov8_simple(&f32s(&resp.raw_output_contents[0]), 4, 8400, 0.25)
}

#[tokio::test]
async fn health_metadata_config_and_inference() {
    let url = shared_url();
    let mut c = triton_client(&url).await.unwrap();

    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    for m in ["shapes_yolov8", "shapes_nms", "shapes_effnms", "identity"] {
        let ready = c.model_ready(ModelReadyRequest {
            name: m.into(),
            version: String::new(),
        });
        assert!(ready.await.unwrap().into_inner().ready, "{m} not ready");
    }

    let meta = c
        .model_metadata(ModelMetadataRequest {
            name: "shapes_yolov8".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "shapes_yolov8");
    assert_eq!(meta.inputs[0].name, "images");
    assert_eq!(meta.inputs[0].datatype, "FP32");
    // Batched (max_batch_size 8): Triton shows the batch dimension as -1.
    assert_eq!(meta.inputs[0].shape, vec![-1, 3, -1, -1]);
    assert_eq!(meta.outputs[0].name, "output0");
    assert_eq!(meta.outputs[0].shape, vec![-1, 8, 8400]);

    let cfg = c
        .model_config(ModelConfigRequest {
            name: "shapes_yolov8".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(cfg.name, "shapes_yolov8");
    assert_eq!(cfg.backend, "python");
    assert_eq!(cfg.max_batch_size, 8);
    assert_eq!(cfg.input[0].data_type, DataType::TypeFp32 as i32);
    assert_eq!(cfg.output[0].dims, vec![8, 8400]);
    assert_eq!(
        cfg.parameters["class_names"].string_value,
        CLASS_NAMES.join(",")
    );

    // Unary.
    let resp = c
        .model_infer(request("shapes_yolov8", "u1", 640, 640, &two_rects()))
        .await
        .unwrap();
    let resp = resp.into_inner();
    assert_eq!(resp.id, "u1");
    assert_same_boxes(&yolov8_boxes(&resp), &two_rects(), 0.01);

    // Streaming: several requests, each answered with its own id and its own rectangles.
    let frames: Vec<Vec<Rect>> = (0..5u32)
        .map(|i| {
            vec![
                Rect::new(20 + 40 * i, 30, 64, 48, (i % 4) as usize),
                Rect::new(300, 200 + 10 * i, 90, 90, 3),
            ]
        })
        .collect();
    let reqs: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, r)| request("shapes_yolov8", &format!("s{i}"), 640, 640, r))
        .collect();
    let mut stream = c
        .model_stream_infer(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    let mut seen = 0;
    while let Some(msg) = stream.message().await.unwrap() {
        assert!(msg.error_message.is_empty(), "{}", msg.error_message);
        let resp = msg.infer_response.unwrap();
        let i: usize = resp.id.trim_start_matches('s').parse().unwrap();
        assert_same_boxes(&yolov8_boxes(&resp), &frames[i], 0.01);
        seen += 1;
        if seen == frames.len() {
            break;
        }
    }
    assert_eq!(seen, frames.len());
}

#[tokio::test]
async fn other_layouts_and_sizes() {
    let url = shared_url();
    let mut c = triton_client(&url).await.unwrap();
    // Non-square dynamic size.
    let rects = vec![Rect::new(10, 10, 30, 20, 1), Rect::new(100, 50, 16, 16, 3)];
    let r = c
        .model_infer(request("shapes_nms", "n", 320, 192, &rects))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outputs[0].shape, vec![1, 2, 6]);
    let found = nms_rects(&f32s(&r.raw_output_contents[0]));
    assert_same_boxes(&found, &rects, 0.01);

    let r = c
        .model_infer(request("shapes_effnms", "e", 320, 192, &rects))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = r.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["num_dets", "boxes", "scores", "classes"]);
    let num = i32s(&r.raw_output_contents[0])[0] as usize;
    let boxes = f32s(&r.raw_output_contents[1]);
    let classes = i32s(&r.raw_output_contents[3]);
    let found: Vec<Rect> = (0..num)
        .map(|i| Rect {
            x1: boxes[4 * i],
            y1: boxes[4 * i + 1],
            x2: boxes[4 * i + 2],
            y2: boxes[4 * i + 3],
            class: classes[i] as usize,
        })
        .collect();
    assert_same_boxes(&found, &rects, 0.01);

    // Empty picture: no detections, shape [1,0,6].
    let r = c
        .model_infer(request("shapes_nms", "z", 64, 64, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outputs[0].shape, vec![1, 0, 6]);

    // Identity returns the bytes it got.
    let req = request("identity", "i", 32, 16, &rects[..1]);
    let sent = req.raw_input_contents[0].clone();
    let r = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(r.raw_output_contents[0], sent);
}

#[tokio::test]
async fn bad_input_is_an_error_not_a_crash() {
    let url = shared_url();
    let mut c = triton_client(&url).await.unwrap();
    // Wrong channel count: the model reports a clear error naming the input.
    let mut req = request("shapes_nms", "bad", 8, 8, &[]);
    req.inputs[0].shape = vec![1, 4, 8, 6];
    let err = c.model_infer(req).await.unwrap_err();
    assert!(
        err.message().contains("images") || err.message().contains("shape"),
        "{}",
        err.message()
    );
    // The server still works.
    let r = c
        .model_infer(request("shapes_nms", "ok", 8, 8, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outputs[0].shape, vec![1, 0, 6]);
}

#[test]
fn private_server_dies_on_drop_and_restarts() {
    let mut t = Triton::start().unwrap();
    assert!(t.is_running());
    let port = t.grpc_port;
    t.restart().unwrap();
    assert_eq!(t.grpc_port, port);
    assert!(t.is_running());
    drop(t);
    // Nothing listens on the port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn broken_model_reports_its_error() {
    let dir = std::env::temp_dir().join(format!("broken-repo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("broken/1")).unwrap();
    std::fs::write(
        dir.join("broken/config.pbtxt"),
        "name: \"broken\"\nbackend: \"python\"\nmax_batch_size: 0\n\
         input [ { name: \"x\", data_type: TYPE_FP32, dims: [ 1 ] } ]\n\
         output [ { name: \"y\", data_type: TYPE_FP32, dims: [ 1 ] } ]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("broken/1/model.py"),
        "raise RuntimeError('deliberately broken model')\n",
    )
    .unwrap();
    let err = Triton::start_with(&dir)
        .err()
        .expect("a broken model must fail the start");
    assert!(
        format!("{err:#}").contains("deliberately broken model"),
        "{err:#}"
    );
}

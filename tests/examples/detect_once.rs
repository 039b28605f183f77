//! Sends one 640×640 tensor with drawn rectangles to a Triton `shapes_yolov8` model and prints what
//! came back. Usage: `detect_once [TRITON_URL]` (default `http://127.0.0.1:8001`).

use gst_triton_tests::*;
use triton_proto::inference::ModelInferRequest;
use triton_proto::inference::model_infer_request::InferInputTensor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8001".into());
    let drawn = [
        Rect::new(50, 100, 200, 100, 0),
        Rect::new(400, 300, 60, 120, 2),
    ];
    let mut client = triton_client(&url).await?;
    let resp = client
        .model_infer(ModelInferRequest {
            model_name: "shapes_yolov8".into(),
            inputs: vec![InferInputTensor {
                name: "images".into(),
                datatype: "FP32".into(),
                shape: vec![1, 3, 640, 640],
                ..Default::default()
            }],
            raw_input_contents: vec![draw_tensor(640, 640, &drawn).into()],
            ..Default::default()
        })
        .await?
        .into_inner();
    let found = decode_yolov8_simple(&f32s(&resp.raw_output_contents[0]), 4, 8400, 0.25);
    for r in &found {
        println!(
            "{:>6} box [{:.0}, {:.0}, {:.0}, {:.0}]",
            CLASS_NAMES[r.class], r.x1, r.y1, r.x2, r.y2
        );
    }
    assert_same_boxes(&found, &drawn, 0.5);
    println!(
        "drawn {} rectangles, Triton found all {} at the right places",
        drawn.len(),
        found.len()
    );
    Ok(())
}

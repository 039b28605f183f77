//! Sends one 640×640 tensor with drawn rectangles to a Triton `shapes_yolov8` model through
//! [`triton_client`] (no GStreamer) and prints what came back. Usage: `detect_once [TRITON_URL]`
//! (default `http://127.0.0.1:8001`).

use std::sync::Arc;
use std::time::Duration;

use gst_triton_tests::*;
use triton_client::{Client, ClientConfig, InputDesc, Request, Transport};
use triton_endpoint::{Auth, Names, Target};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8001".into());
    let drawn = [
        Rect::new(50, 100, 200, 100, 0),
        Rect::new(400, 300, 60, 120, 2),
    ];
    let client = Client::new(ClientConfig {
        target: Target::new(&url, Names::ELEMENT),
        auth: Auth::default(),
        transport: Transport::TritonStream,
        kserve_service: triton_client::transport::unary::DEFAULT_SERVICE.into(),
        model: "shapes_yolov8".into(),
        model_version: String::new(),
        output_names: vec![],
        timeout: Duration::from_secs(30),
        shm: None,
    });
    let answer = client
        .infer(Request {
            id: "detect-once:0".into(),
            desc: Arc::new(InputDesc {
                input_name: "images".into(),
                dtype: "FP32".into(),
                shape: vec![1, 3, 640, 640],
            }),
            data: draw_tensor(640, 640, &drawn).into(),
        })
        .await?;
    let found = decode_yolov8_simple(&f32s(&answer.outputs[0].data), 4, 8400, 0.25);
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

//! 640×640 FP32 frames to the `identity` model three ways — direct to Triton, through triton-proxy
//! with base64 outputs, through triton-proxy with binary outputs — over 1 and 8 streams, 8 requests
//! in flight per stream. Prints frames/s and the ratio to direct, all measured in this run.
//! `cargo bench -p gst-triton-tests --bench proxy`

use std::time::Instant;

use futures::StreamExt;
use gst_triton_tests::proxy::{Chat, TestProxy, image_packet};
use gst_triton_tests::triton::Triton;
use gst_triton_tests::{images_request, triton_client};

const FRAMES_PER_STREAM: usize = 120;

fn frame() -> bytes::Bytes {
    bytes::Bytes::from(
        (0..3 * 640 * 640)
            .flat_map(|i: u32| ((i % 255) as f32 / 255.0).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

async fn direct(url: String, streams: usize) -> f64 {
    let data = frame();
    let t = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let (url, data) = (url.clone(), data.clone());
            tokio::spawn(async move {
                let c = triton_client(&url).await.unwrap();
                futures::stream::iter(0..FRAMES_PER_STREAM)
                    .map(|i| {
                        let mut c = c.clone();
                        let data = data.clone();
                        async move {
                            let req = images_request("identity", i, [1, 3, 640, 640], data);
                            let r = c.model_infer(req).await.unwrap().into_inner();
                            assert_eq!(r.raw_output_contents[0].len(), 640 * 640 * 12);
                        }
                    })
                    .buffered(8)
                    .collect::<Vec<_>>()
                    .await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (streams * FRAMES_PER_STREAM) as f64 / t.elapsed().as_secs_f64()
}

async fn via_proxy(url: String, streams: usize, binary: bool) -> f64 {
    let data = frame().to_vec();
    let note = serde_json::json!({"model":"identity","inputs":[{"name":"images","shape":[1,3,640,640],"dtype":"FP32","from":"image"}],"binary":binary}).to_string();
    let t = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let (url, data, note) = (url.clone(), data.clone(), note.clone());
            tokio::spawn(async move {
                let mut chat = Chat::open_default(&url).await;
                let tx = chat.tx.clone();
                let sender = tokio::spawn(async move {
                    for i in 0..FRAMES_PER_STREAM {
                        tx.send(image_packet(&i.to_string(), &note, data.clone()))
                            .await
                            .unwrap();
                    }
                });
                for _ in 0..FRAMES_PER_STREAM {
                    let ack = chat.rx.message().await.unwrap().unwrap();
                    assert_eq!(ack.status_code, 0, "{}", ack.status_message);
                }
                sender.await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (streams * FRAMES_PER_STREAM) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let triton = tokio::task::spawn_blocking(|| Triton::start().expect("start Triton"))
        .await
        .unwrap();
    let url = triton.url();
    let proxy = TestProxy::start(&url, &[]).await.unwrap();
    let purl = proxy.url();
    // Warm up both paths.
    direct(url.clone(), 1).await;
    via_proxy(purl.clone(), 1, true).await;
    println!(
        "640x640 FP32 (4.9 MB) to identity, {FRAMES_PER_STREAM} frames per stream, 8 in flight per stream"
    );
    println!(
        "{:<8} {:>12} {:>14} {:>14} {:>12} {:>12}",
        "streams", "direct f/s", "proxy b64 f/s", "proxy bin f/s", "b64/direct", "bin/direct"
    );
    for streams in [1, 8] {
        let d = direct(url.clone(), streams).await;
        let b = via_proxy(purl.clone(), streams, false).await;
        let r = via_proxy(purl.clone(), streams, true).await;
        println!(
            "{streams:<8} {d:>12.1} {b:>14.1} {r:>14.1} {:>12.2} {:>12.2}",
            b / d,
            r / d
        );
    }
    drop(proxy);
    drop(triton);
}

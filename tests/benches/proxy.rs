//! The process in the middle, side by side in one run: 640×640 FP32 frames (4.9 MB in, 4.9 MB
//! out) to the `identity` model — direct to the server, through nginx `grpc_pass` (Debian
//! `nginx-light`, one process, plain HTTP/2 forwarding), through `triton-proxy` (release build, a
//! process of its own) with base64 and with binary outputs — over 1 and 8 streams, 8 requests in
//! flight per stream. Prints frames per second, the ratio to direct, and the CPU time per frame of
//! the process in the middle (user + system from `/proc/PID/stat`) against nginx's.
//!
//! `cargo bench -p gst-triton-tests --bench proxy` (a real Triton);
//! `cargo bench -p gst-triton-tests --bench proxy -- --echo` (an in-process echo KServe server
//! instead: no Triton venv needed, and the server costs nothing);
//! `cargo bench -p gst-triton-tests --bench proxy -- --python` (the clients are Python scripts with
//! grpcio's default settings, `tests/python/bench_client.py`, one frame at a time per stream, as the
//! original client sent them: tritonclient to nginx, Chat to triton-proxy). With
//! `PROXY_BASELINE_BIN=<an older triton-proxy>` that build is measured in the same run too. Every
//! client checks each answer is its frame (the identity model): a wrong answer fails the run.

use std::time::Instant;

use futures::StreamExt;
use gst_triton_tests::mock::{MockKserve, Script};
use gst_triton_tests::nginx::Nginx;
use gst_triton_tests::proxy::{Chat, ProxyProcess, image_packet};
use gst_triton_tests::triton::Triton;
use gst_triton_tests::{cpu_secs, images_request, triton_client};

const FRAMES_PER_STREAM: usize = 120;

fn frame() -> bytes::Bytes {
    bytes::Bytes::from(
        (0..3 * 640 * 640)
            .flat_map(|i: u32| ((i % 255) as f32 / 255.0).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

/// KServe `ModelInfer` calls, 8 in flight per stream (to the server, or through nginx).
async fn kserve(url: String, streams: usize) -> f64 {
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
                            let req = images_request("identity", i, [1, 3, 640, 640], data.clone());
                            let r = c.model_infer(req).await.unwrap().into_inner();
                            // Only an answer that is the frame counts (the identity model).
                            assert!(r.raw_output_contents[0] == data, "a wrong answer");
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

/// The output tensor's bytes in an Ack: binary `raw_outputs`, or base64 in the message.
fn echoed(ack: &triton_proto::multimodal::Ack, binary: bool) -> Vec<u8> {
    use base64::Engine;
    if binary {
        return ack
            .raw_outputs
            .first()
            .map(|o| o.data.to_vec())
            .unwrap_or_default();
    }
    let m: serde_json::Value = serde_json::from_str(&ack.message).unwrap_or_default();
    let b64 = m["outputs"]["output0"]["b64"].as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default()
}

/// `Chat` streams through triton-proxy, every packet sent at once (the proxy pipelines them).
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
                let sent = data.clone();
                let sender = tokio::spawn(async move {
                    for i in 0..FRAMES_PER_STREAM {
                        tx.send(image_packet(&i.to_string(), &note, sent.clone()))
                            .await
                            .unwrap();
                    }
                });
                for _ in 0..FRAMES_PER_STREAM {
                    let ack = chat.rx.message().await.unwrap().unwrap();
                    assert_eq!(ack.status_code, 0, "{}", ack.status_message);
                    assert!(echoed(&ack, binary) == data, "a wrong answer");
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

/// The Python client (`tests/python/bench_client.py`) through `target`: frames per second of
/// answered frames; panics when any frame failed (a run with failures measures nothing).
async fn python(target: String, protocol: &'static str, streams: usize, binary: bool) -> f64 {
    tokio::task::spawn_blocking(move || {
        let root = gst_triton_tests::triton::repo_root();
        let mut cmd = std::process::Command::new(root.join(".venv/bin/python"));
        cmd.arg(root.join("tests/python/bench_client.py"))
            .args(["--target", target.trim_start_matches("http://")])
            .args(["--protocol", protocol])
            .args(["--streams", &streams.to_string()])
            .args(["--frames", &FRAMES_PER_STREAM.to_string()]);
        if binary {
            cmd.arg("--binary");
        }
        let out = cmd.output().expect("run tests/python/bench_client.py");
        let v = gst_triton_tests::last_json_line(&out);
        let frames = v["frames"].as_u64().unwrap_or(0) as usize;
        assert!(
            out.status.success() && v["errors"] == 0 && frames == streams * FRAMES_PER_STREAM,
            "the Python client ({protocol}, {streams} streams): {v}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        frames as f64 / v["seconds"].as_f64().unwrap()
    })
    .await
    .unwrap()
}

/// Frames per second and the CPU ms per frame of process group `middle`.
async fn measure(
    middle: Option<u32>,
    streams: usize,
    run: impl Future<Output = f64>,
) -> (f64, f64) {
    let c0 = cpu_secs(None, middle);
    let fps = run.await;
    let cpu = cpu_secs(None, middle) - c0;
    (fps, cpu * 1000.0 / (streams * FRAMES_PER_STREAM) as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let echo = std::env::args().any(|a| a == "--echo");
    let py = std::env::args().any(|a| a == "--python");
    let (_triton, _mock, url) = if echo {
        let m = MockKserve::start(Script {
            echo: true,
            ..Script::default()
        });
        let url = m.url();
        (None, Some(m), url)
    } else {
        let t = tokio::task::spawn_blocking(|| Triton::start().expect("start Triton"))
            .await
            .unwrap();
        let url = t.url();
        (Some(t), None, url)
    };
    let upstream = url.trim_start_matches("http://").to_string();
    let nginx = Nginx::start(&upstream).expect("nginx");
    let proxy = tokio::task::spawn_blocking({
        let url = url.clone();
        move || ProxyProcess::start_release(&url, &[])
    })
    .await
    .unwrap();
    let (nurl, purl) = (nginx.url(), proxy.url());
    // Warm up every path.
    kserve(url.clone(), 1).await;
    kserve(nurl.clone(), 1).await;
    via_proxy(purl.clone(), 1, true).await;
    let server = if echo {
        "in-process echo server"
    } else {
        "Triton identity"
    };
    let clients = if py {
        "Python grpcio clients, 1 in flight per stream"
    } else {
        "Rust clients, 8 in flight per stream"
    };
    println!(
        "640x640 FP32 (4.9 MB in and out) to {server}, {FRAMES_PER_STREAM} frames per stream, {clients}"
    );
    println!(
        "{:<8} {:<22} {:>9} {:>10} {:>16} {:>10}",
        "streams", "path", "f/s", "/direct", "middle CPU/frame", "/nginx"
    );
    // PROXY_BASELINE_BIN: an older triton-proxy binary, measured in the same run.
    let baseline = std::env::var_os("PROXY_BASELINE_BIN").map(|bin| {
        let p = ProxyProcess::start_bin(bin.into(), &url, &[]);
        (p.pid(), p.url(), p)
    });
    let mut proxies = vec![("triton-proxy", proxy.pid(), purl.clone())];
    if let Some((pid, u, _)) = &baseline {
        via_proxy(u.clone(), 1, true).await;
        proxies.push(("baseline proxy", *pid, u.clone()));
    }
    for round in 1..=2 {
        for streams in [1, 8] {
            let (d, _) = if py {
                measure(None, streams, python(url.clone(), "kserve", streams, false)).await
            } else {
                measure(None, streams, kserve(url.clone(), streams)).await
            };
            let nginx_run = if py {
                measure(
                    nginx.pid(),
                    streams,
                    python(nurl.clone(), "kserve", streams, false),
                )
                .await
            } else {
                measure(nginx.pid(), streams, kserve(nurl.clone(), streams)).await
            };
            let n_cpu = nginx_run.1;
            let mut rows = vec![("nginx grpc_pass".to_string(), nginx_run)];
            for (name, pid, purl) in &proxies {
                for binary in [false, true] {
                    let run = if py {
                        measure(*pid, streams, python(purl.clone(), "chat", streams, binary)).await
                    } else {
                        measure(*pid, streams, via_proxy(purl.clone(), streams, binary)).await
                    };
                    let acks = if binary { "binary" } else { "base64" };
                    rows.push((format!("{name} {acks}"), run));
                }
            }
            println!(
                "{streams:<8} {:<22} {d:>9.1} {:>10.2} {:>16} {:>10}",
                "direct", 1.0, "-", "-"
            );
            for (name, (fps, cpu)) in rows {
                println!(
                    "{streams:<8} {name:<22} {fps:>9.1} {:>10.2} {:>13.2} ms {:>10.2}",
                    fps / d,
                    cpu,
                    cpu / n_cpu
                );
            }
        }
        if round == 1 {
            println!("(round 2)");
        }
    }
}

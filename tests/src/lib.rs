//! Helpers for gst-triton's end-to-end tests: a real Triton ([`triton`]), ground-truth drawing and
//! decoding of the `shapes_*` models' outputs.

pub mod artifacts;
pub mod camera;
pub mod h2chat;
pub mod mlserver;
pub mod mot;
/// The in-process KServe v2 server, from the client crate.
pub use triton_client::mock;
pub mod nginx;
pub mod pipeline;
pub mod proxy;
pub mod stderr;
pub mod triton;

use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;

/// Message size limit used by test clients (a 640×640 FP32 frame is 4.9 MB; gRPC's default is 4 MiB).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The palette of the `shapes_*` models, RGB in 0..1, index = class id.
pub const PALETTE: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
    [1.0, 1.0, 0.0],
];
/// Class names the `shapes_*` models declare in their configuration.
pub const CLASS_NAMES: [&str; 4] = ["red", "green", "blue", "yellow"];

/// An axis-aligned box `x1, y1, x2, y2` (x2/y2 exclusive pixel edges) with a class id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub class: usize,
}

impl Rect {
    pub fn new(x: u32, y: u32, w: u32, h: u32, class: usize) -> Rect {
        Rect {
            x1: x as f32,
            y1: y as f32,
            x2: (x + w) as f32,
            y2: (y + h) as f32,
            class,
        }
    }

    /// Largest absolute difference of the four edges.
    pub fn max_edge_error(&self, other: &Rect) -> f32 {
        [
            (self.x1 - other.x1).abs(),
            (self.y1 - other.y1).abs(),
            (self.x2 - other.x2).abs(),
            (self.y2 - other.y2).abs(),
        ]
        .into_iter()
        .fold(0.0, f32::max)
    }
}

/// An NCHW FP32 RGB tensor `[1,3,h,w]` filled with the letterbox grey, with `rects` drawn in the
/// palette colours (clipped to the tensor). Returned as little-endian bytes, ready for `raw_input_contents`.
pub fn draw_tensor(w: usize, h: usize, rects: &[Rect]) -> Vec<u8> {
    let mut t = vec![114.0f32 / 255.0; 3 * w * h];
    for r in rects {
        let colour = PALETTE[r.class];
        for c in 0..3 {
            for y in r.y1 as usize..(r.y2 as usize).min(h) {
                for x in r.x1 as usize..(r.x2 as usize).min(w) {
                    t[c * w * h + y * w + x] = colour[c];
                }
            }
        }
    }
    t.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The boxes of an NMS-style output: rows of `x1, y1, x2, y2, score, class` (f32).
pub fn nms_rects(rows: &[f32]) -> Vec<Rect> {
    rows.chunks_exact(6)
        .map(|c| Rect {
            x1: c[0],
            y1: c[1],
            x2: c[2],
            y2: c[3],
            class: c[5] as usize,
        })
        .collect()
}

/// Little-endian f32s from bytes.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Little-endian i32s from bytes.
pub fn i32s(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The boxes in a YOLOv8 raw output `[1, 4+nc, n]`: for every anchor whose best class score is at
/// least `threshold`, keep the best-scoring box per object by a plain greedy NMS (IoU > 0.45).
/// Deliberately simple: it is the test's own reading of the layout, not the product's decoder.
pub fn decode_yolov8_simple(data: &[f32], nc: usize, n: usize, threshold: f32) -> Vec<Rect> {
    let mut cands: Vec<(f32, Rect)> = Vec::new();
    for a in 0..n {
        let (cls, score) = (0..nc)
            .map(|c| (c, data[(4 + c) * n + a]))
            .fold((0, f32::MIN), |b, x| if x.1 > b.1 { x } else { b });
        if score < threshold {
            continue;
        }
        let (cx, cy, w, h) = (data[a], data[n + a], data[2 * n + a], data[3 * n + a]);
        cands.push((
            score,
            Rect {
                x1: cx - w / 2.0,
                y1: cy - h / 2.0,
                x2: cx + w / 2.0,
                y2: cy + h / 2.0,
                class: cls,
            },
        ));
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut keep: Vec<Rect> = Vec::new();
    for (_, r) in cands {
        if keep
            .iter()
            .all(|k| k.class != r.class || iou(k, &r) <= 0.45)
        {
            keep.push(r);
        }
    }
    keep
}

/// Intersection over union of two boxes.
pub fn iou(a: &Rect, b: &Rect) -> f32 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    let union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Asserts that `found` and `expected` match one to one (same class, every edge within `tol`).
pub fn assert_same_boxes(found: &[Rect], expected: &[Rect], tol: f32) {
    assert_eq!(
        found.len(),
        expected.len(),
        "found {found:?}, expected {expected:?}"
    );
    for e in expected {
        let best = found
            .iter()
            .filter(|f| f.class == e.class)
            .map(|f| f.max_edge_error(e))
            .fold(f32::INFINITY, f32::min);
        assert!(
            best <= tol,
            "no box within {tol} px of {e:?}; found {found:?}"
        );
    }
}

/// A Triton gRPC client with 64 MiB message limits.
pub async fn triton_client(
    url: &str,
) -> anyhow::Result<GrpcInferenceServiceClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect()
        .await?;
    Ok(GrpcInferenceServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// A `ModelInferRequest` for `model` with one FP32 `images` tensor of `shape`.
pub fn images_request(
    model: &str,
    id: usize,
    shape: [i64; 4],
    data: bytes::Bytes,
) -> triton_proto::inference::ModelInferRequest {
    use triton_proto::inference::model_infer_request::InferInputTensor;
    triton_proto::inference::ModelInferRequest {
        model_name: model.into(),
        id: id.to_string(),
        inputs: vec![InferInputTensor {
            name: "images".into(),
            datatype: "FP32".into(),
            shape: shape.to_vec(),
            ..Default::default()
        }],
        raw_input_contents: vec![data],
        ..Default::default()
    }
}

/// The model alone: `n` requests of one FP32 `images` tensor of `shape` from one plain client
/// ([`triton_client::Client`], unary KServe v2 `ModelInfer`, no proxy and no GStreamer) with
/// `in_flight` outstanding; returns requests per second (the benchmarks' baseline). Panics on
/// the first failed request: a baseline counts only answered work.
pub async fn plain_client_rate(
    url: &str,
    model: &str,
    shape: [i64; 4],
    data: bytes::Bytes,
    n: usize,
    in_flight: usize,
) -> f64 {
    use futures::StreamExt;
    use std::sync::Arc;
    use triton_client::{Client, ClientConfig, InputDesc, Request, Transport};
    let c = Arc::new(Client::new(ClientConfig {
        target: triton_endpoint::Target::new(url, triton_endpoint::Names::ELEMENT),
        auth: triton_endpoint::Auth::default(),
        transport: Transport::KserveUnary,
        kserve_service: triton_client::transport::unary::DEFAULT_SERVICE.into(),
        model: model.into(),
        model_version: String::new(),
        output_names: vec![],
        timeout: std::time::Duration::from_secs(60),
        shm: None,
    }));
    let desc = Arc::new(InputDesc {
        input_name: "images".into(),
        dtype: "FP32".into(),
        shape: shape.to_vec(),
    });
    let t = std::time::Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let c = c.clone();
            let r = Request {
                id: i.to_string(),
                desc: desc.clone(),
                data: data.clone(),
            };
            async move {
                if let Err(e) = c.infer(r).await {
                    panic!("baseline request {i} failed: {e}");
                }
            }
        })
        .buffered(in_flight)
        .collect::<Vec<_>>()
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}

/// User + system CPU seconds, from `/proc`, of process `pid` and of every process in process group
/// `pgrp` (a server's helpers included); for the benchmarks' CPU-per-frame figures.
pub fn cpu_secs(pid: Option<u32>, pgrp: Option<u32>) -> f64 {
    // SAFETY: a plain getter.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0u64;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(p) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        // Fields from 3 (state) on: pgrp is field 5, utime 14, stime 15.
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if f.len() < 13 {
            continue;
        }
        let group: u32 = f[2].parse().unwrap_or(0);
        if pid == Some(p) || pgrp == Some(group) {
            ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / tck
}

/// The JSON object a helper script prints as its last line of output (its summary); an empty
/// object when there is none or it does not parse, so that the caller's checks fail by name.
pub fn last_json_line(out: &std::process::Output) -> serde_json::Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default()
}

//! `triton-video`: the seed's client as a GStreamer pipeline.
//!
//! `source ! decodebin ! videoconvert ! tritonletterbox ! tritoninfer ! tee`
//!   → `detoverlay ! videoconvert ! x264enc ! mp4mux ! filesink RESULTS_DIR/annotated.mp4`
//!   → `detjsonsink RESULTS_DIR/frame_counts.jsonl`
//!
//! Exit codes: 0 done, 1 pipeline error, 2 bad configuration or input, 3 server unreachable or
//! authentication refused.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use gst::prelude::*;

#[derive(Parser, Debug)]
#[command(
    name = "triton-video",
    version,
    about = "Video in, Triton object detection, annotated.mp4 + frame_counts.jsonl out"
)]
struct Args {
    /// triton-proxy address (host:port or http[s]://host:port).
    #[arg(long, env = "MM_ADDR", default_value = "localhost:50051")]
    mm_addr: String,
    /// Video file or rtsp:// URL (required).
    #[arg(long, env = "VIDEO_PATH")]
    video_path: Option<String>,
    /// Where annotated.mp4 and frame_counts.jsonl go.
    #[arg(long, env = "RESULTS_DIR", default_value = "results")]
    results_dir: String,
    /// Stream name in request ids and JSON lines.
    #[arg(long, env = "STREAM_ID", default_value = "cam-001")]
    stream_id: String,
    /// Model input size (square).
    #[arg(long, env = "IMG_SIZE", default_value_t = 640)]
    img_size: u32,
    /// Confidence threshold.
    #[arg(long, env = "CONF_THRES", default_value_t = 0.25)]
    conf_thres: f64,
    /// Process at most this many frames per second (drops the rest).
    #[arg(long, env = "FPS_CAP")]
    fps_cap: Option<f64>,
    /// Stop after this many frames.
    #[arg(long, env = "MAX_FRAMES")]
    max_frames: Option<u64>,
    /// Model name.
    #[arg(long, env = "MODEL_NAME", default_value = "yolov8n")]
    model_name: String,
    /// Model version (empty = latest).
    #[arg(long, env = "MODEL_VERSION")]
    model_version: Option<String>,
    /// Input tensor name (default: from the model, else "images").
    #[arg(long, env = "INPUT_NAME")]
    input_name: Option<String>,
    /// Output names, comma-separated (default: the model's outputs, else "output0").
    #[arg(long, env = "OUTPUT_NAMES")]
    output_names: Option<String>,
    /// API key for the proxy (x-domino-api-key).
    #[arg(long, env = "DOMINO_API_KEY", hide_env_values = true)]
    domino_api_key: Option<String>,
    /// Bearer token for the proxy.
    #[arg(long, env = "GRPC_BEARER_TOKEN", hide_env_values = true)]
    grpc_bearer_token: Option<String>,
    /// Talk to Triton directly (ModelStreamInfer) at --triton-url instead of the proxy.
    #[arg(long)]
    direct: bool,
    /// Triton address for --direct.
    #[arg(long, env = "TRITON_URL", default_value = "localhost:8001")]
    triton_url: String,
    /// Requests in flight at once.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 4)]
    max_in_flight: u32,
    /// PEM CA for a TLS proxy.
    #[arg(long, env = "TLS_CA_FILE")]
    tls_ca_file: Option<String>,
}

fn fail(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("triton-video: {msg}");
    std::process::exit(code);
}

fn with_scheme(a: &str) -> String {
    if a.contains("://") {
        a.to_string()
    } else {
        format!("http://{a}")
    }
}

/// Checks the server and credentials before starting, so a wrong address or key is one clear line.
fn preflight(a: &Args) -> Result<(), (i32, String)> {
    use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
    use triton_proto::inference::{ModelReadyRequest, ServerReadyRequest};
    use triton_proto::multimodal::ModelInfoRequest;
    use triton_proto::multimodal::multi_modal_client::MultiModalClient;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, e.to_string()))?;
    rt.block_on(async {
        let addr = if a.direct { &a.triton_url } else { &a.mm_addr };
        let mut ep = tonic::transport::Endpoint::from_shared(with_scheme(addr))
            .map_err(|e| (2, format!("{}: '{addr}' is not a valid address ({e})", if a.direct { "TRITON_URL" } else { "MM_ADDR" })))?
            .connect_timeout(Duration::from_secs(5));
        if let Some(ca) = &a.tls_ca_file {
            let pem = std::fs::read(ca).map_err(|e| (2, format!("TLS_CA_FILE: cannot read {ca}: {e}")))?;
            ep = ep
                .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem)))
                .map_err(|e| (2, format!("TLS: {e}")))?;
        }
        let ch = ep.connect().await.map_err(|e| (3, format!("cannot reach {} at {addr}: {e}", if a.direct { "Triton" } else { "the proxy" })))?;
        let version = a.model_version.clone().unwrap_or_default();
        if a.direct {
            let mut c = GrpcInferenceServiceClient::new(ch);
            let ready = c.server_ready(ServerReadyRequest {}).await.map_err(|s| (3, format!("Triton at {addr}: {}", s.message())))?;
            if !ready.into_inner().ready {
                return Err((3, format!("Triton at {addr} is not ready")));
            }
            let m = c.model_ready(ModelReadyRequest { name: a.model_name.clone(), version }).await;
            if !matches!(m, Ok(r) if r.get_ref().ready) {
                return Err((3, format!("MODEL_NAME: model '{}' is not ready on Triton at {addr}", a.model_name)));
            }
        } else {
            let mut c = MultiModalClient::new(ch);
            let mut req = tonic::Request::new(ModelInfoRequest { model: a.model_name.clone(), version });
            if let Some(k) = a.domino_api_key.as_deref().filter(|k| !k.is_empty()) {
                req.metadata_mut().insert("x-domino-api-key", k.parse().map_err(|_| (2, "DOMINO_API_KEY: not a valid header value".to_string()))?);
            }
            if let Some(t) = a.grpc_bearer_token.as_deref().filter(|k| !k.is_empty()) {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().map_err(|_| (2, "GRPC_BEARER_TOKEN: not a valid header value".to_string()))?);
            }
            match c.model_info(req).await {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::Unauthenticated => {
                    return Err((3, format!("the proxy at {addr} refused the credentials: set DOMINO_API_KEY or GRPC_BEARER_TOKEN ({})", s.message())));
                }
                Err(s) if s.code() == tonic::Code::PermissionDenied => return Err((3, format!("MODEL_NAME: {}", s.message()))),
                Err(s) if s.code() == tonic::Code::NotFound => return Err((3, format!("MODEL_NAME: {}", s.message()))),
                // An older proxy without ModelInfo: carry on, inference will tell.
                Err(s) if s.code() == tonic::Code::Unimplemented => {}
                Err(s) => return Err((3, format!("the proxy at {addr}: {}", s.message()))),
            }
        }
        Ok(())
    })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn pipeline_description(a: &Args, video: &str) -> String {
    let source = if video.contains("://") {
        format!("uridecodebin uri={}", quote(video))
    } else {
        format!("filesrc location={} ! decodebin", quote(video))
    };
    let mut d = format!("{source} ! videoconvert ! queue max-size-buffers=4");
    if let Some(fps) = a.fps_cap {
        d.push_str(&format!(
            " ! videorate drop-only=true max-rate={}",
            fps.round().max(1.0) as u32
        ));
    }
    d.push_str(&format!(
        " ! tritonletterbox width={s} height={s} name=letterbox",
        s = a.img_size
    ));
    let (url, transport) = if a.direct {
        (with_scheme(&a.triton_url), "triton")
    } else {
        (with_scheme(&a.mm_addr), "proxy")
    };
    d.push_str(&format!(
        " ! tritoninfer name=infer url={} transport={transport} model={} stream-id={} conf-threshold={} max-in-flight={}",
        quote(&url),
        quote(&a.model_name),
        quote(&a.stream_id),
        a.conf_thres,
        a.max_in_flight
    ));
    if let Some(v) = a.model_version.as_deref().filter(|v| !v.is_empty()) {
        d.push_str(&format!(" model-version={}", quote(v)));
    }
    if let Some(v) = &a.input_name {
        d.push_str(&format!(" input-name={}", quote(v)));
    }
    if let Some(v) = &a.output_names {
        d.push_str(&format!(" output-names={}", quote(v)));
    }
    if let Some(v) = &a.tls_ca_file {
        d.push_str(&format!(" tls-ca-file={}", quote(v)));
    }
    let dir = a.results_dir.trim_end_matches('/');
    d.push_str(&format!(
        " ! tee name=t \
         t. ! queue max-size-buffers=30 ! detoverlay ! videoconvert ! x264enc speed-preset=veryfast tune=zerolatency ! mp4mux ! filesink location={} \
         t. ! queue max-size-buffers=30 ! detjsonsink location={} stream-id={}",
        quote(&format!("{dir}/annotated.mp4")),
        quote(&format!("{dir}/frame_counts.jsonl")),
        quote(&a.stream_id)
    ));
    d
}

#[derive(Default)]
struct Stats {
    frames: u64,
    ok: u64,
    errors: u64,
    skipped: u64,
    per_class: BTreeMap<String, u64>,
    latencies: Vec<f64>,
    last_error: String,
}

/// Settings that are empty strings in the environment count as unset (as in the seed's client).
const ENV_SETTINGS: [&str; 18] = [
    "MM_ADDR",
    "VIDEO_PATH",
    "RESULTS_DIR",
    "STREAM_ID",
    "IMG_SIZE",
    "CONF_THRES",
    "FPS_CAP",
    "MAX_FRAMES",
    "MODEL_NAME",
    "MODEL_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "DOMINO_API_KEY",
    "GRPC_BEARER_TOKEN",
    "TRITON_URL",
    "MAX_IN_FLIGHT",
    "TLS_CA_FILE",
    "RUST_LOG",
];

fn main() {
    for k in ENV_SETTINGS {
        if std::env::var_os(k).is_some_and(|v| v.is_empty()) {
            // SAFETY: first thing in main, before any thread exists.
            unsafe { std::env::remove_var(k) };
        }
    }
    let a = Args::parse();
    let Some(video) = a.video_path.clone().filter(|v| !v.is_empty()) else {
        fail(
            2,
            "VIDEO_PATH is required: a video file or an rtsp:// URL (env VIDEO_PATH or --video-path)",
        )
    };
    if !video.contains("://") && !std::path::Path::new(&video).is_file() {
        fail(2, format!("VIDEO_PATH: no such file: {video}"));
    }
    // Credentials go to the element through the environment it reads, never through the
    // pipeline string (which GStreamer may log).
    if let Some(k) = &a.domino_api_key {
        // SAFETY: still single-threaded: nothing has started a thread yet.
        unsafe { std::env::set_var("DOMINO_API_KEY", k) };
    }
    if let Some(t) = &a.grpc_bearer_token {
        // SAFETY: as above.
        unsafe { std::env::set_var("GRPC_BEARER_TOKEN", t) };
    }
    if let Err((code, msg)) = preflight(&a) {
        fail(code, msg);
    }
    if let Err(e) = std::fs::create_dir_all(&a.results_dir) {
        fail(
            2,
            format!("RESULTS_DIR: cannot create {}: {e}", a.results_dir),
        );
    }
    if let Err(e) = gst::init() {
        fail(1, format!("GStreamer: {e}"));
    }
    if let Err(e) = gsttriton::plugin_register_static() {
        fail(1, format!("registering the triton plugin: {e}"));
    }
    let desc = pipeline_description(&a, &video);
    let pipeline = match gst::parse::launch(&desc) {
        Ok(p) => p
            .downcast::<gst::Pipeline>()
            .unwrap_or_else(|_| fail(1, "not a pipeline")),
        Err(e) => fail(1, format!("building the pipeline: {e}")),
    };

    let stats = Arc::new(Mutex::new(Stats::default()));
    let infer = pipeline
        .by_name("infer")
        .unwrap_or_else(|| fail(1, "no tritoninfer"));
    let src = infer
        .static_pad("src")
        .unwrap_or_else(|| fail(1, "no src pad"));
    let st = stats.clone();
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buf) = info.buffer() {
            let (w, h) = pad
                .current_caps()
                .and_then(|c| {
                    c.structure(0).map(|s| {
                        (
                            s.get::<i32>("width").unwrap_or(0),
                            s.get::<i32>("height").unwrap_or(0),
                        )
                    })
                })
                .unwrap_or((0, 0));
            let mut s = st.lock().unwrap();
            s.frames += 1;
            if let Some(r) = gsttriton::meta::result_meta(buf) {
                match r.status.as_str() {
                    "ok" => {
                        s.ok += 1;
                        s.latencies.push(r.latency_ms);
                    }
                    "skipped" => s.skipped += 1,
                    _ => {
                        s.errors += 1;
                        s.last_error = r.error;
                    }
                }
            }
            for d in gsttriton::meta::detections(buf, w as u32, h as u32) {
                *s.per_class.entry(d.label).or_default() += 1;
            }
        }
        gst::PadProbeReturn::Ok
    });

    // MAX_FRAMES: count frames before the letterbox, drop any beyond the cap, and end the stream.
    let cap_reached = Arc::new(AtomicU32::new(0));
    if let Some(max) = a.max_frames {
        let letterbox = pipeline
            .by_name("letterbox")
            .unwrap_or_else(|| fail(1, "no tritonletterbox"));
        let pad = letterbox
            .static_pad("sink")
            .unwrap_or_else(|| fail(1, "no sink pad"));
        let seen = std::sync::atomic::AtomicU64::new(0);
        let reached = cap_reached.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if seen.fetch_add(1, Ordering::SeqCst) >= max {
                reached.store(1, Ordering::SeqCst);
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    }
    // First Ctrl-C: EOS, so the mp4 and the JSON lines are finished properly; second: abort.
    let interrupts = Arc::new(AtomicU32::new(0));
    {
        let i = interrupts.clone();
        let _ = ctrlc::set_handler(move || {
            if i.fetch_add(1, Ordering::SeqCst) >= 1 {
                std::process::exit(130);
            }
        });
    }
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        fail(1, format!("cannot start the pipeline: {e}"));
    }
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(60);
    let mut eos_sent = false;
    let bus = pipeline.bus().unwrap_or_else(|| fail(1, "no bus"));
    let mut code = 0;
    loop {
        if interrupts.load(Ordering::SeqCst) > 0 && !eos_sent {
            eprintln!("\ntriton-video: interrupted, finishing the files (Ctrl-C again to abort)");
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = true;
        }
        if cap_reached.load(Ordering::SeqCst) > 0 && !eos_sent {
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = true;
        }
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => {
                    eprintln!(
                        "\ntriton-video: {} ({})",
                        e.error(),
                        e.debug().unwrap_or_default()
                    );
                    code = 1;
                    break;
                }
                gst::MessageView::Warning(w) => eprintln!("\ntriton-video: warning: {}", w.error()),
                _ => {}
            }
        }
        let every = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        if last_print.elapsed() >= every {
            last_print = Instant::now();
            let s = stats.lock().unwrap();
            let fps = s.frames as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let total = pipeline
                .query_duration::<gst::ClockTime>()
                .zip(src.current_caps().and_then(|c| {
                    c.structure(0)
                        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
                }))
                .map(|(d, f)| {
                    (d.nseconds() as f64 / 1e9 * f.numer() as f64 / f.denom().max(1) as f64).round()
                        as u64
                })
                .map(|t| a.max_frames.map_or(t, |m| t.min(m)));
            let line = match total {
                Some(t) if t > 0 => {
                    let pct = (s.frames as f64 / t as f64).min(1.0);
                    let eta = if fps > 0.0 {
                        (t.saturating_sub(s.frames)) as f64 / fps
                    } else {
                        0.0
                    };
                    let bar: String = (0..30)
                        .map(|i| if (i as f64) < pct * 30.0 { '#' } else { '.' })
                        .collect();
                    format!(
                        "[{bar}] {}/{} frames {:.1} fps ETA {:.0}s errors {}",
                        s.frames, t, fps, eta, s.errors
                    )
                }
                _ => format!("{} frames {:.1} fps errors {}", s.frames, fps, s.errors),
            };
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    let s = stats.lock().unwrap();
    let mut lat = s.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    let p95 = lat
        .get(((lat.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let dir = a.results_dir.trim_end_matches('/');
    println!();
    println!(
        "frames:      {} ({} ok, {} errors, {} skipped) in {:.1} s",
        s.frames,
        s.ok,
        s.errors,
        s.skipped,
        started.elapsed().as_secs_f64()
    );
    println!(
        "detections:  {}",
        if s.per_class.is_empty() {
            "none".to_string()
        } else {
            s.per_class
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!("latency:     mean {mean:.1} ms, p95 {p95:.1} ms");
    if s.errors > 0 {
        println!("last error:  {}", s.last_error);
    }
    println!("annotated:   {dir}/annotated.mp4");
    println!("counts:      {dir}/frame_counts.jsonl");
    std::process::exit(code);
}

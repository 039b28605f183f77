//! `triton-video`'s settings: flags and the seed client's environment variables.

use clap::{CommandFactory, Parser};

pub use triton_video::encoder::Encoder;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "triton-video",
    version,
    about = "Video in, Triton object detection, annotated.mp4 + frame_counts.jsonl out"
)]
pub struct Args {
    /// triton-proxy address (host:port or http[s]://host:port).
    #[arg(long, env = "MM_ADDR", default_value = "localhost:50051")]
    pub mm_addr: String,
    /// Video file or rtsp:// URL (required unless --cameras is given).
    #[arg(long, env = "VIDEO_PATH")]
    pub video_path: Option<String>,
    /// A cameras file (TOML, `[[camera]]` tables): runs every camera in it, each with its own
    /// outputs in RESULTS_DIR/<name>/, and follows edits to the file (or SIGHUP) while running.
    #[arg(long = "cameras", env = "CAMERAS_FILE", conflicts_with = "video_path")]
    pub cameras_file: Option<String>,
    /// With --cameras: serve per-camera Prometheus metrics on this port (GET /metrics).
    #[arg(long, env = "METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// With --cameras: the HTTP API (cameras, status, metrics) on this address, or off. A
    /// non-loopback address needs API_TOKEN or API_TOKEN_FILE.
    #[arg(long, env = "API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: String,
    /// The API's bearer token (`Authorization: Bearer ...`, or the cookie of `/?token=...`).
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// A file whose first line is the API's token (instead of API_TOKEN).
    #[arg(long, env = "API_TOKEN_FILE")]
    pub api_token_file: Option<String>,
    /// The annotated video's encoder: auto (a hardware H.264 encoder when there is one, else
    /// x264), none (JSON lines only), x264, or a GStreamer video encoder element by name.
    #[arg(long, env = "ENCODER", default_value = "auto", value_parser = |s: &str| s.parse::<Encoder>())]
    pub encoder: Encoder,
    /// Where annotated.mp4 and frame_counts.jsonl go.
    #[arg(long, env = "RESULTS_DIR", default_value = "results")]
    pub results_dir: String,
    /// Stream name in request ids and JSON lines.
    #[arg(long, env = "STREAM_ID", default_value = "cam-001")]
    pub stream_id: String,
    /// Model input size (square).
    #[arg(long, env = "IMG_SIZE", default_value_t = 640)]
    pub img_size: u32,
    /// Confidence threshold.
    #[arg(long, env = "CONF_THRES", default_value_t = 0.25)]
    pub conf_thres: f64,
    /// A live VIDEO_PATH (rtsp://, srt://, ...): end the run (exit code 5) when the camera has
    /// been away this long; 0 = keep waiting.
    #[arg(long, env = "CAMERA_GIVE_UP_SECS", default_value_t = 0)]
    pub camera_give_up_secs: u32,
    /// A live VIDEO_PATH: no data for this long counts as an outage.
    #[arg(long, env = "CAMERA_TIMEOUT_MS", default_value_t = 2000)]
    pub camera_timeout_ms: u32,
    /// Process at most this many frames per second (drops the rest).
    #[arg(long, env = "FPS_CAP")]
    pub fps_cap: Option<f64>,
    /// Stop after this many frames (0 = no limit, as in the seed's client).
    #[arg(long, env = "MAX_FRAMES")]
    pub max_frames: Option<u64>,
    /// Model name.
    #[arg(long, env = "MODEL_NAME", default_value = "yolov8n")]
    pub model_name: String,
    /// Model version (empty = latest).
    #[arg(long, env = "MODEL_VERSION")]
    pub model_version: Option<String>,
    /// Input tensor name (default: from the model, else "images").
    #[arg(long, env = "INPUT_NAME")]
    pub input_name: Option<String>,
    /// Output names, comma-separated (default: the model's outputs, else "output0").
    #[arg(long, env = "OUTPUT_NAMES")]
    pub output_names: Option<String>,
    /// API key for the proxy (x-domino-api-key).
    #[arg(long, env = "DOMINO_API_KEY", hide_env_values = true)]
    pub domino_api_key: Option<String>,
    /// Bearer token for the proxy.
    #[arg(long, env = "GRPC_BEARER_TOKEN", hide_env_values = true)]
    pub grpc_bearer_token: Option<String>,
    /// Talk to Triton directly (ModelStreamInfer) at --triton-url instead of the proxy.
    #[arg(long)]
    pub direct: bool,
    /// Talk to any KServe v2 server (MLServer, KServe runtimes, Triton) at --triton-url with plain
    /// unary ModelInfer instead of the proxy (implies --direct without Triton's streaming).
    #[arg(long, env = "KSERVE", value_parser = clap::builder::FalseyValueParser::new())]
    pub kserve: bool,
    /// Triton (or KServe server) address for --direct / --kserve.
    #[arg(long, env = "TRITON_URL", default_value = "localhost:8001")]
    pub triton_url: String,
    /// With --direct: tensors go through POSIX shared memory registered with Triton (Triton on
    /// this host, sharing /dev/shm) instead of the gRPC messages.
    #[arg(long, env = "SHARED_MEMORY", value_parser = clap::builder::FalseyValueParser::new())]
    pub shared_memory: bool,
    /// Follow each object across frames (the `dettrack` element): a track id per detection in
    /// the JSON lines and on the annotated video.
    #[arg(long, env = "TRACK", value_parser = clap::builder::FalseyValueParser::new())]
    pub track: bool,
    /// Counting lines (implies TRACK): `NAME X1,Y1 X2,Y2 [classes=a,b]`, `;` between them
    /// (docs/elements.md, `detcount`).
    #[arg(long, env = "LINES")]
    pub lines: Option<String>,
    /// Counting zones (implies TRACK): `NAME X1,Y1 X2,Y2 X3,Y3 ... [classes=a,b]`, `;` between.
    #[arg(long, env = "ZONES")]
    pub zones: Option<String>,
    /// A file of counting rules (implies TRACK), one per line: `line NAME ...` / `zone NAME ...`.
    #[arg(long, env = "RULES_FILE")]
    pub rules_file: Option<String>,
    /// A summary line in frame_counts.jsonl every this many seconds of video (counts, tracks,
    /// crossings in that interval); 0 = none.
    #[arg(long, env = "REPORT_INTERVAL", default_value_t = 0)]
    pub report_interval: u32,
    /// Send every Nth frame to the model (1 = every frame); the frames between are marked
    /// "skipped" and, with TRACK=1, carry the tracks' predicted boxes.
    #[arg(long, env = "INTERVAL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub interval: u32,
    /// Detect only inside this part of the frame: `x,y,width,height` in pixels (fractions of
    /// the frame with ROI_NORMALIZED=1), several separated by `;` (one batched request); boxes
    /// come back in full-frame pixels.
    #[arg(long, env = "ROI")]
    pub roi: Option<String>,
    /// ROI is given as fractions (0..1) of the frame's width and height.
    #[arg(long, env = "ROI_NORMALIZED", value_parser = clap::builder::FalseyValueParser::new())]
    pub roi_normalized: bool,
    /// Drop detections a region cuts (touching its edges inside the frame) instead of clipping
    /// them to the region.
    #[arg(long, env = "ROI_DROP_CUT", value_parser = clap::builder::FalseyValueParser::new())]
    pub roi_drop_cut: bool,
    /// A second model run on every detected object (a classifier, `decoder=classify`): each
    /// detection gets its class as "attributes" in the JSON lines and under its label on video.
    #[arg(long, env = "CLASSIFIER_MODEL")]
    pub classifier_model: Option<String>,
    /// The classifier's input size (square), in pixels.
    #[arg(long, env = "CLASSIFIER_SIZE", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub classifier_size: u32,
    /// Classify only objects with these labels, comma-separated (empty: all).
    #[arg(long, env = "CLASSIFIER_CLASSES")]
    pub classifier_classes: Option<String>,
    /// With TRACK=1: classify each track once, then again every N frames, keeping its answer
    /// between (0: every object on every frame).
    #[arg(long, env = "RECLASSIFY_INTERVAL", default_value_t = 0)]
    pub reclassify_interval: u32,
    /// Requests in flight at once.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 4)]
    pub max_in_flight: u32,
    /// Class names, one per line, for a model whose server sends none (e.g. MLServer).
    #[arg(long, env = "LABELS_FILE")]
    pub labels_file: Option<String>,
    /// PEM CA for a TLS proxy.
    #[arg(long, env = "TLS_CA_FILE")]
    pub tls_ca_file: Option<String>,
}

impl Args {
    /// Reads the command line and the environment. Settings that are empty strings in the
    /// environment count as unset (as in the seed's client).
    pub fn from_env() -> Args {
        for k in Args::env_names() {
            if std::env::var_os(&k).is_some_and(|v| v.is_empty()) {
                // SAFETY: called first thing in main, before any thread exists.
                unsafe { std::env::remove_var(k) };
            }
        }
        let mut a = Args::parse();
        a.max_frames = a.max_frames.filter(|&m| m > 0);
        a
    }

    /// Every environment variable the runner reads: those of its flags, plus RUST_LOG.
    pub fn env_names() -> Vec<String> {
        let cmd = Args::command();
        cmd.get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .chain(["RUST_LOG".to_string()])
            .collect()
    }

    /// Straight to the inference server (--direct or --kserve), not through the proxy.
    pub fn direct_to_server(&self) -> bool {
        self.direct || self.kserve
    }

    /// The server address in use and the name of its setting.
    pub fn server(&self) -> (&str, &'static str) {
        if self.direct_to_server() {
            (&self.triton_url, "TRITON_URL")
        } else {
            (&self.mm_addr, "MM_ADDR")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_table_comes_from_the_flags() {
        let names = Args::env_names();
        for k in [
            "MM_ADDR",
            "VIDEO_PATH",
            "MAX_FRAMES",
            "DOMINO_API_KEY",
            "TRITON_URL",
            "TLS_CA_FILE",
            "KSERVE",
            "LABELS_FILE",
            "CAMERA_GIVE_UP_SECS",
            "CAMERA_TIMEOUT_MS",
            "CAMERAS_FILE",
            "METRICS_PORT",
            "ENCODER",
            "TRACK",
            "INTERVAL",
            "LINES",
            "ZONES",
            "RULES_FILE",
            "REPORT_INTERVAL",
            "ROI",
            "ROI_NORMALIZED",
            "ROI_DROP_CUT",
            "CLASSIFIER_MODEL",
            "CLASSIFIER_SIZE",
            "CLASSIFIER_CLASSES",
            "RECLASSIFY_INTERVAL",
            "RUST_LOG",
            "API_ADDR",
            "API_TOKEN",
            "API_TOKEN_FILE",
        ] {
            assert!(names.iter().any(|n| n == k), "{k} missing from {names:?}");
        }
        assert_eq!(names.len(), 42, "{names:?}");
    }

    #[test]
    fn server_follows_direct() {
        let a = Args::parse_from(["triton-video", "--mm-addr", "p:1", "--triton-url", "t:2"]);
        assert_eq!(a.server(), ("p:1", "MM_ADDR"));
        let a = Args::parse_from(["triton-video", "--direct", "--triton-url", "t:2"]);
        assert_eq!(a.server(), ("t:2", "TRITON_URL"));
        let a = Args::parse_from(["triton-video", "--kserve", "--triton-url", "t:3"]);
        assert_eq!(a.server(), ("t:3", "TRITON_URL"));
    }
}

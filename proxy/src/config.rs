//! Configuration: the seed's environment variables (same names and defaults), each with a flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// `triton-proxy` settings. Every option can be given as a flag or as the environment variable
/// shown in `--help`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "triton-proxy",
    version,
    about = "Authenticating gRPC proxy: multimodal.MultiModal/Chat → Triton"
)]
pub struct Config {
    /// Triton gRPC address (host:port or http[s]://host:port); several separated by commas. A
    /// name that resolves to several addresses counts as several servers.
    #[arg(long, env = "TRITON_URL", default_value = "localhost:8001")]
    pub triton_url: String,
    /// Seconds between DNS look-ups of TRITON_URL's names (0 = only at start).
    #[arg(long, env = "PROXY_RESOLVE_SECS", default_value_t = 10, value_parser = secs())]
    pub proxy_resolve_secs: u64,
    /// CA certificate (PEM) Triton's certificate must chain to; enables TLS for the `https://`
    /// entries of TRITON_URL.
    #[arg(long, env = "TRITON_CA_FILE")]
    pub triton_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) the proxy shows Triton (mTLS; with TRITON_CLIENT_KEY).
    #[arg(long, env = "TRITON_CLIENT_CERT")]
    pub triton_client_cert: Option<PathBuf>,
    /// Private key (PEM) of TRITON_CLIENT_CERT.
    #[arg(long, env = "TRITON_CLIENT_KEY")]
    pub triton_client_key: Option<PathBuf>,
    /// Name Triton's certificate must carry, when it is not TRITON_URL's host.
    #[arg(long, env = "TRITON_TLS_SERVER_NAME")]
    pub triton_tls_server_name: Option<String>,
    /// Model used when a packet's control JSON names none.
    #[arg(long, env = "TRITON_MODEL_NAME", default_value = "yolov8n")]
    pub triton_model_name: String,
    /// Default input tensor name.
    #[arg(long, env = "TRITON_INPUT_NAME", default_value = "images")]
    pub triton_input_name: String,
    /// Default input shape, JSON list.
    #[arg(long, env = "TRITON_INPUT_SHAPE", default_value = "[1,3,640,640]")]
    pub triton_input_shape: String,
    /// Default input datatype (FP32 FP16 BF16 INT64 INT32 INT8 UINT8 BOOL).
    #[arg(long, env = "TRITON_INPUT_DTYPE", default_value = "FP32")]
    pub triton_input_dtype: String,
    /// Default payload field the input reads: frame, image or video.
    #[arg(long, env = "TRITON_INPUT_FROM", default_value = "image")]
    pub triton_input_from: String,
    /// Default output names, comma-separated (empty = every output).
    #[arg(long, env = "TRITON_OUTPUT_NAMES", default_value = "output0")]
    pub triton_output_names: String,
    /// Default per-request Triton timeout in seconds.
    #[arg(long, env = "TRITON_TIMEOUT_SECS", default_value_t = 30.0)]
    pub triton_timeout_secs: f64,
    /// Address to listen on.
    #[arg(long, env = "PROXY_HOST", default_value = "0.0.0.0")]
    pub proxy_host: String,
    /// Port to listen on (0 = any free port).
    #[arg(long, env = "PROXY_PORT", default_value_t = 50051)]
    pub proxy_port: u16,
    /// API key accepted in the `x-domino-api-key` header.
    #[arg(long, env = "GRPC_EXPECT_API_KEY", hide_env_values = true)]
    pub grpc_expect_api_key: Option<String>,
    /// Token accepted as `authorization: Bearer <token>`.
    #[arg(long, env = "GRPC_EXPECT_BEARER", hide_env_values = true)]
    pub grpc_expect_bearer: Option<String>,
    /// File of API keys, one per line: `<key> [model,model,...]`; re-read on SIGHUP and on change.
    #[arg(long, env = "PROXY_KEYS_FILE")]
    pub proxy_keys_file: Option<PathBuf>,
    /// Triton request parameters (control JSON `parameters`) the fixed credentials' packets may
    /// set, comma-separated (`*`: any); keys-file keys name theirs with `params=`.
    #[arg(
        long,
        env = "PROXY_ALLOWED_PARAMETERS",
        default_value = "",
        value_delimiter = ','
    )]
    pub proxy_allowed_parameters: Vec<String>,
    /// Start without any credential (every client admitted). Logged as a warning.
    #[arg(long, env = "PROXY_ALLOW_UNAUTHENTICATED", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub proxy_allow_unauthenticated: bool,
    /// Largest gRPC message, both directions, client side and Triton side.
    #[arg(long, env = "PROXY_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub proxy_max_message_bytes: usize,
    /// Bytes of client messages held at once, all streams (0 = half the cgroup memory limit,
    /// or 2 GiB without one); a stream whose next message does not fit ends.
    #[arg(long, env = "PROXY_MAX_BUFFERED_BYTES", default_value_t = 0)]
    pub proxy_max_buffered_bytes: u64,
    /// HTTP/2 keepalive ping interval in seconds (0 = off).
    #[arg(long, env = "PROXY_KEEPALIVE_SECS", default_value_t = 30, value_parser = secs())]
    pub proxy_keepalive_secs: u64,
    /// Seconds to wait for a keepalive ping's answer before dropping the connection.
    #[arg(long, env = "PROXY_KEEPALIVE_TIMEOUT_SECS", default_value_t = 20, value_parser = secs())]
    pub proxy_keepalive_timeout_secs: u64,
    /// Open Chat streams at most, all clients together (0 = no limit).
    #[arg(long, env = "PROXY_MAX_STREAMS", default_value_t = 1024)]
    pub proxy_max_streams: usize,
    /// Open Chat streams at most per credential (0 = no limit).
    #[arg(long, env = "PROXY_MAX_STREAMS_PER_KEY", default_value_t = 256)]
    pub proxy_max_streams_per_key: usize,
    /// Seconds a stream may stay without a packet and with nothing in flight before the proxy
    /// ends it (0 = never).
    #[arg(long, env = "PROXY_STREAM_IDLE_SECS", default_value_t = 300, value_parser = secs())]
    pub proxy_stream_idle_secs: u64,
    /// Seconds after which a client connection is asked to go away, so that long-lived streams
    /// rebalance across replicas (0 = never).
    #[arg(long, env = "PROXY_MAX_CONNECTION_AGE_SECS", default_value_t = 0, value_parser = secs())]
    pub proxy_max_connection_age_secs: u64,
    /// Seconds a connection past its age may take to finish before it is closed.
    #[arg(
        long,
        env = "PROXY_MAX_CONNECTION_AGE_GRACE_SECS",
        default_value_t = 30, value_parser = secs()
    )]
    pub proxy_max_connection_age_grace_secs: u64,
    /// Stack up to this many packets (any stream, same model and shape) into one request, for
    /// models whose server has no batcher (0 or 1 = off).
    #[arg(long, env = "PROXY_BATCH_MAX", default_value_t = 0)]
    pub proxy_batch_max: usize,
    /// Microseconds the first packet of a batch waits for more.
    #[arg(long, env = "PROXY_BATCH_DELAY_US", default_value_t = 2000)]
    pub proxy_batch_delay_us: u64,
    /// Requests per stream outstanding to Triton at once.
    #[arg(long, env = "PROXY_MAX_INFLIGHT", default_value_t = 8)]
    pub proxy_max_inflight: usize,
    /// Port of the Prometheus /metrics endpoint (0 = any free port).
    #[arg(long, env = "PROXY_METRICS_PORT", default_value_t = 9090)]
    pub proxy_metrics_port: u16,
    /// Address the metrics and /healthz listener binds (its own: not PROXY_HOST).
    #[arg(long, env = "PROXY_METRICS_HOST", default_value = "127.0.0.1")]
    pub proxy_metrics_host: String,
    /// Token /metrics requires as `authorization: Bearer <token>` (/healthz stays open).
    #[arg(long, env = "PROXY_METRICS_BEARER", hide_env_values = true)]
    pub proxy_metrics_bearer: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "PROXY_LOG_FORMAT", default_value = "text")]
    pub proxy_log_format: String,
    /// Seconds to finish in-flight packets after SIGTERM before exiting.
    #[arg(long, env = "PROXY_DRAIN_SECS", default_value_t = 10, value_parser = secs())]
    pub proxy_drain_secs: u64,
    /// TLS certificate chain (PEM) for the client-facing port.
    #[arg(long, env = "PROXY_TLS_CERT")]
    pub proxy_tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "PROXY_TLS_KEY")]
    pub proxy_tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to (enables mTLS).
    #[arg(long, env = "PROXY_TLS_CLIENT_CA")]
    pub proxy_tls_client_ca: Option<PathBuf>,
    /// Do not serve: ask the proxy on 127.0.0.1:PROXY_PORT for its gRPC health and exit 0 when
    /// SERVING, 1 otherwise (for container health checks).
    #[arg(long)]
    pub health_check: bool,
}

/// The most seconds any duration setting takes: ten years. A larger value (a typo, or
/// `u64::MAX` meaning "never") is refused with the setting's name and this range, instead of
/// overflowing a clock later.
pub const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

fn secs() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=MAX_SECS)
}

impl Config {
    /// Parses the configuration from an argument list plus the environment (for tests).
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Config::try_parse_from(args)
    }

    /// The listen address.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(SocketAddr::new(
            ip_of("PROXY_HOST", &self.proxy_host, "0.0.0.0")?,
            self.proxy_port,
        ))
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(SocketAddr::new(
            ip_of("PROXY_METRICS_HOST", &self.proxy_metrics_host, "127.0.0.1")?,
            self.proxy_metrics_port,
        ))
    }
}

fn ip_of(var: &str, value: &str, example: &str) -> anyhow::Result<std::net::IpAddr> {
    value
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            anyhow::anyhow!("{var}: '{value}' is not an IP address (expected e.g. {example})")
        })
}

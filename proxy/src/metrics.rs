//! Prometheus metrics, served as text on `/metrics`. Never labelled with anything secret.
//! The same port answers `/healthz`: 200 `SERVING` while the proxy takes packets (some Triton
//! ready, not draining), 503 `NOT_SERVING` otherwise; plain HTTP, so a probe needs no client
//! certificate where the gRPC port requires one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Distinct model label values kept; more are counted as "other" (clients choose model names).
const MAX_MODEL_LABELS: usize = 64;

/// A latency histogram with fixed buckets (seconds).
#[derive(Debug, Clone)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram(prometheus_client::metrics::histogram::Histogram::new(
            BUCKETS,
        ))
    }
}

impl Histogram {
    pub fn observe(&self, secs: f64) {
        self.0.observe(secs);
    }
}

/// All proxy metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(String, &'static str), u64>>,
    pub triton_latency: Histogram,
    pub proxy_latency: Histogram,
    pub inflight: AtomicI64,
    pub open_streams: AtomicI64,
    /// `PROXY_MAX_BUFFERED_BYTES`, set once the budget is made.
    pub budget: std::sync::OnceLock<crate::budget::Budget>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub auth_failures: AtomicU64,
    pub connections_open: AtomicI64,
    /// Requests sent by the collator (PROXY_BATCH_MAX), and the packets they carried.
    pub batches: AtomicU64,
    pub batched_packets: AtomicU64,
    /// Batches refused as a whole whose members were then sent alone.
    pub batches_split: AtomicU64,
    pub connections_total: AtomicU64,
    /// Connections closed before HTTP/2, by reason (wrong protocol, failed TLS, silence).
    pub connections_refused: Labelled,
    /// Streams refused at open, by the limit that refused them.
    pub streams_rejected: Labelled,
    /// Streams the proxy ended itself, by reason (idle, max_connection_age).
    pub streams_ended: Labelled,
    /// The upstreams, for their per-upstream series.
    pub upstreams: std::sync::OnceLock<std::sync::Arc<crate::upstream::Pool>>,
    /// What grpc.health.v1 says of the whole server, for `/healthz`.
    pub serving: std::sync::atomic::AtomicBool,
}

/// A counter with one label whose values the proxy chooses (never the client).
#[derive(Default)]
pub struct Labelled(Mutex<std::collections::BTreeMap<&'static str, u64>>);

impl Labelled {
    pub fn inc(&self, label: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(label).or_default() += 1;
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(label).copied())
            .unwrap_or(0)
    }

    /// As the counter family `name` (without `_total`) labelled `label`.
    fn encode(
        &self,
        enc: &mut DescriptorEncoder,
        (name, label, help): (&str, &str, &str),
    ) -> std::fmt::Result {
        let mut fam = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        let rows: Vec<(&'static str, u64)> = self
            .0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        for (v, n) in rows {
            let labels = [(label, v)];
            ConstCounter::new(n).encode(fam.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub fn with_upstreams(upstreams: std::sync::Arc<crate::upstream::Pool>) -> Metrics {
        Metrics {
            upstreams: upstreams.into(),
            ..Default::default()
        }
    }

    /// Counts one packet by model and gRPC status code name.
    pub fn request(&self, model: &str, status: tonic::Code) {
        let code: &'static str = code_name(status);
        if let Ok(mut m) = self.requests.lock() {
            let known = m.keys().any(|(k, _)| k == model);
            let label = if known || m.len() < MAX_MODEL_LABELS {
                sanitize(model)
            } else {
                "other".into()
            };
            *m.entry((label, code)).or_default() += 1;
        }
    }

    /// The Prometheus text exposition (format 0.0.4), encoded by `prometheus-client`.
    pub fn render(self: &std::sync::Arc<Self>) -> String {
        let mut reg = Registry::default();
        reg.register_collector(Box::new(Collected(self.clone())));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg);
        out
    }
}

/// The proxy's metrics, read at each scrape.
struct Collected(std::sync::Arc<Metrics>);

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("proxy metrics")
    }
}

/// A gauge or counter without labels: name (a counter's without `_total`), help, value.
type Plain = (&'static str, &'static str, MetricType, i64);

impl Collector for Collected {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let m = &self.0;
        let mut fam = enc.encode_descriptor(
            "proxy_requests",
            "Packets answered, by model and gRPC status.",
            None,
            MetricType::Counter,
        )?;
        let mut rows: Vec<((String, &'static str), u64)> = m
            .requests
            .lock()
            .map(|r| r.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        rows.sort();
        for ((model, code), n) in rows {
            let labels = [("model", model.as_str()), ("status", code)];
            ConstCounter::new(n).encode(fam.encode_family(&labels)?)?;
        }
        for (name, help, h) in [
            (
                "proxy_triton_latency_seconds",
                "Time Triton took per request.",
                &m.triton_latency,
            ),
            (
                "proxy_added_latency_seconds",
                "Time the proxy added per packet (total minus Triton).",
                &m.proxy_latency,
            ),
        ] {
            h.0.encode(enc.encode_descriptor(name, help, None, MetricType::Histogram)?)?;
        }
        let load = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
        let plain: [Plain; 12] = [
            (
                "proxy_inflight_requests",
                "Requests outstanding to Triton.",
                gauge,
                load(&m.inflight),
            ),
            (
                "proxy_open_streams",
                "Open Chat streams.",
                gauge,
                load(&m.open_streams),
            ),
            (
                "proxy_buffered_bytes",
                "Bytes of client messages held now (PROXY_MAX_BUFFERED_BYTES counts them).",
                gauge,
                m.budget.get().map_or(0, |b| b.held() as i64),
            ),
            (
                "proxy_buffered_bytes_limit",
                "PROXY_MAX_BUFFERED_BYTES in force.",
                gauge,
                m.budget.get().map_or(0, |b| b.bytes() as i64),
            ),
            (
                "proxy_bytes_in",
                "Payload bytes received from clients.",
                counter,
                count(&m.bytes_in),
            ),
            (
                "proxy_bytes_out",
                "Output bytes returned to clients.",
                counter,
                count(&m.bytes_out),
            ),
            (
                "proxy_auth_failures",
                "Rejected credentials.",
                counter,
                count(&m.auth_failures),
            ),
            (
                "proxy_connections_open",
                "Open client connections.",
                gauge,
                load(&m.connections_open),
            ),
            (
                "proxy_batches",
                "Requests the collator (PROXY_BATCH_MAX) sent.",
                counter,
                count(&m.batches),
            ),
            (
                "proxy_batched_packets",
                "Packets the collator stacked into those requests.",
                counter,
                count(&m.batched_packets),
            ),
            (
                "proxy_batches_split",
                "Batches refused as a whole whose packets were then sent one by one.",
                counter,
                count(&m.batches_split),
            ),
            (
                "proxy_connections",
                "Client connections accepted.",
                counter,
                count(&m.connections_total),
            ),
        ];
        for (name, help, kind, v) in plain {
            let e = enc.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Counter => ConstCounter::new(v.max(0) as u64).encode(e)?,
                _ => ConstGauge::new(v).encode(e)?,
            }
        }
        m.connections_refused.encode(
            &mut enc,
            (
                "proxy_connections_refused",
                "reason",
                "Connections closed before HTTP/2, by reason.",
            ),
        )?;
        m.streams_rejected.encode(
            &mut enc,
            (
                "proxy_streams_rejected",
                "limit",
                "Streams refused at open, by the limit that refused them.",
            ),
        )?;
        m.streams_ended.encode(
            &mut enc,
            (
                "proxy_streams_ended",
                "reason",
                "Streams the proxy ended itself, by reason.",
            ),
        )?;
        if let Some(u) = m.upstreams.get() {
            u.encode_metrics(&mut enc)?;
        }
        Ok(())
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
        .take(64)
        .collect()
}

/// gRPC code names as in the gRPC spec (`OK`, `INVALID_ARGUMENT`, ...).
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether an `authorization` header value is `Bearer <token>` with the configured token (the
/// scheme in any case, the token compared in constant time); always, when none is configured.
fn authorized(value: Option<&str>, bearer: Option<&[u8]>) -> bool {
    let Some(want) = bearer else {
        return true;
    };
    let mut words = value.unwrap_or("").split_whitespace();
    words
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        && words
            .next()
            .is_some_and(|t| crate::auth::secret_eq(t.as_bytes(), want))
        && words.next().is_none()
}

/// `GET /healthz` on a metrics port: true on 200 (SERVING).
pub async fn healthz(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<bool> {
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    sock.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await?;
    Ok(answer.starts_with(b"HTTP/1.1 200 "))
}

/// What the metrics port's handlers share: the metrics and the bearer token, if one is set.
#[derive(Clone)]
struct Port {
    metrics: std::sync::Arc<Metrics>,
    bearer: Option<std::sync::Arc<[u8]>>,
}

/// `GET /healthz`: 200 `SERVING` or 503 `NOT_SERVING`, never behind the token.
async fn health(State(p): State<Port>) -> Response {
    if p.metrics.serving.load(Ordering::Relaxed) {
        (StatusCode::OK, "SERVING\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n").into_response()
    }
}

/// Any other path: the metrics, behind the token when one is set.
async fn exposition(State(p): State<Port>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !authorized(auth, p.bearer.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the metrics need 'authorization: Bearer <token>' (PROXY_METRICS_BEARER)\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        p.metrics.render(),
    )
        .into_response()
}

/// Serves `/healthz` (open) and the metrics on every other path (behind `bearer` when one is
/// set) on `listener`, with axum, until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    bearer: Option<String>,
) {
    let port = Port {
        metrics,
        bearer: bearer.map(|b| b.as_bytes().into()),
    };
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(health))
        .fallback(exposition)
        .with_state(port);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("metrics port: {e}");
    }
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn the_bearer_is_checked_when_one_is_set() {
        let ok = |v: Option<&str>, b: Option<&str>| super::authorized(v, b.map(str::as_bytes));
        assert!(ok(None, None), "no token configured: open");
        assert!(ok(Some("Bearer s3cret"), Some("s3cret")));
        assert!(ok(Some("bearer   s3cret"), Some("s3cret")));
        assert!(!ok(None, Some("s3cret")));
        assert!(!ok(Some("Bearer s3cre"), Some("s3cret")));
        assert!(!ok(Some("Basic s3cret"), Some("s3cret")));
        assert!(!ok(Some("Bearer s3cret extra"), Some("s3cret")));
    }
}

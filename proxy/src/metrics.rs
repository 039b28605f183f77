//! Prometheus metrics, served as text on `/metrics`. Never labelled with anything secret.
//! The same port answers `/healthz`: 200 `SERVING` while the proxy takes packets (some Triton
//! ready, not draining), 503 `NOT_SERVING` otherwise; plain HTTP, so a probe needs no client
//! certificate where the gRPC port requires one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Distinct model label values kept; more are counted as "other" (clients choose model names).
const MAX_MODEL_LABELS: usize = 64;

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
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

    fn render(&self, name: &str, label: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = self.0.lock() {
            for (v, n) in m.iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{v}\"}} {n}");
            }
        }
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# HELP proxy_requests_total Packets answered, by model and gRPC status.\n# TYPE proxy_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort();
            for ((model, code), n) in rows {
                let _ = writeln!(
                    out,
                    "proxy_requests_total{{model=\"{model}\",status=\"{code}\"}} {n}"
                );
            }
        }
        self.triton_latency.render(
            "proxy_triton_latency_seconds",
            "Time Triton took per request.",
            &mut out,
        );
        self.proxy_latency.render(
            "proxy_added_latency_seconds",
            "Time the proxy added per packet (total minus Triton).",
            &mut out,
        );
        for (name, help, kind, v) in [
            (
                "proxy_inflight_requests",
                "Requests outstanding to Triton.",
                "gauge",
                self.inflight.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_open_streams",
                "Open Chat streams.",
                "gauge",
                self.open_streams.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_buffered_bytes",
                "Bytes of client messages held now (PROXY_MAX_BUFFERED_BYTES counts them).",
                "gauge",
                self.budget.get().map_or(0.0, |b| b.held() as f64),
            ),
            (
                "proxy_buffered_bytes_limit",
                "PROXY_MAX_BUFFERED_BYTES in force.",
                "gauge",
                self.budget.get().map_or(0.0, |b| b.bytes() as f64),
            ),
            (
                "proxy_bytes_in_total",
                "Payload bytes received from clients.",
                "counter",
                self.bytes_in.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_bytes_out_total",
                "Output bytes returned to clients.",
                "counter",
                self.bytes_out.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_auth_failures_total",
                "Rejected credentials.",
                "counter",
                self.auth_failures.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_connections_open",
                "Open client connections.",
                "gauge",
                self.connections_open.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_batches_total",
                "Requests the collator (PROXY_BATCH_MAX) sent.",
                "counter",
                self.batches.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_batched_packets_total",
                "Packets the collator stacked into those requests.",
                "counter",
                self.batched_packets.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_batches_split_total",
                "Batches refused as a whole whose packets were then sent one by one.",
                "counter",
                self.batches_split.load(Ordering::Relaxed) as f64,
            ),
            (
                "proxy_connections_total",
                "Client connections accepted.",
                "counter",
                self.connections_total.load(Ordering::Relaxed) as f64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        self.connections_refused.render(
            "proxy_connections_refused_total",
            "reason",
            "Connections closed before HTTP/2, by reason.",
            &mut out,
        );
        self.streams_rejected.render(
            "proxy_streams_rejected_total",
            "limit",
            "Streams refused at open, by the limit that refused them.",
            &mut out,
        );
        self.streams_ended.render(
            "proxy_streams_ended_total",
            "reason",
            "Streams the proxy ended itself, by reason.",
            &mut out,
        );
        if let Some(u) = self.upstreams.get() {
            u.render_metrics(&mut out);
        }
        out
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

/// The path of the request line `GET /path HTTP/1.1` (without a query).
fn request_path(head: &[u8]) -> &str {
    let line = head
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or(&[]);
    let line = std::str::from_utf8(line).unwrap_or("");
    let path = line.split(' ').nth(1).unwrap_or("/");
    path.split('?').next().unwrap_or(path)
}

/// Whether a request's head carries `authorization: Bearer <token>` with the configured token
/// (compared in constant time); always, when none is configured.
fn authorized(head: &[u8], bearer: Option<&[u8]>) -> bool {
    let Some(want) = bearer else {
        return true;
    };
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").skip(1).any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        let mut words = value.split_whitespace();
        name.trim().eq_ignore_ascii_case("authorization")
            && words
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            && words
                .next()
                .is_some_and(|t| crate::auth::secret_eq(t.as_bytes(), want))
    })
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

/// Serves `GET /healthz` (the serving state) and `/metrics` (any other path answers the same)
/// until the task is dropped.
/// Serves `/healthz` (open) and the metrics (behind `bearer` when one is set) on `listener`.
pub async fn serve(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    bearer: Option<String>,
) {
    let bearer: Option<std::sync::Arc<[u8]>> = bearer.map(|b| b.as_bytes().into());
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let bearer = bearer.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let (status, kind, body) = if request_path(&buf[..n]) == "/healthz" {
                if metrics.serving.load(Ordering::Relaxed) {
                    ("200 OK", "text/plain", "SERVING\n".to_string())
                } else {
                    (
                        "503 Service Unavailable",
                        "text/plain",
                        "NOT_SERVING\n".to_string(),
                    )
                }
            } else if !authorized(&buf[..n], bearer.as_deref()) {
                (
                    "401 Unauthorized\r\nwww-authenticate: Bearer",
                    "text/plain",
                    "the metrics need 'authorization: Bearer <token>' (PROXY_METRICS_BEARER)\n"
                        .to_string(),
                )
            } else {
                ("200 OK", "text/plain; version=0.0.4", metrics.render())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn the_request_line_gives_the_path() {
        assert_eq!(
            super::request_path(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"),
            "/healthz"
        );
        assert_eq!(
            super::request_path(b"GET /healthz?x=1 HTTP/1.1\r\n"),
            "/healthz"
        );
        assert_eq!(
            super::request_path(b"GET /metrics HTTP/1.1\r\n"),
            "/metrics"
        );
        assert_eq!(super::request_path(b""), "/");
    }

    #[test]
    fn the_bearer_is_checked_when_one_is_set() {
        let req = |auth: &str| format!("GET /metrics HTTP/1.1\r\nhost: x\r\n{auth}\r\n\r\n");
        let ok = |r: &str, b: Option<&str>| super::authorized(r.as_bytes(), b.map(str::as_bytes));
        assert!(ok(&req(""), None), "no token configured: open");
        assert!(ok(&req("Authorization: Bearer s3cret"), Some("s3cret")));
        assert!(ok(&req("authorization:bearer   s3cret"), Some("s3cret")));
        assert!(!ok(&req(""), Some("s3cret")));
        assert!(!ok(&req("authorization: Bearer s3cre"), Some("s3cret")));
        assert!(!ok(&req("authorization: Basic s3cret"), Some("s3cret")));
        assert!(!ok(&req("x-authorization: Bearer s3cret"), Some("s3cret")));
    }
}

//! The Triton side: one or more upstream servers (`TRITON_URL`, comma-separated). A DNS name
//! that resolves to several addresses (a Kubernetes headless Service) counts as several
//! upstreams and is resolved again every `PROXY_RESOLVE_SECS`.
//!
//! Each request goes to the less loaded of two upstreams drawn at random among the ready ones
//! (power of two choices on requests outstanding). An upstream whose request failed because it
//! is unreachable, that answered an error and then said it is not ready (a Triton shutting
//! down), or whose `ServerReady` probe fails, is ejected until a probe (every second) finds it
//! ready again. With no ready upstream every upstream is a candidate, so a request
//! gets the usual per-packet error and the first server that returns takes load at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use triton_proto::inference::ServerReadyRequest;
use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;

/// How often every upstream is asked `ServerReady`.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long the periodic probe waits for `ServerReady`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request that got an error answer waits for its server's `ServerReady`.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(1);

pub type TritonClient = GrpcInferenceServiceClient<Channel>;

/// One entry of `TRITON_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Entry {
    fn url(&self, host: &str) -> String {
        format!("{}://{host}:{}", self.scheme, self.port)
    }

    /// A name to resolve into several upstreams: not an address, not `localhost` (whose IPv4 and
    /// IPv6 addresses are one server), and plaintext (a TLS name must stay a name).
    fn resolves(&self) -> bool {
        self.scheme == "http"
            && self
                .host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_err()
            && !self.host.eq_ignore_ascii_case("localhost")
    }
}

/// Parses `TRITON_URL`: `host:port` or `http[s]://host:port`, separated by commas. An entry that
/// is not one fails with a line naming it.
pub fn parse_list(list: &str) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (i, raw) in list.split(',').enumerate() {
        let s = raw.trim();
        let bad = |why: &str| {
            anyhow::anyhow!(
                "TRITON_URL: entry {} '{s}' {why}; expected host:port or http[s]://host:port, \
                 several separated by commas",
                i + 1
            )
        };
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        let with_scheme = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let uri: http::Uri = with_scheme.parse().map_err(|_| bad("is not an address"))?;
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("has a scheme other than http or https"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("has a path"));
        }
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return Err(bad("has no host"));
        };
        let Some(port) = uri.port_u16() else {
            return Err(bad("has no port"));
        };
        let e = Entry {
            scheme,
            host: host.to_string(),
            port,
        };
        if out.contains(&e) {
            return Err(bad("is listed twice"));
        }
        out.push(e);
    }
    Ok(out)
}

/// How channels to upstreams are made (the same for every upstream).
#[derive(Clone)]
pub struct ChannelSettings {
    pub max_message_bytes: usize,
    pub keepalive: Option<Duration>,
    pub max_frame: u32,
    /// TLS for `https://` upstreams (`TRITON_CA_FILE` and the rest); `None`: plaintext only.
    pub tls: Option<ClientTlsConfig>,
}

impl ChannelSettings {
    fn channel(&self, url: &str) -> anyhow::Result<Channel> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|_| anyhow::anyhow!("TRITON_URL: '{url}' is not a valid address"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // Large tensors: let HTTP/2 flow-control windows grow (the 64 KiB default
            // throttles), and let Triton send DATA frames up to 1 MiB.
            .http2_adaptive_window(true)
            .max_frame_size(self.max_frame);
        if let Some(k) = self.keepalive {
            endpoint = endpoint
                .http2_keep_alive_interval(k)
                .keep_alive_while_idle(true);
        }
        if url.starts_with("https://") {
            let tls = self.tls.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "TRITON_URL: '{url}' is https: set TRITON_CA_FILE to the CA that signed \
                     Triton's certificate (no system root store is built in)"
                )
            })?;
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| anyhow::anyhow!("TRITON_URL: '{url}': TLS: {e}"))?;
        }
        // Lazy: the proxy starts while Triton is down, and the channel reconnects by itself.
        Ok(endpoint.connect_lazy())
    }

    fn client(&self, channel: Channel) -> TritonClient {
        GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes)
    }
}

/// One upstream server.
pub struct Upstream {
    /// `http://address:port`: in logs, errors and metric labels.
    pub url: String,
    client: TritonClient,
    /// The same connection as `client`, for the proxy's own `ModelInfer` ([`crate::grpc::infer`]).
    channel: Channel,
    /// The largest answer taken (PROXY_MAX_MESSAGE_BYTES).
    max_message_bytes: usize,
    outstanding: AtomicI64,
    ready: AtomicBool,
    requests: AtomicU64,
    failures: AtomicU64,
}

impl Upstream {
    fn new(url: String, settings: &ChannelSettings) -> anyhow::Result<Arc<Upstream>> {
        let channel = settings.channel(&url)?;
        Ok(Arc::new(Upstream {
            client: settings.client(channel.clone()),
            channel,
            max_message_bytes: settings.max_message_bytes,
            url,
            outstanding: AtomicI64::new(0),
            // Until the first probe: a candidate like any other.
            ready: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }))
    }

    /// A client for one request, counted as outstanding until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Lease {
            upstream: self.clone(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A request to this upstream found it unreachable: eject it until a probe finds it ready.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.ready.swap(false, Ordering::Relaxed) {
            tracing::warn!(upstream = %self.url, "Triton is unreachable: ejected until it answers ServerReady");
        }
    }

    fn set_ready(&self, ready: bool) {
        if self.ready.swap(ready, Ordering::Relaxed) != ready {
            if ready {
                tracing::info!(upstream = %self.url, "Triton is ready: taking requests");
            } else {
                tracing::warn!(upstream = %self.url, "Triton is not ready: ejected");
            }
        }
    }

    async fn probe(&self) -> bool {
        self.ask_ready(PROBE_TIMEOUT).await
    }

    async fn ask_ready(&self, within: Duration) -> bool {
        self.readiness(within).await == Readiness::Ready
    }

    async fn readiness(&self, within: Duration) -> Readiness {
        let mut c = self.client.clone();
        match tokio::time::timeout(within, c.server_ready(ServerReadyRequest {})).await {
            Ok(Ok(r)) if r.get_ref().ready => Readiness::Ready,
            Ok(_) => Readiness::NotReady,
            Err(_) => Readiness::Silent,
        }
    }

    /// After an error answer: asks `ServerReady` now, and ejects the upstream at once when it
    /// answers not ready or cannot be reached. True when it is ready, i.e. the error was the
    /// server's considered answer — and also when it does not answer within
    /// [`CONFIRM_TIMEOUT`]: a busy Triton can be slow to say it is ready, and one error answer
    /// (a client's mistake, say) must not eject it; the probe every [`PROBE_EVERY`] judges a
    /// server that stays silent.
    pub async fn confirm_ready(&self) -> bool {
        match self.readiness(CONFIRM_TIMEOUT).await {
            Readiness::Ready => true,
            Readiness::Silent => {
                tracing::debug!(upstream = %self.url, "ServerReady not answered within {CONFIRM_TIMEOUT:?} after an error answer; left to the probe");
                true
            }
            Readiness::NotReady => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.set_ready(false);
                false
            }
        }
    }
}

/// What a `ServerReady` question came back with.
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    Ready,
    /// Answered not ready, or the call failed (unreachable, refused).
    NotReady,
    /// No answer in time.
    Silent,
}

/// One request's hold on an upstream.
pub struct Lease {
    pub upstream: Arc<Upstream>,
}

impl Lease {
    pub fn client(&self) -> TritonClient {
        self.upstream.client.clone()
    }

    /// The connection, and the largest answer to take on it.
    pub fn channel(&self) -> (Channel, usize) {
        (
            self.upstream.channel.clone(),
            self.upstream.max_message_bytes,
        )
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.upstream.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every upstream of the proxy.
/// Looks a name up: the addresses of `host`, `port` (the system's resolver in the proxy; tests
/// give their own).
pub type Resolver = Arc<
    dyn Fn(String, u16) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>>
        + Send
        + Sync,
>;

/// The system's resolver (`getaddrinfo` through tokio).
fn system_resolver() -> Resolver {
    Arc::new(|host, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

pub struct Pool {
    entries: Vec<Entry>,
    settings: ChannelSettings,
    resolver: Resolver,
    members: RwLock<Vec<Arc<Upstream>>>,
    /// Requests sent once more to another upstream after theirs became unreachable.
    pub retries: AtomicU64,
}

impl Pool {
    /// The upstreams of `TRITON_URL` (names resolved once now; see [`Pool::refresh`]).
    pub async fn new(list: &str, settings: ChannelSettings) -> anyhow::Result<Arc<Pool>> {
        Pool::with_resolver(list, settings, system_resolver()).await
    }

    /// The same with another resolver.
    pub async fn with_resolver(
        list: &str,
        settings: ChannelSettings,
        resolver: Resolver,
    ) -> anyhow::Result<Arc<Pool>> {
        let entries = parse_list(list)?;
        let pool = Arc::new(Pool {
            entries,
            settings,
            resolver,
            members: RwLock::default(),
            retries: AtomicU64::new(0),
        });
        pool.refresh().await?;
        Ok(pool)
    }

    /// Resolves the names again and updates the members (an upstream that stays keeps its
    /// connection and counters). A name that resolves to one address or none stays one upstream
    /// by name (its channel resolves it when it connects).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut urls = Vec::new();
        for e in &self.entries {
            let mut addrs: Vec<IpAddr> = Vec::new();
            if e.resolves() {
                match (self.resolver)(e.host.clone(), e.port).await {
                    Ok(found) => addrs.extend(found),
                    Err(err) => {
                        tracing::debug!(host = %e.host, error = %err, "TRITON_URL: name not resolved")
                    }
                }
            }
            urls.extend(expand(e, addrs));
        }
        let (added, gone) = self.apply(urls)?;
        for url in added {
            tracing::info!(upstream = %url, "upstream");
        }
        for url in gone {
            tracing::info!(upstream = %url, "upstream gone from DNS");
        }
        Ok(())
    }

    /// Makes `urls` the members, keeping the upstreams (connections, counters) that stay;
    /// returns the URLs added and those gone.
    fn apply(&self, urls: Vec<String>) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let old: HashMap<String, Arc<Upstream>> = self
            .members
            .read()
            .map(|m| m.iter().map(|u| (u.url.clone(), u.clone())).collect())
            .unwrap_or_default();
        let mut next = Vec::with_capacity(urls.len());
        let mut added = Vec::new();
        for url in urls {
            match old.get(&url) {
                Some(u) => next.push(u.clone()),
                None => {
                    added.push(url.clone());
                    next.push(Upstream::new(url, &self.settings)?);
                }
            }
        }
        let gone = old
            .into_keys()
            .filter(|url| !next.iter().any(|u| &u.url == url))
            .collect();
        if let Ok(mut m) = self.members.write() {
            *m = next;
        }
        Ok((added, gone))
    }

    pub fn members(&self) -> Vec<Arc<Upstream>> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The upstream for the next request: the one with fewer requests outstanding of two drawn
    /// at random among the ready ones other than `except` (among all but `except` when none is
    /// ready). `None` when `except` is the only one.
    pub fn pick(&self, except: Option<&Arc<Upstream>>) -> Option<Arc<Upstream>> {
        let members = self.members.read().ok()?;
        let others: Vec<&Arc<Upstream>> = members
            .iter()
            .filter(|u| except.is_none_or(|x| !Arc::ptr_eq(x, u)))
            .collect();
        let ready: Vec<&Arc<Upstream>> = others.iter().copied().filter(|u| u.is_ready()).collect();
        let from = if ready.is_empty() { &others } else { &ready };
        match from.len() {
            0 => None,
            1 => Some(from[0].clone()),
            n => {
                // Two different ones, at random.
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (ua, ub) = (from[a], from[b]);
                let load = |u: &Upstream| u.outstanding.load(Ordering::Relaxed);
                Some(if load(ub) < load(ua) { ub } else { ua }.clone())
            }
        }
    }

    /// Asks every upstream `ServerReady` and updates who is ready; true when any is.
    pub async fn probe(&self) -> bool {
        let members = self.members();
        let results =
            futures::future::join_all(members.iter().map(|u| async move { (u, u.probe().await) }))
                .await;
        let mut any = false;
        for (u, ready) in results {
            u.set_ready(ready);
            any |= ready;
        }
        any
    }

    /// The address for messages: the list as configured.
    pub fn addresses(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.url(&e.host))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The per-upstream series (label `upstream`, its URL) and the retries, as metric families.
    pub fn encode_metrics(
        &self,
        enc: &mut prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let members = self.members();
        type Row = (&'static str, &'static str, MetricType, fn(&Upstream) -> u64);
        let rows: [Row; 4] = [
            (
                "proxy_upstream_requests",
                "Requests sent to each upstream.",
                MetricType::Counter,
                |u| u.requests.load(Ordering::Relaxed),
            ),
            (
                "proxy_upstream_failures",
                "Requests that found their upstream unreachable or not ready.",
                MetricType::Counter,
                |u| u.failures.load(Ordering::Relaxed),
            ),
            (
                "proxy_upstream_outstanding",
                "Requests outstanding at each upstream.",
                MetricType::Gauge,
                |u| u.outstanding.load(Ordering::Relaxed) as u64,
            ),
            (
                "proxy_upstream_ready",
                "1 while an upstream takes requests, 0 while it is ejected.",
                MetricType::Gauge,
                |u| u64::from(u.is_ready()),
            ),
        ];
        for (name, help, kind, value) in rows {
            let mut fam = enc.encode_descriptor(name, help, None, kind)?;
            for u in &members {
                let url = u.url.replace(['"', '\\', '\n'], "_");
                let labels = [("upstream", url.as_str())];
                let m = fam.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value(u)).encode(m)?,
                    _ => ConstGauge::new(value(u) as i64).encode(m)?,
                }
            }
        }
        ConstCounter::new(self.retries.load(Ordering::Relaxed)).encode(enc.encode_descriptor(
            "proxy_upstream_retries",
            "Requests sent once more to another upstream.",
            None,
            MetricType::Counter,
        )?)
    }
}

/// The upstream URLs of one entry given the addresses its name resolved to: one per distinct
/// address when there are several, else the entry by name.
fn expand(e: &Entry, mut addrs: Vec<IpAddr>) -> Vec<String> {
    addrs.sort();
    addrs.dedup();
    if addrs.len() < 2 {
        return vec![e.url(&e.host)];
    }
    addrs
        .into_iter()
        .map(|a| match a {
            IpAddr::V4(v4) => e.url(&v4.to_string()),
            IpAddr::V6(v6) => e.url(&format!("[{v6}]")),
        })
        .collect()
}

/// Re-resolves `TRITON_URL`'s names every `every` (0 = never).
pub async fn keep_resolving(pool: Arc<Pool>, every: Option<Duration>) {
    let Some(every) = every else {
        return;
    };
    if !pool.entries.iter().any(Entry::resolves) {
        return;
    }
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = pool.refresh().await {
            tracing::warn!(error = %e, "TRITON_URL: re-resolving failed; keeping the upstreams");
        }
    }
}

#[cfg(test)]
mod tests;

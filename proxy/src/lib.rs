//! `triton-proxy`: terminates client gRPC (`multimodal.MultiModal/Chat`) and forwards tensors to
//! Triton (`inference.GRPCInferenceService/ModelInfer`).
//!
//! [`Proxy::bind`] validates the configuration and binds the ports; [`Proxy::serve`] runs until the
//! shutdown future resolves, then stops taking packets, finishes the in-flight ones and ends every
//! stream cleanly.

pub mod ack;
pub mod batch;
pub mod budget;
pub mod config;
pub mod conn;
pub mod forward;
pub mod grpc;
pub mod limits;
pub mod linger;
pub mod memory;
pub mod metrics;
pub mod service;
pub mod upstream;

/// Who is let in, what a packet asks for, payload bytes: the I/O-free part, its own crate.
pub use triton_proxy_core::{auth, control, rope};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use triton_proto::multimodal::multi_modal_server::MultiModalServer;

pub use config::Config;

/// A bound, not yet serving proxy.
pub struct Proxy {
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    service: service::Service,
    drain_tx: watch::Sender<bool>,
}

impl Proxy {
    /// Checks the configuration, reads credentials and binds the gRPC and metrics ports.
    pub async fn bind(config: Config) -> anyhow::Result<Proxy> {
        let auth = auth::Authenticator::new(
            config.grpc_expect_api_key.as_deref(),
            config.grpc_expect_bearer.as_deref(),
            config.proxy_keys_file.as_deref(),
            config.proxy_allow_unauthenticated,
        )?
        .with_fixed_parameters(&allowed_parameters(&config.proxy_allowed_parameters));
        if !auth.has_credentials() {
            if !config.proxy_allow_unauthenticated {
                bail!(
                    "no credentials configured: set GRPC_EXPECT_API_KEY, GRPC_EXPECT_BEARER or PROXY_KEYS_FILE \
                     (or PROXY_ALLOW_UNAUTHENTICATED=true to admit every client)"
                );
            }
            tracing::warn!(
                "PROXY_ALLOW_UNAUTHENTICATED=true and no credentials: every client is admitted"
            );
        }
        let shape = control::parse_shape(&config.triton_input_shape).map_err(anyhow::Error::msg)?;
        let defaults = control::Defaults {
            model: config.triton_model_name.clone(),
            input: control::ControlInput {
                name: config.triton_input_name.clone(),
                shape,
                dtype: config.triton_input_dtype.to_uppercase(),
                from: config.triton_input_from.clone(),
            },
            outputs: config
                .triton_output_names
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            timeout_secs: config.triton_timeout_secs,
        };
        if !matches!(defaults.input.from.as_str(), "frame" | "image" | "video") {
            bail!(
                "TRITON_INPUT_FROM: '{}'; expected frame, image or video",
                defaults.input.from
            );
        }
        control::tensor_bytes(&defaults.input.shape, &defaults.input.dtype)
            .map_err(|e| anyhow::anyhow!("TRITON_INPUT_SHAPE/TRITON_INPUT_DTYPE: {e}"))?;
        if config.proxy_max_connection_age_secs > 0
            && config.proxy_max_connection_age_grace_secs < 2 * limits::AGE_MARGIN.as_secs()
        {
            bail!(
                "PROXY_MAX_CONNECTION_AGE_GRACE_SECS: expected at least {} s (streams end {} s \
                 after the GOAWAY, then need time for their last Acks)",
                2 * limits::AGE_MARGIN.as_secs(),
                limits::AGE_MARGIN.as_secs()
            );
        }
        if config.triton_timeout_secs.is_nan() || config.triton_timeout_secs <= 0.0 {
            bail!("TRITON_TIMEOUT_SECS: expected a positive number of seconds");
        }

        // Every entry checked now (one line naming a bad one); names resolved once now and
        // then every PROXY_RESOLVE_SECS; channels lazy, so the proxy starts while Triton is down.
        let upstreams = upstream::Pool::new(
            &config.triton_url,
            upstream::ChannelSettings {
                max_message_bytes: config.proxy_max_message_bytes,
                keepalive: secs(config.proxy_keepalive_secs),
                max_frame: MAX_FRAME,
                tls: upstream_tls(&config)?,
            },
        )
        .await?;

        let listener = TcpListener::bind(config.listen_addr()?)
            .await
            .with_context(|| {
                format!(
                    "PROXY_HOST/PROXY_PORT: cannot listen on {}",
                    config
                        .listen_addr()
                        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
                )
            })?;
        let metrics_addr = config.metrics_addr()?;
        let metrics_listener = Some(
            TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("PROXY_METRICS_PORT: cannot listen on {metrics_addr}"))?,
        );
        let (drain_tx, draining) = watch::channel(false);
        let metrics = Arc::new(metrics::Metrics::with_upstreams(upstreams.clone()));
        let budget = budget::Budget::new(match config.proxy_max_buffered_bytes {
            0 => budget::default_bytes(),
            n => n,
        });
        let _ = metrics.budget.set(budget.clone());
        let service = service::Service(Arc::new(service::Inner {
            upstreams: upstreams.clone(),
            auth,
            defaults,
            max_inflight: config.proxy_max_inflight,
            max_message_bytes: config.proxy_max_message_bytes,
            batcher: (config.proxy_batch_max > 1).then(|| {
                Arc::new(batch::Batcher::new(
                    config.proxy_batch_max,
                    Duration::from_micros(config.proxy_batch_delay_us),
                    upstreams.clone(),
                    metrics.clone(),
                ))
            }),
            metrics,
            limits: Arc::new(limits::Limits::new(
                config.proxy_max_streams,
                config.proxy_max_streams_per_key,
                secs(config.proxy_stream_idle_secs),
                secs(config.proxy_max_connection_age_secs),
            )),
            conns: Arc::default(),
            draining,
            keys_reloaded: Arc::new(watch::channel(0).0),
            budget: budget.clone(),
        }));
        Ok(Proxy {
            config,
            listener,
            metrics_listener,
            service,
            drain_tx,
        })
    }

    /// The gRPC address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The metrics address actually bound, if metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves; then drains (at most `PROXY_DRAIN_SECS`) and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Proxy {
            config,
            listener,
            metrics_listener,
            service,
            drain_tx,
        } = self;
        let max = config.proxy_max_message_bytes;
        let mut tasks = Vec::new();
        if let Some(l) = metrics_listener {
            tasks.push(tokio::spawn(metrics::serve(
                l,
                service.0.metrics.clone(),
                config
                    .proxy_metrics_bearer
                    .clone()
                    .filter(|t| !t.is_empty()),
            )));
        }
        if let Some(path) = config.proxy_keys_file.clone() {
            tasks.push(tokio::spawn(watch_keys_file(
                path,
                service.0.auth.clone(),
                service.0.keys_reloaded.clone(),
            )));
        }

        let (reporter, health) = tonic_health::server::health_reporter();
        tasks.push(tokio::spawn(track_triton_health(
            service.0.upstreams.clone(),
            reporter.clone(),
            service.0.metrics.clone(),
            drain_tx.subscribe(),
        )));
        tasks.push(tokio::spawn(upstream::keep_resolving(
            service.0.upstreams.clone(),
            secs(config.proxy_resolve_secs),
        )));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(triton_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let mut builder = Server::builder()
            .tcp_nodelay(true)
            .http2_adaptive_window(Some(true))
            .max_frame_size(MAX_FRAME);
        if config.proxy_keepalive_secs > 0 {
            builder = builder
                .http2_keepalive_interval(secs(config.proxy_keepalive_secs))
                .http2_keepalive_timeout(secs(config.proxy_keepalive_timeout_secs.max(1)));
        }
        let age = secs(config.proxy_max_connection_age_secs);
        if let Some(age) = age {
            // GOAWAY at the age (tonic's graceful shutdown of the connection; our streams end
            // themselves AGE_MARGIN later, after their owed Acks). tonic's own grace would skip
            // the GOAWAY, so the forced close after the grace is ours (conn::Conn).
            builder = builder.max_connection_age(age);
        }
        let tls = tls_acceptor(&config)?;
        let lifetime =
            age.map(|a| a + Duration::from_secs(config.proxy_max_connection_age_grace_secs));
        let lingering = service.0.conns.lingering.clone();
        let (incoming, accept_task) = conn::accept(
            listener,
            tls,
            lifetime,
            service.0.conns.clone(),
            service.0.metrics.clone(),
            drain_tx.subscribe(),
        );
        tasks.push(accept_task);
        let auth = service::AuthInterceptor {
            auth: service.0.auth.clone(),
            metrics: service.0.metrics.clone(),
        };
        // Chat by the proxy's own gRPC path (tensors never copied), ModelInfo by tonic.
        let grpc = grpc::chat::Route {
            inner: service.0.clone(),
            auth: auth.clone(),
            rest: InterceptedService::new(
                MultiModalServer::new(service.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                auth,
            ),
        };

        let drain = Duration::from_secs(config.proxy_drain_secs);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                drain_secs = drain.as_secs(),
                "shutting down: finishing in-flight packets"
            );
            // Health says NOT_SERVING from now on (probes and balancers stop sending), and
            // streams stop taking packets, answer the in-flight ones and end with OK.
            let _ = drain_tx.send(true);
            // No new connections; existing ones close once their streams end.
            let _ = stop_tx.send(());
            let _ = fired_tx.send(());
            std::future::pending::<()>().await; // keep drain_tx alive
        });
        let server = builder
            .add_service(grpc)
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming_shutdown(ReceiverStream::new(incoming), async {
                let _ = stop_rx.await;
            });
        let result = tokio::select! {
            r = server => r.map_err(anyhow::Error::from),
            _ = async {
                if fired_rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!("PROXY_DRAIN_SECS elapsed with streams still open; exiting");
                Ok(())
            }
        };
        for t in tasks {
            t.abort();
        }
        lingering.finished(linger::LINGER).await;
        result
    }
}

/// TLS to Triton from `TRITON_CA_FILE`, `TRITON_CLIENT_CERT`/`TRITON_CLIENT_KEY` (mTLS) and
/// `TRITON_TLS_SERVER_NAME`; `None` without a CA file. Used by the `https://` entries of
/// `TRITON_URL`.
fn upstream_tls(c: &Config) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |var: &str, p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("{var}: cannot read {}", p.display()))
    };
    let https = c
        .triton_url
        .split(',')
        .any(|e| e.trim().starts_with("https://"));
    let Some(ca) = &c.triton_ca_file else {
        if c.triton_client_cert.is_some() || c.triton_client_key.is_some() {
            bail!(
                "TRITON_CLIENT_CERT/TRITON_CLIENT_KEY: set TRITON_CA_FILE too (TLS to Triton needs it)"
            );
        }
        return Ok(None);
    };
    if !https {
        bail!(
            "TRITON_CA_FILE is set but no TRITON_URL entry is https://host:port; expected https \
             for the upstreams that use TLS"
        );
    }
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("TRITON_CA_FILE", ca)?));
    match (&c.triton_client_cert, &c.triton_client_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read("TRITON_CLIENT_CERT", cert)?,
                read("TRITON_CLIENT_KEY", key)?,
            ));
        }
        (None, None) => {}
        _ => {
            bail!("TRITON_CLIENT_CERT and TRITON_CLIENT_KEY: set both (mTLS to Triton) or neither")
        }
    }
    if let Some(name) = c
        .triton_tls_server_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        tls = tls.domain_name(name);
    }
    Ok(Some(tls))
}

/// The names in `PROXY_ALLOWED_PARAMETERS`, trimmed, empty ones dropped.
fn allowed_parameters(raw: &[String]) -> Vec<String> {
    raw.iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Where this machine reaches its own metrics listener: its address, or loopback when it
/// listens on every address.
fn local_metrics(c: &Config) -> SocketAddr {
    let mut a = c
        .metrics_addr()
        .unwrap_or_else(|_| ([127, 0, 0, 1], c.proxy_metrics_port).into());
    if a.ip().is_unspecified() {
        a.set_ip([127, 0, 0, 1].into());
    }
    a
}

/// `--health-check`: 0 when the local proxy reports SERVING, 1 otherwise. It asks
/// grpc.health.v1 on the gRPC port; where that port requires client certificates
/// (`PROXY_TLS_CLIENT_CA`) it asks `/healthz` on the metrics port instead, which says the same
/// in plain HTTP.
pub async fn health_check(c: &Config) -> i32 {
    if c.proxy_tls_client_ca.is_some() {
        if c.proxy_metrics_port == 0 {
            eprintln!(
                "triton-proxy --health-check: with PROXY_TLS_CLIENT_CA the check reads /healthz on \
                 the metrics port; set PROXY_METRICS_PORT to the proxy's (not 0)"
            );
            return 1;
        }
        return match tokio::time::timeout(
            Duration::from_secs(5),
            metrics::healthz(local_metrics(c)),
        )
        .await
        {
            Ok(Ok(true)) => 0,
            _ => 1,
        };
    }
    use tonic_health::pb::health_check_response::ServingStatus as S;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let tls = c.proxy_tls_cert.is_some();
    let mut target = triton_endpoint::Target::new(
        format!(
            "{}://127.0.0.1:{}",
            if tls { "https" } else { "http" },
            c.proxy_port
        ),
        triton_endpoint::Names::PROXY,
    );
    // Trust the proxy's own certificate chain for the local probe.
    target.tls.ca_file = c
        .proxy_tls_cert
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let check = async {
        let ch = target.connect().await.ok()?;
        let r = HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        Some(r.into_inner().status == S::Serving as i32)
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Some(true)) => 0,
        _ => 1,
    }
}

/// Seconds as an optional duration: 0 = off.
fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// The TLS side of the client-facing port (rustls, HTTP/2 by ALPN), or `None` for plaintext.
fn tls_acceptor(c: &Config) -> anyhow::Result<conn::Tls> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = match (&c.proxy_tls_cert, &c.proxy_tls_key) {
        (None, None) => {
            if c.proxy_tls_client_ca.is_some() {
                bail!("PROXY_TLS_CLIENT_CA needs PROXY_TLS_CERT and PROXY_TLS_KEY");
            }
            return Ok(None);
        }
        (Some(cert), Some(key)) => (cert, key),
        _ => bail!("PROXY_TLS_CERT and PROXY_TLS_KEY must be set together"),
    };
    let read = |field: &str, p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("{field}: cannot read {}", p.display()))
    };
    let chain = CertificateDer::pem_slice_iter(&read("PROXY_TLS_CERT", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("PROXY_TLS_CERT: not a PEM certificate chain ({e})"))?;
    if chain.is_empty() {
        bail!(
            "PROXY_TLS_CERT: no certificate in {}; expected a PEM chain",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_slice(&read("PROXY_TLS_KEY", key)?)
        .map_err(|e| anyhow::anyhow!("PROXY_TLS_KEY: not a PEM private key ({e})"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version")?;
    let builder = match &c.proxy_tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(&read("PROXY_TLS_CLIENT_CA", ca)?) {
                let der = der.map_err(|e| {
                    anyhow::anyhow!("PROXY_TLS_CLIENT_CA: not a PEM certificate ({e})")
                })?;
                roots
                    .add(der)
                    .context("PROXY_TLS_CLIENT_CA: not a usable CA certificate")?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .context("PROXY_TLS_CLIENT_CA: no usable CA certificate")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder
        .with_single_cert(chain, key)
        .context("PROXY_TLS_CERT/PROXY_TLS_KEY: the key does not fit the certificate")?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))))
}

/// The health service name of the whole server (grpc.health.v1: the empty name).
/// The largest HTTP/2 DATA frame the proxy accepts, on both legs (the peer sends at most this):
/// 1 MiB instead of 16 KiB, so a 4.9 MB tensor is 5 frames, not 300.
const MAX_FRAME: u32 = 1 << 20;

pub const OVERALL_HEALTH: &str = "";

/// The served `multimodal.MultiModal` service; its health name comes from its type.
type ChatServer = MultiModalServer<service::Service>;

/// grpc.health.v1: SERVING while at least one Triton says it is ready. The same probe ejects
/// and brings back each upstream.
async fn track_triton_health(
    upstreams: Arc<upstream::Pool>,
    reporter: tonic_health::server::HealthReporter,
    metrics: Arc<metrics::Metrics>,
    mut draining: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let ready = upstreams.probe().await && !*draining.borrow_and_update();
        metrics
            .serving
            .store(ready, std::sync::atomic::Ordering::Relaxed);
        if last != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status(OVERALL_HEALTH, status).await;
            match status {
                ServingStatus::Serving => reporter.set_serving::<ChatServer>().await,
                _ => reporter.set_not_serving::<ChatServer>().await,
            }
            if ready {
                tracing::info!("Triton is ready: SERVING");
            } else if *draining.borrow() {
                tracing::info!("draining: NOT_SERVING");
            } else {
                tracing::warn!("Triton is not ready: NOT_SERVING");
            }
            last = Some(ready);
        }
        // Probe again in a second, or at once when the drain begins.
        let _ = tokio::time::timeout(upstream::PROBE_EVERY, draining.changed()).await;
    }
}

/// Re-reads the keys file on SIGHUP and when its modification time changes (looked at every
/// second), and tells the open streams (`reloaded`), which end if their key was removed.
async fn watch_keys_file(
    path: std::path::PathBuf,
    auth: auth::Authenticator,
    reloaded: Arc<watch::Sender<u64>>,
) {
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = mtime(&path);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let by_signal = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => true,
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        let now = mtime(&path);
        if by_signal || now != last {
            last = now;
            match auth.reload(&path) {
                Ok(n) => {
                    tracing::info!(keys = n, "reloaded PROXY_KEYS_FILE");
                    reloaded.send_modify(|g| *g += 1);
                }
                Err(e) => {
                    tracing::error!(error = %e, "PROXY_KEYS_FILE reload failed; keeping the previous keys")
                }
            }
        }
    }
}

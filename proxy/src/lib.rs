//! `triton-proxy`: terminates client gRPC (`multimodal.MultiModal/Chat`) and forwards tensors to
//! Triton (`inference.GRPCInferenceService/ModelInfer`).
//!
//! [`Proxy::bind`] validates the configuration and binds the ports; [`Proxy::serve`] runs until the
//! shutdown future resolves, then stops taking packets, finishes the in-flight ones and ends every
//! stream cleanly.

pub mod auth;
pub mod config;
pub mod control;
pub mod metrics;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Endpoint, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use triton_proto::inference::ServerReadyRequest;
use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
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
        )?;
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
            input: control::InputSpec {
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
        if config.triton_timeout_secs.is_nan() || config.triton_timeout_secs <= 0.0 {
            bail!("TRITON_TIMEOUT_SECS: expected a positive number of seconds");
        }

        let url = config.triton_endpoint();
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("TRITON_URL: '{}' is not a valid address", config.triton_url))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // Large tensors: let HTTP/2 flow-control windows grow (the 64 KiB default throttles).
            .http2_adaptive_window(true);
        if config.proxy_keepalive_secs > 0 {
            endpoint = endpoint
                .http2_keep_alive_interval(Duration::from_secs(config.proxy_keepalive_secs))
                .keep_alive_while_idle(true);
        }
        // Lazy: the proxy starts (and reports NOT_SERVING) while Triton is down, and the channel
        // reconnects by itself when Triton comes back.
        let channel = endpoint.connect_lazy();
        let triton = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(config.proxy_max_message_bytes)
            .max_encoding_message_size(config.proxy_max_message_bytes);

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
        let metrics_addr = SocketAddr::new(config.listen_addr()?.ip(), config.proxy_metrics_port);
        let metrics_listener = Some(
            TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("PROXY_METRICS_PORT: cannot listen on {metrics_addr}"))?,
        );
        let (drain_tx, draining) = watch::channel(false);
        let service = service::Service(Arc::new(service::Inner {
            triton,
            triton_url: config.triton_url.clone(),
            auth,
            defaults,
            max_inflight: config.proxy_max_inflight,
            max_message_bytes: config.proxy_max_message_bytes,
            metrics: Arc::new(metrics::Metrics::default()),
            draining,
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
            tasks.push(tokio::spawn(metrics::serve(l, service.0.metrics.clone())));
        }
        if let Some(path) = config.proxy_keys_file.clone() {
            tasks.push(tokio::spawn(watch_keys_file(path, service.0.auth.clone())));
        }

        let (reporter, health) = tonic_health::server::health_reporter();
        tasks.push(tokio::spawn(track_triton_health(
            service.0.triton.clone(),
            reporter,
        )));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(triton_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let mut builder = Server::builder()
            .tcp_nodelay(true)
            .http2_adaptive_window(Some(true));
        if config.proxy_keepalive_secs > 0 {
            builder = builder
                .http2_keepalive_interval(Some(Duration::from_secs(config.proxy_keepalive_secs)));
        }
        if let Some(tls) = tls_config(&config)? {
            builder = builder
                .tls_config(tls)
                .context("PROXY_TLS_CERT/PROXY_TLS_KEY: invalid TLS configuration")?;
        }
        let grpc = InterceptedService::new(
            MultiModalServer::new(service.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            service::AuthInterceptor {
                auth: service.0.auth.clone(),
                metrics: service.0.metrics.clone(),
            },
        );

        let drain = Duration::from_secs(config.proxy_drain_secs);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                drain_secs = drain.as_secs(),
                "shutting down: finishing in-flight packets"
            );
            // Streams stop taking packets, answer the in-flight ones and end with OK.
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
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
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
        result
    }
}

/// `--health-check`: 0 when the local proxy reports SERVING, 1 otherwise.
pub async fn health_check(c: &Config) -> i32 {
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

fn tls_config(c: &Config) -> anyhow::Result<Option<ServerTlsConfig>> {
    match (&c.proxy_tls_cert, &c.proxy_tls_key) {
        (None, None) => {
            if c.proxy_tls_client_ca.is_some() {
                bail!("PROXY_TLS_CLIENT_CA needs PROXY_TLS_CERT and PROXY_TLS_KEY");
            }
            Ok(None)
        }
        (Some(cert), Some(key)) => {
            let cert = std::fs::read(cert)
                .with_context(|| format!("PROXY_TLS_CERT: cannot read {}", cert.display()))?;
            let key = std::fs::read(key)
                .with_context(|| format!("PROXY_TLS_KEY: cannot read {}", key.display()))?;
            let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
            if let Some(ca) = &c.proxy_tls_client_ca {
                let ca = std::fs::read(ca).with_context(|| {
                    format!("PROXY_TLS_CLIENT_CA: cannot read {}", ca.display())
                })?;
                tls = tls.client_ca_root(Certificate::from_pem(ca));
            }
            Ok(Some(tls))
        }
        _ => bail!("PROXY_TLS_CERT and PROXY_TLS_KEY must be set together"),
    }
}

/// The health service name of the whole server (grpc.health.v1: the empty name).
pub const OVERALL_HEALTH: &str = "";

/// The served `multimodal.MultiModal` service; its health name comes from its type.
type ChatServer = MultiModalServer<service::Service>;

/// grpc.health.v1: SERVING only while Triton says it is ready.
async fn track_triton_health(
    triton: GrpcInferenceServiceClient<tonic::transport::Channel>,
    reporter: tonic_health::server::HealthReporter,
) {
    let mut last = None;
    loop {
        let mut c = triton.clone();
        let ready = matches!(
            tokio::time::timeout(Duration::from_secs(2), c.server_ready(ServerReadyRequest {})).await,
            Ok(Ok(r)) if r.get_ref().ready
        );
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
            } else {
                tracing::warn!("Triton is not ready: NOT_SERVING");
            }
            last = Some(ready);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Re-reads the keys file on SIGHUP and when its modification time changes.
async fn watch_keys_file(path: std::path::PathBuf, auth: auth::Authenticator) {
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
                Ok(n) => tracing::info!(keys = n, "reloaded PROXY_KEYS_FILE"),
                Err(e) => {
                    tracing::error!(error = %e, "PROXY_KEYS_FILE reload failed; keeping the previous keys")
                }
            }
        }
    }
}

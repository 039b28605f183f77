use clap::Parser;
use triton_proxy::{Config, Proxy};

fn main() {
    // Before the runtime's threads: large buffers are reused, not mapped afresh per frame.
    triton_proxy::memory::keep_freed_memory();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime")
        .block_on(run());
}

async fn run() {
    let config = Config::parse();
    if config.health_check {
        std::process::exit(triton_proxy::health_check(&config).await);
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if config.proxy_log_format.eq_ignore_ascii_case("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let proxy = match Proxy::bind(config).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("triton-proxy: {e:#}");
            std::process::exit(2);
        }
    };
    tracing::info!(addr = %proxy.local_addr(), metrics = ?proxy.metrics_addr(), "listening");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    };
    if let Err(e) = proxy.serve(shutdown).await {
        eprintln!("triton-proxy: {e:#}");
        std::process::exit(1);
    }
}

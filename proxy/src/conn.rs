//! Accepted connections, before the HTTP/2 server sees them: counted (a gauge and a counter),
//! remembered by peer address with the time they were opened (for `PROXY_MAX_CONNECTION_AGE`),
//! and classified by their first bytes. A client that speaks the wrong protocol for the port —
//! TLS on the plaintext port, plaintext on the TLS port, HTTP/1.1 — gets one log line that says
//! what to change, and where the protocol allows, an answer it can show its user (HTTP/1.1: a 426;
//! plaintext gRPC on the TLS port: an `UNAVAILABLE` status saying to use https://). The TLS
//! handshake is ours (rustls) so that a refused client certificate is explained the same way.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::Metrics;

/// How long a new connection may take to send its first bytes and finish a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections by peer address, with the time each was accepted.
#[derive(Default)]
pub struct Registry {
    born: Mutex<HashMap<SocketAddr, Instant>>,
    /// Closed connections waiting for their clients to close too.
    pub lingering: Arc<crate::linger::Lingering>,
}

impl Registry {
    /// When the connection from `peer` was accepted (now, if it is not known).
    pub fn born(&self, peer: Option<SocketAddr>) -> Instant {
        peer.and_then(|p| self.born.lock().ok()?.get(&p).copied())
            .unwrap_or_else(Instant::now)
    }
}

/// Keeps a connection counted and registered while it lives.
struct Guard {
    peer: Option<SocketAddr>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        if let (Some(p), Ok(mut m)) = (self.peer, self.registry.born.lock()) {
            m.remove(&p);
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Runs `$call` on the plain or the TLS stream.
macro_rules! either {
    ($io:expr, $s:ident => $call:expr) => {
        match $io {
            Io::Plain($s) => $call,
            Io::Tls($s) => $call,
        }
    };
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        either!(self, s => s.is_write_vectored())
    }
}

/// An accepted connection as the gRPC server gets it. Dropped, it closes by
/// [`crate::linger`]: the client reads everything the server wrote before it closed.
pub struct Conn {
    /// `None` only once dropped.
    io: Option<Io>,
    info: TcpConnectInfo,
    /// `PROXY_MAX_CONNECTION_AGE` + grace: from then on, reads and writes fail and the server
    /// closes the connection, whatever is still open on it.
    close_at: Option<Pin<Box<tokio::time::Sleep>>>,
    guard: Guard,
}

impl Conn {
    fn past_lifetime(&mut self, cx: &mut Context<'_>) -> bool {
        self.close_at
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(cx).is_ready())
    }

    /// The stream, unless the lifetime is over (`check_lifetime`).
    fn io(&mut self, cx: &mut Context<'_>, check_lifetime: bool) -> io::Result<Pin<&mut Io>> {
        if check_lifetime && self.past_lifetime(cx) {
            return Err(lifetime_over());
        }
        self.io
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            self.guard.registry.lingering.close(io);
        }
    }
}

fn lifetime_over() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "PROXY_MAX_CONNECTION_AGE_SECS + PROXY_MAX_CONNECTION_AGE_GRACE_SECS reached",
    )
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().io(cx, true) {
            Ok(io) => io.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io(cx, true) {
            Ok(io) => io.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io(cx, false) {
            Ok(io) => io.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io(cx, false) {
            Ok(io) => io.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io(cx, true) {
            Ok(io) => io.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }
}

/// What the first bytes of a connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A TLS record (handshake).
    Tls,
    /// The HTTP/2 connection preface.
    Http2,
    /// An HTTP/1.x request line.
    Http1,
    /// Anything else.
    Unknown,
}

/// Classifies the first bytes a client sent.
pub fn classify(first: &[u8]) -> Opening {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0";
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    match first.first() {
        None => Opening::Unknown,
        Some(0x16) => Opening::Tls,
        _ if first.len() >= 3 && PREFACE.starts_with(&first[..first.len().min(PREFACE.len())]) => {
            Opening::Http2
        }
        _ if METHODS
            .iter()
            .any(|m| first.len() >= 3 && m.starts_with(&first[..first.len().min(m.len())])) =>
        {
            Opening::Http1
        }
        _ => Opening::Unknown,
    }
}

/// Says why a client's TLS handshake failed and what the client must set.
pub fn explain_handshake(e: &io::Error) -> String {
    let text = e.to_string();
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .cloned();
    match inner {
        Some(rustls::Error::NoCertificatesPresented) => {
            "the client sent no certificate, and PROXY_TLS_CLIENT_CA requires one: \
             the client must set its certificate and key (tritoninfer tls-cert-file/tls-key-file, \
             triton-video TLS_CERT_FILE/TLS_KEY_FILE)"
                .into()
        }
        Some(rustls::Error::InvalidCertificate(c)) => format!(
            "the client's certificate was refused ({c:?}): it must be signed by the CA in \
             PROXY_TLS_CLIENT_CA"
        ),
        Some(rustls::Error::AlertReceived(a)) => format!(
            "the client ended the handshake with the alert {a:?} (it does not trust this proxy's \
             certificate: give the client the CA of PROXY_TLS_CERT, e.g. tritoninfer tls-ca-file)"
        ),
        _ => format!("TLS handshake failed: {text}"),
    }
}

/// The TLS settings of the client-facing port.
pub type Tls = Option<TlsAcceptor>;

/// Accepts connections until the drain begins (`draining` turns true), then closes the listening
/// socket, so a client that reconnects during the drain is refused at once and tries again (or
/// elsewhere) instead of waiting on a connection nobody will serve. Each connection is classified
/// (and its TLS handshake done) on a task of its own, so a slow or silent client never delays
/// the others.
pub fn accept(
    listener: TcpListener,
    tls: Tls,
    lifetime: Option<Duration>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    mut draining: watch::Receiver<bool>,
) -> (
    mpsc::Receiver<Result<Conn, io::Error>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                biased;
                _ = draining.wait_for(|d| *d) => break,
                a = listener.accept() => a,
            };
            let (sock, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (tx, tls, registry, metrics) =
                (tx.clone(), tls.clone(), registry.clone(), metrics.clone());
            tokio::spawn(async move {
                let opened =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, open(sock, peer, tls.as_ref())).await;
                let io = match opened {
                    Ok(Ok(io)) => io,
                    Ok(Err(reason)) => {
                        metrics.connections_refused.inc(reason);
                        return;
                    }
                    Err(_) => {
                        metrics.connections_refused.inc("handshake_timeout");
                        tracing::info!(%peer, "closed a connection that sent no request within {} s", HANDSHAKE_TIMEOUT.as_secs());
                        return;
                    }
                };
                let _ = sock_nodelay(&io);
                let info = TcpConnectInfo {
                    local_addr: local_addr(&io),
                    remote_addr: Some(peer),
                };
                metrics.connections_open.fetch_add(1, Ordering::Relaxed);
                metrics.connections_total.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = registry.born.lock() {
                    m.insert(peer, Instant::now());
                }
                let conn = Conn {
                    io: Some(io),
                    info,
                    close_at: lifetime.map(|l| Box::pin(tokio::time::sleep(l))),
                    guard: Guard {
                        peer: Some(peer),
                        registry,
                        metrics,
                    },
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
        tracing::info!("draining: no longer accepting connections");
        drop(listener);
    });
    (rx, task)
}

fn sock_nodelay(io: &Io) -> io::Result<()> {
    match io {
        Io::Plain(s) => s.set_nodelay(true),
        Io::Tls(s) => s.get_ref().0.set_nodelay(true),
    }
}

fn local_addr(io: &Io) -> Option<SocketAddr> {
    match io {
        Io::Plain(s) => s.local_addr().ok(),
        Io::Tls(s) => s.get_ref().0.local_addr().ok(),
    }
}

/// Reads the opening, answers a wrong protocol, does the TLS handshake. `Err`: closed, with the
/// reason counted in `proxy_connections_refused_total`.
async fn open(
    mut sock: TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsAcceptor>,
) -> Result<Io, &'static str> {
    let mut first = [0u8; 16];
    let n = sock.peek(&mut first).await.map_err(|_| "closed")?;
    let opening = classify(&first[..n]);
    match (opening, tls) {
        (Opening::Tls, Some(acceptor)) => match acceptor.accept(sock).await {
            Ok(s) => Ok(Io::Tls(Box::new(s))),
            Err(e) => {
                tracing::warn!(%peer, "refused a TLS connection: {}", explain_handshake(&e));
                Err("tls_handshake")
            }
        },
        (Opening::Tls, None) => {
            tracing::warn!(
                %peer,
                "a TLS handshake on the plaintext port: the client uses https:// (or TLS \
                 settings), but this proxy has no PROXY_TLS_CERT; use an http:// address or \
                 configure TLS on the proxy"
            );
            Err("tls_on_plaintext_port")
        }
        (Opening::Http1, _) => {
            tracing::info!(%peer, "an HTTP/1.x request: this port speaks gRPC over HTTP/2; answered 426");
            let body =
                "this port speaks gRPC over HTTP/2 (multimodal.MultiModal/Chat), not HTTP/1.1\n";
            let _ = sock
                .write_all(
                    format!(
                        "HTTP/1.1 426 Upgrade Required\r\nupgrade: h2c\r\nconnection: close\r\n\
                         content-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
            let _ = sock.shutdown().await;
            Err("http1")
        }
        (_, Some(_)) => {
            tracing::warn!(
                %peer,
                ?opening,
                "plaintext on the TLS port: the client must use an https:// address (and the CA of \
                 PROXY_TLS_CERT, e.g. tritoninfer tls-ca-file)"
            );
            if opening == Opening::Http2 {
                // A gRPC client gets a status it can show its user.
                answer_plaintext_h2(sock).await;
            } else {
                let _ = sock.shutdown().await;
            }
            Err("plaintext_on_tls_port")
        }
        (_, None) => Ok(Io::Plain(sock)),
    }
}

/// The status message a plaintext gRPC client gets on the TLS port.
pub const PLAINTEXT_ON_TLS: &str = "this port speaks TLS: use an https:// address";

/// Speaks just enough plaintext HTTP/2 to answer each request of a plaintext gRPC client on the
/// TLS port with `UNAVAILABLE` and [`PLAINTEXT_ON_TLS`], then closes (within the handshake
/// timeout of the caller).
async fn answer_plaintext_h2(sock: TcpStream) {
    let Ok(mut conn) = h2::server::handshake(sock).await else {
        return;
    };
    if let Some(Ok((_req, mut respond))) = conn.accept().await {
        let resp = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", "14")
            .header("grpc-message", PLAINTEXT_ON_TLS)
            .body(())
            .expect("static response");
        let _ = respond.send_response(resp, true);
    }
    conn.graceful_shutdown();
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        std::future::poll_fn(|cx| conn.poll_closed(cx)),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings_are_classified_from_their_first_bytes() {
        assert_eq!(classify(&[0x16, 3, 1, 0, 0xc8]), Opening::Tls);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM"), Opening::Http2);
        assert_eq!(classify(b"PRI"), Opening::Http2);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Opening::Http1);
        assert_eq!(classify(b"POST /x HTTP/1.1"), Opening::Http1);
        assert_eq!(classify(b"GE"), Opening::Unknown);
        assert_eq!(classify(b"PRX * HTTP/2.0"), Opening::Unknown);
        assert_eq!(classify(b"\x00\x01\x02garbage"), Opening::Unknown);
        assert_eq!(classify(b""), Opening::Unknown);
    }

    #[test]
    fn handshake_errors_name_the_setting() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        );
        assert!(explain_handshake(&e).contains("PROXY_TLS_CLIENT_CA requires one"));
        assert!(explain_handshake(&e).contains("tls-cert-file"));
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(explain_handshake(&e).contains("signed by the CA in PROXY_TLS_CLIENT_CA"));
        let e = io::Error::other("boom");
        assert_eq!(explain_handshake(&e), "TLS handshake failed: boom");
    }
}

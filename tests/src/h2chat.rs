//! A Chat call spoken in raw HTTP/2 (the `h2` crate), so that a test chooses what a gRPC library
//! would not let it: bytes that are no gRPC message, and how the body is cut into DATA frames.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::TcpStream;

/// One Chat call with `body` as its request body, sent in DATA frames of at most `frame` bytes
/// (each waits for flow-control credit, as a client that keeps sending would); returns the
/// grpc-status, the grpc-message and how many bytes of messages (Acks) came before them, or how
/// the stream failed (with the connection's error, such as a GOAWAY's reason, when there is one).
pub async fn raw_chat(
    addr: SocketAddr,
    mut body: Bytes,
    frame: usize,
) -> Result<(i32, String, usize), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (client, conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    // How the connection ended, when a stream fails with it.
    let why = |e: h2::Error| async move {
        match tokio::time::timeout(std::time::Duration::from_secs(5), conn).await {
            Ok(Ok(Err(c))) => format!("{e}; connection: {c}"),
            _ => e.to_string(),
        }
    };
    let mut client = client.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/multimodal.MultiModal/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-domino-api-key", "test-key")
        .body(())
        .unwrap();
    let (resp, mut send) = client.send_request(req, false).map_err(|e| e.to_string())?;
    let sender = tokio::spawn(async move {
        while !body.is_empty() {
            send.reserve_capacity(frame.min(body.len()));
            let credit = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(c)) => c,
                // The server answered (and reset or closed the stream) before the body's end.
                _ => return,
            };
            if credit == 0 {
                continue;
            }
            let chunk = body.split_to(credit.min(frame).min(body.len()));
            if send.send_data(chunk, body.is_empty()).is_err() {
                return;
            }
        }
    });
    let resp = match resp.await {
        Ok(r) => r,
        Err(e) => return Err(why(e).await),
    };
    let status_of = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
            .map(|s| {
                let msg = h
                    .get("grpc-message")
                    .map(|m| percent_decoded(m.as_bytes()))
                    .unwrap_or_default();
                (s, msg)
            })
    };
    if let Some((code, msg)) = status_of(resp.headers()) {
        sender.abort();
        return Ok((code, msg, 0));
    }
    let mut recv = resp.into_body();
    let mut answered = 0;
    while let Some(chunk) = recv.data().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return Err(why(e).await),
        };
        answered += chunk.len();
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    let trailers = recv.trailers().await.map_err(|e| e.to_string())?;
    sender.abort();
    trailers
        .as_ref()
        .and_then(status_of)
        .map(|(code, msg)| (code, msg, answered))
        .ok_or_else(|| "no grpc-status".into())
}

/// A grpc-message header's text (the gRPC spec percent-encodes it).
fn percent_decoded(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! One request to the upstreams: the less loaded of two ready servers, and once more to another
//! when the first was unreachable, died under it, or answered while shutting down (inference is
//! idempotent). Triton's errors become statuses that name the server.
//!
//! A Triton stopped gracefully (SIGTERM: Kubernetes, `podman stop`, systemd) says it is not
//! ready, unloads its models and still answers requests for a while, with errors such as
//! "Request for unknown model: 'm' has no available versions". Such an answer is not the
//! client's to see: after any error answer the upstream is asked `ServerReady`, and one that is
//! not ready is ejected at once and the request sent to another (with no other: UNAVAILABLE, a
//! status the client may retry). A ready server's errors (a model it really does not know, a bad
//! shape) go to the client as they are, and so do those of a server too busy to answer
//! `ServerReady` within a second (the periodic probe judges it, not one error answer).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic::{Code, Status};

use crate::grpc::infer::{self, Answer, Infer};

use crate::upstream::{Pool, Upstream};

/// Sends `req` within `timeout_secs`, to a second upstream if the first is unreachable.
pub async fn forward(pool: &Pool, req: Infer, timeout_secs: f64) -> Result<Answer, Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout_secs);
    let first = pick(pool, None)?;
    let resp = match send(&first, &req, deadline, timeout_secs).await {
        Err(Sent::Lost(s)) => match pool.pick(Some(&first)) {
            Some(other) => {
                pool.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(from = %first.url, to = %other.url, "request sent again to another upstream");
                send(&other, &req, deadline, timeout_secs).await
            }
            None => Err(Sent::Lost(s)),
        },
        other => other,
    };
    resp.map_err(|(Sent::Lost(s) | Sent::Failed(s))| s)
}

/// The upstream for the next request, or UNAVAILABLE when TRITON_URL names none right now.
pub fn pick(pool: &Pool, except: Option<&Arc<Upstream>>) -> Result<Arc<Upstream>, Status> {
    pool.pick(except).ok_or_else(|| {
        Status::unavailable(format!(
            "no Triton to send to: TRITON_URL '{}' names no server; retry later",
            pool.addresses()
        ))
    })
}

/// One ModelInfer to one upstream, until `deadline`.
async fn send(
    upstream: &Arc<Upstream>,
    req: &Infer,
    deadline: tokio::time::Instant,
    timeout_secs: f64,
) -> Result<Answer, Sent> {
    let lease = upstream.lease();
    let (channel, max) = lease.channel();
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout_at(deadline, infer::call(channel, req, left, max)).await {
        Err(_) => Err(Sent::Failed(Status::deadline_exceeded(format!(
            "timeout: Triton did not answer within {timeout_secs} s; expected a larger 'timeout'"
        )))),
        Ok(Err(status)) => {
            let s = triton_status(status, &upstream.url);
            if s.code() == Code::Unavailable {
                upstream.failed();
                Err(Sent::Lost(s))
            } else if s.code() != Code::DeadlineExceeded && !upstream.confirm_ready().await {
                Err(Sent::Lost(not_ready(&s, &upstream.url)))
            } else {
                Err(Sent::Failed(s))
            }
        }
        Ok(Ok(r)) => Ok(r),
    }
}

/// What the client sees of an error answered by a server that is not ready (shutting down,
/// starting, unloading its models): UNAVAILABLE. The server's own words ("unknown model ... has
/// no available versions" while it unloads) would mislead, so they go to the proxy's log only.
fn not_ready(s: &Status, url: &str) -> Status {
    tracing::debug!(upstream = %url, answer = %s.message(), "answer of a server that is not ready");
    Status::unavailable(format!(
        "Triton at {url} is not ready (shutting down or starting); retry later"
    ))
}

/// How one attempt at a request ended.
enum Sent {
    /// The upstream is unreachable or died under the request: another may take it.
    Lost(Status),
    /// Any other error (the request reached Triton, or the deadline passed).
    Failed(Status),
}

/// Maps a Triton error to what the client sees (always naming Triton).
pub fn triton_status(s: Status, url: &str) -> Status {
    // A connection that died under the request (Triton killed or restarting): for the client that
    // is Triton being unreachable.
    let lost = triton_endpoint::connection_lost(&s);
    match s.code() {
        Code::Unavailable => Status::unavailable(format!(
            "Triton at {} is unreachable ({}); retry later",
            url,
            s.message()
        )),
        _ if lost => Status::unavailable(format!(
            "Triton at {} is unreachable (the connection was lost: {}); retry later",
            url,
            s.message()
        )),
        // tonic reports its own client deadline as Cancelled "Timeout expired".
        Code::DeadlineExceeded | Code::Cancelled
            if s.code() == Code::DeadlineExceeded || s.message().contains("Timeout expired") =>
        {
            Status::deadline_exceeded(format!(
                "timeout: Triton did not answer in time ({})",
                s.message()
            ))
        }
        code => Status::new(code, format!("Triton: {}", s.message())),
    }
}

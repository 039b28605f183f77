//! The HTTP API of a `--cameras` run (`API_ADDR`, axum on a tokio runtime of its own), and the
//! metrics port (`METRICS_PORT`) on the same stack.
//!
//! - `GET /api/cameras`, `GET /api/cameras/{name}`: every camera's status (its entry, the URI
//!   redacted, `state`, `since`, frame counts, `last_error`).
//! - `POST /api/cameras` (201, `Location`; 409 when the name exists), `PUT /api/cameras/{name}`
//!   (replaces it: only that camera restarts), `PATCH /api/cameras/{name}` (`conf_thres`,
//!   `fps_cap`, `lines`, `zones`: applied to the running pipeline, no restart),
//!   `DELETE /api/cameras/{name}` (204
//!   once it has stopped and its files are finished).
//! - `GET /api/events`: Server-Sent Events of each camera's state changes.
//! - `/openapi.json`: the OpenAPI 3 document of all this.
//! - `/healthz` (alive), `/readyz` (every camera started or settled), `/metrics` (Prometheus).
//!
//! The cameras file stays the source of truth: a change is checked as the file's cameras are
//! (the fields, the encoder, the model on the server), written into the file (its comments and
//! the other cameras kept, written beside it and renamed), then the run reloads it as it would
//! after SIGHUP. Changes through the API are one at a time; a hand edit racing one ends with one
//! of the two files, never a mix.
//!
//! Auth: with `API_TOKEN` (or `API_TOKEN_FILE`) set, `/api/*`, `/metrics` and `/` need
//! `Authorization: Bearer TOKEN` or the cookie a browser gets from `/?token=TOKEN`; `/healthz`
//! and `/readyz` stay open for probes. Without a token the API listens on loopback only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::args::Args;
use super::events::Events;
use super::metrics::{Board, render};
use cameras::{counts, create, entries, list, one, patch, remove, replace};

mod cameras;
#[cfg(test)]
mod tests;

/// The cookie `/?token=` sets.
const COOKIE: &str = "triton_video_token";
/// How long `DELETE` waits for the camera to stop (its files finished) before answering 202.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// What the handlers share.
pub struct Api {
    pub file: PathBuf,
    pub board: Board,
    pub base: Args,
    pub token: Option<String>,
    pub events: Arc<Events>,
    /// One change of the cameras file at a time.
    edits: tokio::sync::Mutex<()>,
}

impl Api {
    pub fn new(
        file: PathBuf,
        board: Board,
        base: Args,
        token: Option<String>,
        events: Arc<Events>,
    ) -> Api {
        Api {
            file,
            board,
            base,
            token,
            events,
            edits: tokio::sync::Mutex::new(()),
        }
    }
}

type Shared = Arc<Api>;

/// The token of `API_TOKEN` or `API_TOKEN_FILE` (its first line); `Err` names the setting.
pub fn token(a: &Args) -> Result<Option<String>, String> {
    if let Some(t) = a.api_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_string()));
    }
    let Some(f) = a.api_token_file.as_deref().filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(f).map_err(|e| format!("API_TOKEN_FILE: cannot read {f}: {e}"))?;
    let t = text.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        return Err(format!(
            "API_TOKEN_FILE: {f} is empty; expected the token on its first line"
        ));
    }
    Ok(Some(t))
}

/// `API_ADDR` as an address to listen on; `None` for `off`. `Err` names the setting and the
/// expected value (a non-loopback address needs a token).
pub fn address(a: &Args, token: Option<&str>) -> Result<Option<SocketAddr>, String> {
    let raw = a.api_addr.trim();
    if raw.is_empty() || raw == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = raw.parse().map_err(|_| {
        format!("API_ADDR: '{raw}' is not an address; expected host:port (127.0.0.1:8080) or off")
    })?;
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "API_ADDR: {addr} is not a loopback address; set API_TOKEN or API_TOKEN_FILE to listen there"
        ));
    }
    Ok(Some(addr))
}

/// Equal, compared in constant time (`subtle`, as the proxy compares its keys).
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

fn presented(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 11.1); spaces after it are allowed.
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim_start().to_string())
        });
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_string())
    })
}

async fn authorize(State(api): State<Shared>, req: Request, next: Next) -> Response {
    let Some(want) = &api.token else {
        return next.run(req).await;
    };
    match presented(req.headers()) {
        Some(got) if same(got.as_bytes(), want.as_bytes()) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({"error": "authorization: expected the header 'Authorization: Bearer <API_TOKEN>'"})),
        )
            .into_response(),
    }
}

/// A refused request: its status and the message naming the field and the value expected.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(code, message.into())
}

/// `GET /api/events`: Server-Sent Events, one per state change (`event:` its kind, `id:` its
/// number, `data:` the event as JSON), from the moment of the request on; a comment every 15 s
/// keeps idle connections open through proxies.
async fn events(State(api): State<Shared>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio_stream::StreamExt;
    let stream =
        tokio_stream::wrappers::BroadcastStream::new(api.events.subscribe()).filter_map(|e| {
            let e = e.ok()?;
            let data = serde_json::to_string(&e).ok()?;
            Some(Ok::<_, std::convert::Infallible>(
                Event::default()
                    .id(e.id.to_string())
                    .event(e.kind)
                    .data(data),
            ))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The API's OpenAPI 3 document (`openapi.json` beside this file; a test checks it against the
/// routes and the types).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(api): State<Shared>) -> Response {
    let starting: Vec<String> = entries(&api)
        .into_iter()
        .filter(|(_, c)| c.spec.lock().unwrap().is_some())
        .filter(|(_, c)| !c.status.lock().unwrap().phase.settled())
        .map(|(n, _)| n)
        .collect();
    if starting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("starting: {}\n", starting.join(", ")),
        )
            .into_response()
    }
}

async fn metrics(State(api): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&api.board),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `/?token=…` once: the token becomes an HttpOnly, SameSite=Strict cookie and the browser is
/// sent to `/` without it in the address bar.
async fn index(
    State(api): State<Shared>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if let (Some(want), Some(got)) = (&api.token, &q.token) {
        if !same(got.as_bytes(), want.as_bytes()) {
            return error(StatusCode::UNAUTHORIZED, "token: not the API_TOKEN").into_response();
        }
        let cookie = format!("{COOKIE}={got}; HttpOnly; SameSite=Strict; Path=/");
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    if let Some(want) = &api.token
        && !presented(&headers).is_some_and(|g| same(g.as_bytes(), want.as_bytes()))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "authorization: open /?token=<API_TOKEN> once, or send 'Authorization: Bearer <API_TOKEN>'",
        )
        .into_response();
    }
    "triton-video: GET /api/cameras, /api/cameras/{name}, /metrics, /healthz, /readyz\n"
        .into_response()
}

/// The API's routes.
pub fn router(api: Shared) -> Router {
    let guarded = Router::new()
        .route("/api/cameras", get(list).post(create))
        .route(
            "/api/cameras/{name}",
            get(one).put(replace).patch(patch).delete(remove),
        )
        .route("/api/cameras/{name}/counts", get(counts))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new()
        .merge(guarded)
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .with_state(api)
}

/// The metrics port's routes: `/metrics` (also `/`) and `/healthz`, open as they always were.
pub fn metrics_router(api: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(api)
}

/// Listens on `addr` with `app` on `rt`: the bound address, or the bind error.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    app: Router,
) -> std::io::Result<SocketAddr> {
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let bound = listener.local_addr()?;
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

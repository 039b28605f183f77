//! The HTTP API of a `--cameras` run (`API_ADDR`, axum on a tokio runtime of its own), and the
//! metrics port (`METRICS_PORT`) on the same stack.
//!
//! - `GET /api/cameras`, `GET /api/cameras/{name}`: every camera's status (its entry, the URI
//!   redacted, `state`, `since`, frame counts, `last_error`).
//! - `POST /api/cameras` (201, `Location`; 409 when the name exists), `PUT /api/cameras/{name}`
//!   (replaces it: only that camera restarts), `PATCH /api/cameras/{name}` (`conf_thres`,
//!   `fps_cap`: applied to the running pipeline, no restart), `DELETE /api/cameras/{name}` (204
//!   once it has stopped and its files are finished).
//! - `GET /api/events`: Server-Sent Events of each camera's state changes.
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
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::args::Args;
use super::cameras::{self, Camera};
use super::events::Events;
use super::metrics::{Board, CameraState, render};
use super::{launch, preflight, signals};

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

/// Equal without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
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

/// A camera's status as the API shows it.
fn status(name: &str, c: &CameraState) -> Value {
    let spec = c.spec.lock().unwrap().clone();
    let st = c.status.lock().unwrap().clone();
    let s = c.stats.lock().unwrap();
    let mut camera = spec
        .map(|mut spec| {
            spec.uri = triton_endpoint::redact::redacted(&spec.uri);
            serde_json::to_value(spec).unwrap_or(Value::Null)
        })
        .unwrap_or_else(|| json!({"name": name}));
    let fields = json!({
        "state": st.phase,
        "since": gsttriton::jsonsink::rfc3339(st.since),
        "frames": s.frames,
        "ok": s.ok,
        "errors": s.errors,
        "no_signal": s.no_signal,
        "fps": (c.fps(Instant::now()) * 100.0).round() / 100.0,
        "outages": c.outages.load(std::sync::atomic::Ordering::SeqCst),
        "restarts": c.restarts.load(std::sync::atomic::Ordering::SeqCst),
        "last_error": st.last_error,
    });
    if let (Some(m), Value::Object(f)) = (camera.as_object_mut(), fields) {
        m.extend(f);
    }
    camera
}

fn entries(api: &Api) -> Vec<(String, Arc<CameraState>)> {
    api.board
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn list(State(api): State<Shared>) -> Response {
    let all: Vec<Value> = entries(&api).iter().map(|(n, c)| status(n, c)).collect();
    axum::Json(json!({ "cameras": all })).into_response()
}

async fn one(State(api): State<Shared>, Path(name): Path<String>) -> Response {
    let found = api.board.lock().unwrap().get(&name).cloned();
    match found {
        Some(c) => axum::Json(status(&name, &c)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no camera named {name:?}")).into_response(),
    }
}

/// The body as a camera: 400 for JSON that does not parse, 422 for a camera that is not valid
/// (the field named, with the value expected).
async fn camera_from(api: &Api, body: &[u8]) -> Result<Camera, Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("body: not JSON: {e}")))?;
    let cam: Camera = serde_json::from_value(value)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("body: {e}")))?;
    triton_endpoint::redact::remember(&cam.uri);
    cam.check()
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let a = cam.args(&api.base);
    launch::check_encoder(&a, &cam.uri)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("encoder: {e}")))?;
    // The model on the server, as the run checks it before it takes the file.
    let checked = tokio::task::spawn_blocking(move || preflight::preflight(&a))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    checked.map_err(|f| {
        let code = if f.code == 3 {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_GATEWAY
        };
        error(code, format!("model: {}", f.message))
    })?;
    Ok(cam)
}

fn read_file(api: &Api) -> Result<String, Refusal> {
    std::fs::read_to_string(&api.file).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("CAMERAS_FILE: {}: {e}", api.file.display()),
        )
    })
}

fn write_file(api: &Api, text: &str) -> Result<(), Refusal> {
    // The whole file must still be one the run takes.
    cameras::parse(text).map_err(|e| {
        error(
            StatusCode::CONFLICT,
            format!("CAMERAS_FILE: the change would make the file invalid: {e}"),
        )
    })?;
    cameras::write_atomically(&api.file, text).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("CAMERAS_FILE: {}: {e}", api.file.display()),
        )
    })?;
    signals::request_reload();
    Ok(())
}

fn exists(text: &str, name: &str) -> Result<bool, Refusal> {
    cameras::parse(text)
        .map(|c| c.contains_key(name))
        .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))
}

async fn create(State(api): State<Shared>, body: Bytes) -> Response {
    let cam = match camera_from(&api, &body).await {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let _one = api.edits.lock().await;
    let result = (|| {
        let text = read_file(&api)?;
        if exists(&text, &cam.name)? {
            return Err(error(
                StatusCode::CONFLICT,
                format!(
                    "name: a camera named {:?} exists (PUT replaces it)",
                    cam.name
                ),
            ));
        }
        let new = cameras::with_camera(&text, &cam)
            .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))?;
        write_file(&api, &new)
    })();
    match result {
        Ok(()) => {
            let location = format!("/api/cameras/{}", cam.name);
            let mut r = (StatusCode::CREATED, axum::Json(shown(&cam))).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(r) => r.into_response(),
    }
}

/// A camera's entry as the API shows it (its URI redacted).
fn shown(cam: &Camera) -> Value {
    let mut c = cam.clone();
    c.uri = triton_endpoint::redact::redacted(&c.uri);
    serde_json::to_value(c).unwrap_or(Value::Null)
}

async fn replace(State(api): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let cam = match camera_from(&api, &body).await {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if cam.name != name {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("name: expected {name:?} (the path's), got {:?}", cam.name),
        )
        .into_response();
    }
    let _one = api.edits.lock().await;
    let result = (|| {
        let text = read_file(&api)?;
        if !exists(&text, &name)? {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no camera named {name:?} (POST /api/cameras adds one)"),
            ));
        }
        let new = cameras::with_camera(&text, &cam)
            .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))?;
        write_file(&api, &new)
    })();
    match result {
        Ok(()) => axum::Json(shown(&cam)).into_response(),
        Err(r) => r.into_response(),
    }
}

/// A JSON number or null, for the field `k`.
fn number(k: &str, v: &Value) -> Result<Option<f64>, Refusal> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        _ => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{k}: expected a number or null, got {v}"),
        )),
    }
}

/// `PATCH`: what changes on the running pipeline without a restart (`conf_thres`, `fps_cap`
/// where the camera has one); any other field is refused naming it (PUT replaces the camera).
async fn patch(State(api): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("body: not JSON: {e}")).into_response();
        }
    };
    let Some(fields) = value.as_object() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body: expected a JSON object of conf_thres and/or fps_cap",
        )
        .into_response();
    };
    let _one = api.edits.lock().await;
    let result = (|| {
        let text = read_file(&api)?;
        let cams = cameras::parse(&text)
            .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))?;
        let Some(now) = cams.get(&name) else {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no camera named {name:?}"),
            ));
        };
        let mut new = now.clone();
        for (k, v) in fields {
            match k.as_str() {
                "conf_thres" => new.conf_thres = number(k, v)?,
                "fps_cap" => new.fps_cap = number(k, v)?,
                "name" | "uri" | "model" | "give_up_secs" | "timeout_ms" | "encoder" => {
                    return Err(error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "{k}: changes only with a restart; PUT /api/cameras/{name} replaces the camera"
                        ),
                    ));
                }
                other => {
                    return Err(error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("{other}: unknown field; PATCH takes conf_thres and fps_cap"),
                    ));
                }
            }
        }
        new.check()
            .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
        if !now.changes_live_to(&new) {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "fps_cap: the camera runs without a cap, or the patch removes it: that needs a restart; PUT replaces the camera",
            ));
        }
        let out = cameras::with_camera(&text, &new)
            .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))?;
        write_file(&api, &out)?;
        Ok(new)
    })();
    match result {
        Ok(cam) => axum::Json(shown(&cam)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn remove(State(api): State<Shared>, Path(name): Path<String>) -> Response {
    let _one = api.edits.lock().await;
    let result = (|| {
        let text = read_file(&api)?;
        match cameras::without_camera(&text, &name)
            .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))?
        {
            Some(new) => write_file(&api, &new),
            None => Err(error(
                StatusCode::NOT_FOUND,
                format!("no camera named {name:?}"),
            )),
        }
    })();
    if let Err(r) = result {
        return r.into_response();
    }
    // Answered once the run has stopped it (EOS, files finished, pipeline gone).
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if !api.board.lock().unwrap().contains_key(&name) {
            return StatusCode::NO_CONTENT.into_response();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    error(
        StatusCode::ACCEPTED,
        format!(
            "camera {name:?} left the file and is still stopping after {} s",
            STOP_WAIT.as_secs()
        ),
    )
    .into_response()
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
        render(&api.board, Instant::now()),
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
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new()
        .merge(guarded)
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn bearer_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; triton_video_token=t0k"),
        );
        assert_eq!(presented(&h).as_deref(), Some("t0k"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer b3"));
        assert_eq!(presented(&h).as_deref(), Some("b3"));
    }
}

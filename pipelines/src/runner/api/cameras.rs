//! The camera routes: `/api/cameras` and `/api/cameras/{name}` (list, status, add, replace,
//! patch, delete), each change checked as the cameras file's are and written into it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Api, Refusal, STOP_WAIT, Shared, error};
use crate::runner::cameras::{self, Camera};
use crate::runner::metrics::CameraState;
use crate::runner::{launch, preflight, signals};

/// A camera's status as the API shows it.
pub(super) fn status(name: &str, c: &CameraState) -> Value {
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

pub(super) fn entries(api: &Api) -> Vec<(String, Arc<CameraState>)> {
    api.board
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(super) async fn list(State(api): State<Shared>) -> Response {
    let all: Vec<Value> = entries(&api).iter().map(|(n, c)| status(n, c)).collect();
    axum::Json(json!({ "cameras": all })).into_response()
}

pub(super) async fn one(State(api): State<Shared>, Path(name): Path<String>) -> Response {
    let found = api.board.lock().unwrap().get(&name).cloned();
    match found {
        Some(c) => axum::Json(status(&name, &c)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no camera named {name:?}")).into_response(),
    }
}

/// `GET /api/cameras/{name}/counts`: the camera's counting rules' results on its last frame; 404
/// for an unknown camera or one without lines or zones.
pub(super) async fn counts(State(api): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(c) = api.board.lock().unwrap().get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no camera named {name:?}")).into_response();
    };
    let counting = c
        .spec
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|s| s.lines.is_some() || s.zones.is_some());
    if !counting {
        return error(
            StatusCode::NOT_FOUND,
            format!("camera {name:?} counts nothing: give it lines or zones"),
        )
        .into_response();
    }
    let last = c.counts.lock().unwrap().clone().unwrap_or_default();
    let mut v = crate::runner::report::counts_json(&last);
    v["camera"] = json!(name);
    axum::Json(v).into_response()
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

/// The file's text changed by a [`cameras`] edit, or 409 naming what is wrong with the file.
fn edited(r: Result<String, String>) -> Result<String, Refusal> {
    r.map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))
}

pub(super) async fn create(State(api): State<Shared>, body: Bytes) -> Result<Response, Refusal> {
    let cam = camera_from(&api, &body).await?;
    let _one = api.edits.lock().await;
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
    write_file(&api, &edited(cameras::with_camera(&text, &cam))?)?;
    let mut r = (StatusCode::CREATED, axum::Json(shown(&cam))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/cameras/{}", cam.name)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// A camera's entry as the API shows it (its URI redacted).
fn shown(cam: &Camera) -> Value {
    let mut c = cam.clone();
    c.uri = triton_endpoint::redact::redacted(&c.uri);
    serde_json::to_value(c).unwrap_or(Value::Null)
}

pub(super) async fn replace(
    State(api): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let cam = camera_from(&api, &body).await?;
    if cam.name != name {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("name: expected {name:?} (the path's), got {:?}", cam.name),
        ));
    }
    let _one = api.edits.lock().await;
    let text = read_file(&api)?;
    if !exists(&text, &name)? {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no camera named {name:?} (POST /api/cameras adds one)"),
        ));
    }
    write_file(&api, &edited(cameras::with_camera(&text, &cam))?)?;
    Ok(axum::Json(shown(&cam)).into_response())
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
/// where the camera has one, `lines`/`zones` where it counts); any other field is refused naming
/// it (PUT replaces the camera).
/// A text field of a PATCH body: a string, or null to remove it.
fn string(k: &str, v: &Value) -> Result<Option<String>, Refusal> {
    match v {
        Value::Null => Ok(None),
        Value::String(t) => Ok(Some(t.clone())),
        _ => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{k}: expected a string or null, got {v}"),
        )),
    }
}

pub(super) async fn patch(
    State(api): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("body: not JSON: {e}")))?;
    let Some(fields) = value.as_object() else {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body: expected a JSON object of conf_thres, fps_cap, lines and/or zones",
        ));
    };
    let _one = api.edits.lock().await;
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
            "lines" => new.lines = string(k, v)?,
            "zones" => new.zones = string(k, v)?,
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
                    format!(
                        "{other}: unknown field; PATCH takes conf_thres, fps_cap, lines and zones"
                    ),
                ));
            }
        }
    }
    new.check()
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    if !now.changes_live_to(&new) {
        let why = if now.fps_cap.is_some() != new.fps_cap.is_some() {
            "fps_cap: the camera runs without a cap, or the patch removes it"
        } else {
            "lines/zones: the camera counts nothing now, or the patch removes every line and zone (tracking and counting come or go)"
        };
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{why}: that needs a restart; PUT replaces the camera"),
        ));
    }
    write_file(&api, &edited(cameras::with_camera(&text, &new))?)?;
    Ok(axum::Json(shown(&new)).into_response())
}

pub(super) async fn remove(
    State(api): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    let _one = api.edits.lock().await;
    let text = read_file(&api)?;
    let Some(new) = cameras::without_camera(&text, &name)
        .map_err(|e| error(StatusCode::CONFLICT, format!("CAMERAS_FILE: {e}")))?
    else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no camera named {name:?}"),
        ));
    };
    write_file(&api, &new)?;
    // Answered once the run has stopped it (EOS, files finished, pipeline gone).
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if !api.board.lock().unwrap().contains_key(&name) {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(error(
        StatusCode::ACCEPTED,
        format!(
            "camera {name:?} left the file and is still stopping after {} s",
            STOP_WAIT.as_secs()
        ),
    ))
}

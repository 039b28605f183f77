use super::*;
use crate::runner::cameras::Camera;
use crate::runner::metrics::CameraState;
use serde_json::Value;

use clap::Parser;
use std::io::{Read, Write};

/// The status line's code of `method path` on a router served at `port` (headers only: an
/// event stream never ends).
fn status_of(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = if matches!(method, "POST" | "PUT" | "PATCH") {
        "{}"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    // A little of the body, when it came with the head.
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if let Ok(n) = s.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn the_openapi_document_names_every_route_and_method_and_no_other() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let dir = std::env::temp_dir().join(format!("api-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cameras.toml");
    std::fs::write(&file, "").unwrap();
    let api = Arc::new(Api::new(
        file,
        Board::default(),
        Args::parse_from(["triton-video"]),
        None,
        Arc::default(),
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = serve(&rt, "127.0.0.1:0".parse().unwrap(), router(api))
        .unwrap()
        .port();
    let methods = ["get", "post", "put", "patch", "delete"];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 9, "{:?}", paths.keys());
    for (path, ops) in paths {
        let concrete = path.replace("{name}", "nope");
        for m in methods {
            let (code, text) = status_of(port, &m.to_uppercase(), &concrete);
            if ops.get(m).is_some() {
                // Routed: answered by its handler (a handler's 404 has a JSON body; the
                // router's has none).
                assert_ne!(code, 405, "{m} {path}: {text}");
                assert!(
                    code != 404 || text.contains("\"error\""),
                    "{m} {path}: {text}"
                );
            } else {
                assert_eq!(code, 405, "{m} {path} is not in the document: {text}");
            }
        }
    }
    assert_eq!(
        status_of(port, "GET", "/api/nothing").0,
        404,
        "only the document's paths"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_openapi_schemas_match_the_types() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let schemas = &doc["components"]["schemas"];
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let full = Camera {
        name: "a".into(),
        uri: "rtsp://c/s".into(),
        model: Some("m".into()),
        conf_thres: Some(0.5),
        fps_cap: Some(5.0),
        give_up_secs: Some(1),
        timeout_ms: Some(1),
        encoder: Some(crate::runner::args::Encoder::None),
        lines: Some("door 0,1 2,3".into()),
        zones: Some("hall 0,0 4,0 4,4".into()),
    };
    assert_eq!(
        keys(&serde_json::to_value(&full).unwrap()),
        keys(&schemas["Camera"]["properties"])
    );
    let c = CameraState::default();
    let mut status = keys(&cameras::status("a", &c));
    status.retain(|k| k != "name");
    assert_eq!(
        status,
        keys(&schemas["CameraStatus"]["allOf"][1]["properties"])
    );
    use crate::runner::metrics::Phase;
    let states: Vec<Value> = [
        Phase::Starting,
        Phase::Streaming,
        Phase::NoSignal,
        Phase::Failed,
        Phase::GivenUp,
        Phase::Stopped,
    ]
    .iter()
    .map(|p| serde_json::to_value(p).unwrap())
    .collect();
    assert_eq!(Value::from(states), schemas["State"]["enum"]);
    let ev = Events::default();
    let mut rx = ev.subscribe();
    ev.state("a", Phase::Failed, Some("x".into()));
    let e = serde_json::to_value(rx.try_recv().unwrap()).unwrap();
    assert_eq!(keys(&e), keys(&schemas["Event"]["properties"]));
}

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
    // The scheme in any case, with extra spaces; another scheme leaves the cookie.
    for (v, want) in [
        ("bearer b4", Some("b4")),
        ("BEARER   b5", Some("b5")),
        ("Basic dXNlcjpwdw==", Some("t0k")),
        ("Bearer", Some("t0k")),
    ] {
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
        assert_eq!(presented(&h).as_deref(), want, "{v}");
    }
}

//! The HTTP API of `triton-video --cameras FILE` through a real HTTP client (raw HTTP/1.1 over
//! TCP), with loopback RTSP cameras, the proxy and the shared Triton: each route's codes and
//! bodies, a camera added and removed while another streams, bad bodies named by field, the
//! token (401, bearer, the cookie of `/?token=`), a client dripping bytes while others are served,
//! the file kept as the source of truth (comments kept, every change in it), SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gst_triton_tests::artifacts::bin;
use gst_triton_tests::camera::{Camera, lines, output_within, tmpdir};
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::triton::{free_port, shared_url};
use serde_json::Value;

const MODEL: &str = "shapes_nms";
const TOKEN: &str = "api-t0ken-for-tests";
const MODE: (u32, u32, u32) = (320, 180, 5);

struct Answer {
    code: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request on its own connection; `auth`: the bearer token, or none.
fn call(port: u16, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&str>) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the API port");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Answer {
        code,
        head: head.to_string(),
        body: body.to_string(),
    }
}

const BEARER: (&str, &str) = ("Authorization", "Bearer api-t0ken-for-tests");

fn get(port: u16, path: &str) -> Answer {
    call(port, "GET", path, &[BEARER], None)
}

fn camera_json(name: &str, cam: &Camera, extra: &str) -> String {
    format!(
        r#"{{"name": "{name}", "uri": "{}", "encoder": "none"{extra}}}"#,
        cam.url()
    )
}

/// Waits until the camera's `state` is `want`.
fn wait_state(port: u16, name: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = get(port, &format!("/api/cameras/{name}"));
        if a.code == 200 && a.json()["state"] == want {
            return a.json();
        }
        assert!(
            Instant::now() < deadline,
            "camera {name} not {want} within 60 s: {} {}",
            a.code,
            a.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn frames(port: u16, name: &str) -> u64 {
    get(port, &format!("/api/cameras/{name}")).json()["frames"]
        .as_u64()
        .unwrap()
}

fn wait_frames_above(port: u16, name: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames(port, name) <= n {
        assert!(
            Instant::now() < deadline,
            "camera {name}: no frame after {n} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cameras' names in the file, in order (`name = "..."` lines).
/// `triton-video --cameras FILE` with its API on `port` and the token; waits until it listens.
fn start_runner(
    proxy: &ProxyProcess,
    file: &Path,
    dir: &Path,
    port: u16,
    log: &Path,
) -> std::process::Child {
    let host = Command::new(bin("triton-video"))
        .arg("--cameras")
        .arg(file)
        .env("MM_ADDR", proxy.url())
        .env("DOMINO_API_KEY", "test-key")
        .env("MODEL_NAME", MODEL)
        .env("IMG_SIZE", "320")
        .env("RESULTS_DIR", dir)
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("API_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("triton-video");
    let log_text = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log_text().contains("API on http://") {
        assert!(
            Instant::now() < deadline,
            "no API within 60 s:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    host
}

fn sigterm(host: std::process::Child, log: &Path) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGTERM) };
    let out = output_within(host, 30, "triton-video --cameras after SIGTERM");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{text}");
    gst_triton_tests::stderr::assert_clean("triton-video --cameras", text.as_bytes());
}

/// Reads `GET /api/events` in a thread: every `data:` line's JSON, as it comes.
fn subscribe(port: u16) -> std::sync::Arc<std::sync::Mutex<Vec<Value>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let out = seen.clone();
    std::thread::spawn(move || {
        let mut pending = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                if let Some(data) = line.trim_end().strip_prefix("data: ") {
                    out.lock()
                        .unwrap()
                        .push(serde_json::from_str(data).unwrap());
                }
            }
        }
    });
    seen
}

fn file_names(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .collect()
}

#[test]
fn the_api_adds_replaces_and_removes_cameras_through_the_file_and_reports_their_status() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    // a shows a red box the model finds (confidence 0.9): PATCH's threshold shows in its lines.
    let a_cam = Camera::start_scene(free_port(), MODE, "box");
    let b_cam = Camera::start_with(free_port(), MODE);
    let dir = tmpdir("api");
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        format!(
            "# the door camera, kept by hand\n[[camera]]\nname = \"a\"\nuri = \"{}\"\nencoder = \"none\"\n",
            a_cam.url()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.join("stderr.txt");
    let host = start_runner(&proxy, &file, &dir, port, &log);

    // Probes are open; everything else needs the token.
    assert_eq!(call(port, "GET", "/healthz", &[], None).code, 200);
    let no = call(port, "GET", "/api/cameras", &[], None);
    assert_eq!(no.code, 401, "{}", no.body);
    assert!(no.body.contains("Authorization: Bearer"), "{}", no.body);
    let wrong = call(
        port,
        "GET",
        "/api/cameras",
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(wrong.code, 401);
    assert_eq!(call(port, "GET", "/metrics", &[], None).code, 401);

    let a = wait_state(port, "a", "streaming");
    assert_eq!(a["uri"], a_cam.url());
    assert_eq!(a["restarts"], 0);
    assert_eq!(get(port, "/readyz").code, 200);
    let list = get(port, "/api/cameras").json();
    assert_eq!(list["cameras"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(get(port, "/api/cameras/nope").code, 404);

    // Bad bodies, each named by its field; nothing reaches the file.
    for (body, code, names) in [
        ("{not json".to_string(), 400, "not JSON"),
        (r#"{"name": "c"}"#.to_string(), 422, "uri"),
        (
            camera_json("c", &b_cam, r#", "conf_thres": 1.5"#),
            422,
            "conf_thres",
        ),
        (
            camera_json("c", &b_cam, r#", "colour": "red""#),
            422,
            "colour",
        ),
        (camera_json("c d", &b_cam, ""), 422, "name"),
        (
            camera_json("c", &b_cam, "")
                .replace(r#""encoder": "none""#, r#""encoder": "no_such_enc""#),
            422,
            "encoder",
        ),
        (
            camera_json("c", &b_cam, r#", "model": "no_such_model""#),
            422,
            "model",
        ),
        (camera_json("a", &b_cam, ""), 409, "name"),
    ] {
        let r = call(port, "POST", "/api/cameras", &[BEARER], Some(&body));
        assert_eq!(r.code, code, "{body}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(names),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(file_names(&file), ["a"]);

    // The event stream, from here on: needs the token too.
    assert_eq!(call(port, "GET", "/api/events", &[], None).code, 401);
    let events = subscribe(port);

    // Add b: 201, Location, written into the file (the comment kept), then streaming.
    let r = call(
        port,
        "POST",
        "/api/cameras",
        &[BEARER],
        Some(&camera_json("b", &b_cam, "")),
    );
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("location: /api/cameras/b"),
        "{}",
        r.head
    );
    assert_eq!(file_names(&file), ["a", "b"]);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("# the door camera, kept by hand\n")
    );
    wait_state(port, "b", "streaming");
    wait_frames_above(port, "b", 3);

    // Replace b (another timeout, which needs a restart): only b restarts; a goes on as it was.
    let a_since = get(port, "/api/cameras/a").json()["since"].clone();
    let a_frames = frames(port, "a");
    let r = call(
        port,
        "PUT",
        "/api/cameras/b",
        &[BEARER],
        Some(&camera_json("b", &b_cam, r#", "timeout_ms": 1500"#)),
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b = get(port, "/api/cameras/b").json();
        if b["timeout_ms"] == 1500 && b["state"] == "streaming" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b not replaced and streaming: {b}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_frames_above(port, "a", a_frames + 5);
    let a = get(port, "/api/cameras/a").json();
    // Untouched: its state unchanged since (unless a loaded machine gave it an outage, which the
    // frame numbers below tell apart from a restart).
    assert!(
        a["since"] == a_since || a["outages"].as_u64() > Some(0),
        "a was not touched: {a}"
    );
    assert_eq!(a["state"], "streaming");
    let mismatch = call(
        port,
        "PUT",
        "/api/cameras/b",
        &[BEARER],
        Some(&camera_json("x", &b_cam, "")),
    );
    assert_eq!(mismatch.code, 422, "{}", mismatch.body);
    let absent = call(
        port,
        "PUT",
        "/api/cameras/x",
        &[BEARER],
        Some(&camera_json("x", &b_cam, "")),
    );
    assert_eq!(absent.code, 404, "{}", absent.body);

    // PATCH a's threshold above the box's confidence: applied to the running pipeline, no
    // restart (a's frame numbers never start again, its `since` is unchanged), the box is gone
    // from the next lines; and back.
    let a_json = dir.join("a/frame_counts.jsonl");
    let found = |from: usize| {
        lines(&a_json)
            .iter()
            .skip(from)
            .filter(|l| l["status"] == "ok")
            .map(|l| l["detections"].as_array().map_or(0, |d| d.len()))
            .collect::<Vec<_>>()
    };
    assert!(found(0).contains(&1), "the box is found: {:?}", found(0));
    let patch = |body: &str| call(port, "PATCH", "/api/cameras/a", &[BEARER], Some(body));
    let r = patch(r#"{"conf_thres": 0.95}"#);
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["conf_thres"], 0.95);
    let wait_found = |want: usize| {
        let from = lines(&a_json).len();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let f = found(from);
            if f.len() >= 5 && f[f.len() - 5..].iter().all(|n| *n == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not {want} detections after the PATCH: {f:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_found(0);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("conf_thres = 0.95")
    );
    assert_eq!(patch(r#"{"conf_thres": 0.5}"#).code, 200);
    wait_found(1);
    let a = get(port, "/api/cameras/a").json();
    assert!(
        a["since"] == a_since || a["outages"].as_u64() > Some(0),
        "a was not restarted: {a}"
    );
    assert_eq!(a["restarts"], 0);
    let numbers: Vec<u64> = lines(&a_json)
        .iter()
        .map(|l| l["frame"].as_u64().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a's frames are numbered on without a restart"
    );
    for (body, names) in [
        (
            r#"{"uri": "rtsp://x/y"}"#,
            "uri: changes only with a restart",
        ),
        (r#"{"fps_cap": 2}"#, "fps_cap"),
        (r#"{"conf_thres": "high"}"#, "conf_thres: expected a number"),
        (r#"{"conf_thres": 2}"#, "conf_thres: expected 0 to 1"),
        (r#"{"colour": 1}"#, "colour: unknown field"),
        ("[1]", "expected a JSON object"),
    ] {
        let r = patch(body);
        assert_eq!(r.code, 422, "{body}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(names),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(
        call(port, "PATCH", "/api/cameras/x", &[BEARER], Some("{}")).code,
        404
    );

    // The metrics, with the token.
    let m = get(port, "/metrics");
    assert_eq!(m.code, 200);
    assert!(
        m.body.contains("triton_video_camera_up{camera=\"b\"} 1"),
        "{}",
        m.body
    );

    // A browser: /?token= once, then the cookie.
    let r = call(port, "GET", &format!("/?token={TOKEN}"), &[], None);
    assert_eq!(r.code, 303, "{}", r.head);
    let cookie_line = r
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie")
        .to_string();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        call(port, "GET", "/api/cameras", &[("Cookie", &cookie)], None).code,
        200
    );
    assert_eq!(call(port, "GET", "/?token=wrong", &[], None).code, 401);

    // A client dripping its request does not hold the others: 20 requests are answered while it
    // is still sending.
    let mut drip = TcpStream::connect(("127.0.0.1", port)).unwrap();
    drip.write_all(b"GET /api/cam").unwrap();
    for i in 0..20 {
        drip.write_all(&[b"eras HTTP/1.1\r\n"[i % 15]]).unwrap();
        assert_eq!(get(port, "/api/cameras").code, 200);
    }
    drip.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(drip.read(&mut buf), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the dripping request is unfinished and unanswered"
    );
    drop(drip);

    // Remove b: 204 once its pipeline has stopped; its JSON lines are whole; gone from the file.
    let r = call(port, "DELETE", "/api/cameras/b", &[BEARER], None);
    assert_eq!(r.code, 204, "{}", r.body);
    assert_eq!(get(port, "/api/cameras/b").code, 404);
    assert_eq!(file_names(&file), ["a"]);
    let b_lines = std::fs::read_to_string(dir.join("b/frame_counts.jsonl")).unwrap();
    assert!(b_lines.ends_with('\n'), "b's last line is whole");
    assert_eq!(
        lines(&dir.join("b/frame_counts.jsonl")).len(),
        b_lines.lines().count()
    );
    assert_eq!(
        call(port, "DELETE", "/api/cameras/b", &[BEARER], None).code,
        404
    );

    // The events of all that: b started, streamed, restarted by the PUT, streamed, removed;
    // numbered 1, 2, 3, ... without a gap or a repeat (each event once).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "removed")
    {
        assert!(
            Instant::now() < deadline,
            "no removed event: {:?}",
            events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = events.lock().unwrap().clone();
    let ids: Vec<u64> = seen.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids {ids:?}");
    let b: Vec<String> = seen
        .iter()
        .filter(|e| e["camera"] == "b")
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    // Started, streaming, restarted by the PUT (starting again after streaming), removed last.
    // (A loaded machine may add a no-signal and its return in between: those are events too.)
    assert_eq!(b[..2], ["state starting", "state streaming"], "{seen:?}");
    let restarted = b
        .windows(2)
        .skip(1)
        .any(|w| w == ["state streaming", "state starting"]);
    assert!(restarted, "the PUT's restart: {seen:?}");
    assert_eq!(b.last().map(String::as_str), Some("removed "), "{seen:?}");
    assert!(
        b.iter().all(|e| [
            "state starting",
            "state streaming",
            "state no-signal",
            "removed "
        ]
        .contains(&e.as_str())),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| e["camera"] == "a" && e["state"] == "starting"),
        "a's PATCH restarted nothing: {seen:?}"
    );

    // 100 status requests at once while a streams: every one answered, no frame of a lost (its
    // lines stay ok and numbered on).
    let before = lines(&a_json).len();
    let answers: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..100)
            .map(|i| {
                sc.spawn(move || {
                    let path = if i % 2 == 0 {
                        "/api/cameras"
                    } else {
                        "/api/cameras/a"
                    };
                    get(port, path).code
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|c| *c == 200), "{answers:?}");
    wait_frames_above(port, "a", frames(port, "a") + 5);
    let all = lines(&a_json);
    assert!(all.len() > before);
    assert!(
        all.iter().all(|l| l["status"] == "ok"),
        "every frame of a ok"
    );
    let numbers: Vec<u64> = all.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "no frame of a lost"
    );

    // SIGTERM: exit 0; the file as the API left it, the hand-written comment kept.
    sigterm(host, &log);
    assert_eq!(file_names(&file), ["a"]);

    // Started again on the same file: what the API changed is still there (a with its patched
    // threshold, no b).
    let host = start_runner(&proxy, &file, &dir, port, &log);
    let a = wait_state(port, "a", "streaming");
    assert_eq!(a["conf_thres"], 0.5, "{a}");
    assert_eq!(get(port, "/api/cameras/b").code, 404);
    sigterm(host, &log);
}

#[test]
fn an_api_on_a_non_loopback_address_needs_a_token() {
    let dir = tmpdir("api-open");
    let file = dir.join("cameras.toml");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(bin("triton-video"))
        .arg("--cameras")
        .arg(&file)
        .env("API_ADDR", "0.0.0.0:1")
        .env_remove("API_TOKEN")
        .env_remove("API_TOKEN_FILE")
        .env("RESULTS_DIR", &dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("API_ADDR: 0.0.0.0:1 is not a loopback address; set API_TOKEN"),
        "{err}"
    );
}

/// `GET /api/cameras/{name}/counts`: a camera added through the API with a zone over its whole
/// picture (its red box inside) and a line it never crosses reports the box in the zone and no
/// crossing, from its latest frame; the zone and line are written into the file; a camera
/// without lines or zones, and an unknown one, are 404 naming why; bad zones or lines are 422
/// naming the field; a PATCH of its zones and lines applies without a restart.
#[test]
fn a_cameras_counts_show_its_zones_and_lines_from_its_latest_frame() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let boxed = Camera::start_scene(free_port(), MODE, "box");
    let plain = Camera::start_with(free_port(), MODE);
    let dir = tmpdir("api-counts");
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        format!(
            "[[camera]]\nname = \"plain\"\nuri = \"{}\"\nencoder = \"none\"\n",
            plain.url()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.join("stderr.txt");
    let host = start_runner(&proxy, &file, &dir, port, &log);
    wait_state(port, "plain", "streaming");

    let (w, h) = (MODE.0, MODE.1);
    for (extra, field) in [
        (r#", "zones": "hall 0,0 10,0""#.to_string(), "zones"),
        (r#", "lines": "door 5,5""#.to_string(), "lines"),
    ] {
        let r = call(
            port,
            "POST",
            "/api/cameras",
            &[BEARER],
            Some(&camera_json("z", &boxed, &extra)),
        );
        assert_eq!(r.code, 422, "{extra}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(field),
            "{extra}: {}",
            r.body
        );
    }
    let extra = format!(r#", "zones": "hall 0,0 {w},0 {w},{h} 0,{h}", "lines": "edge 1,0 1,{h}""#);
    let r = call(
        port,
        "POST",
        "/api/cameras",
        &[BEARER],
        Some(&camera_json("z", &boxed, &extra)),
    );
    assert_eq!(r.code, 201, "{}", r.body);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("zones = \"hall 0,0 {w},0 {w},{h} 0,{h}\""))
            && text.contains("lines = \"edge"),
        "{text}"
    );
    wait_state(port, "z", "streaming");
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let c = get(port, "/api/cameras/z/counts");
        assert_eq!(c.code, 200, "{}", c.body);
        let v = c.json();
        if v["zones"]["hall"] == 1 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the box never counted in the zone: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(counts["camera"], "z", "{counts}");
    assert!(counts["frame"].as_u64().is_some(), "{counts}");
    assert!(
        counts["lines"]
            .get("edge")
            .is_none_or(|e| e.as_object().is_some_and(|m| m
                .values()
                .all(|d| d.as_object().is_some_and(|l| l.is_empty())))),
        "nothing crossed the edge line: {counts}"
    );
    // Later frames, later counts.
    let first = counts["frame"].as_u64().unwrap();
    wait_frames_above(port, "z", first + 5);
    let later = get(port, "/api/cameras/z/counts").json();
    assert!(later["frame"].as_u64().unwrap() > first, "{later}");

    // PATCH of its zones and lines, applied to the running detcount: the hall keeps counting the
    // box, a new corner zone (without it) appears, the edge line is gone; no restart (z's frames
    // are numbered on). A PATCH that would add or remove counting altogether, or bad rules, are
    // refused naming the field.
    let patch = |name: &str, body: &str| {
        call(
            port,
            "PATCH",
            &format!("/api/cameras/{name}"),
            &[BEARER],
            Some(body),
        )
    };
    let zones = format!("hall 0,0 {w},0 {w},{h} 0,{h}; corner 0,0 3,0 3,3");
    let r = patch("z", &format!(r#"{{"zones": "{zones}", "lines": null}}"#));
    assert_eq!(r.code, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    let patched = loop {
        let v = get(port, "/api/cameras/z/counts").json();
        if v["zones"].get("corner").is_some() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the corner zone never counted: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(patched["zones"]["hall"], 1, "{patched}");
    assert_eq!(patched["zones"]["corner"], 0, "{patched}");
    assert!(
        patched["lines"].get("edge").is_none(),
        "the edge line left: {patched}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("corner 0,0 3,0 3,3") && !text.contains("edge"),
        "{text}"
    );
    for (name, body, field) in [
        ("z", r#"{"zones": null}"#, "lines/zones"),
        ("plain", r#"{"lines": "door 0,5 9,5"}"#, "lines/zones"),
        ("z", r#"{"zones": "hall 0,0 10,0"}"#, "zones"),
        ("z", r#"{"lines": 7}"#, "lines: expected a string"),
    ] {
        let r = patch(name, body);
        assert_eq!(r.code, 422, "{name} {body}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(field),
            "{name} {body}: {}",
            r.body
        );
    }
    let z = get(port, "/api/cameras/z").json();
    assert_eq!(z["restarts"], 0, "{z}");
    let numbers: Vec<u64> = lines(&dir.join("z/frame_counts.jsonl"))
        .iter()
        .map(|l| l["frame"].as_u64().unwrap())
        .collect();
    assert!(
        numbers.len() > 5 && numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "z's frames are numbered on without a restart: {numbers:?}"
    );

    // A body of 3 MB (a hostile or broken client) is refused with 413 without being read whole,
    // and the API goes on answering.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /api/cameras HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}: {}\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n",
        BEARER.0, BEARER.1
    );
    big.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..46 {
        // The server may answer and close before the body is all sent.
        if big.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(
        get(port, "/api/cameras/z").code,
        200,
        "the API after a huge body"
    );
    assert_eq!(file_names(&file), ["plain", "z"]);

    let none = get(port, "/api/cameras/plain/counts");
    assert_eq!(none.code, 404, "{}", none.body);
    assert!(none.body.contains("lines or zones"), "{}", none.body);
    assert_eq!(get(port, "/api/cameras/nope/counts").code, 404);
    assert_eq!(
        call(port, "GET", "/api/cameras/z/counts", &[], None).code,
        401,
        "the counts need the token"
    );
    sigterm(host, &log);
    let _ = std::fs::remove_dir_all(&dir);
}

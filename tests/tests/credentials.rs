//! Camera credentials never reach an output: a URI's user-info and credential query values
//! (`rtsp://viewer:SECRET@cam/s?password=SECRET`) are absent from every byte of stdout, stderr,
//! JSON lines, bus messages (`gst-launch-1.0 -m` prints them all) and metrics, on every path that
//! shows a URI:
//!
//! - a camera that streams, is lost and given up (`triton-video`, exit 5), with `GST_DEBUG` on
//!   for the pipeline parser (which logs the launch description) and the camera element;
//! - a camera that never answers (0 frames, exit 5);
//! - an HTTP URI the server answers 404 (nothing decoded, exit 4: GStreamer's error names the URL);
//! - a cameras file whose TOML error quotes the line with the URI (exit 2), and a running cameras
//!   file with its Prometheus metrics;
//! - a malformed server address with a user-info (exit 2);
//! - `tritoncamerasrc` in a C host, every bus message printed.
//!
//! Each run also checks that the path printed the URI at all (redacted): a test that saw no URI
//! would prove nothing.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gst_triton_tests::artifacts::{bin, plugin_dir};
use gst_triton_tests::camera::{Camera, http_get, output_within, tmpdir, wait_ok_after};
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::triton::{free_port, shared_url};

const MODEL: &str = "shapes_nms";
/// In the user-info.
const PASSWORD: &str = "Pa55-w0rd-Zq";
/// In the query string.
const TOKEN: &str = "T0ken-Qx-77";

fn secret_uri(scheme: &str, port: u16, path: &str) -> String {
    format!("{scheme}://viewer:{PASSWORD}@127.0.0.1:{port}/{path}?password={TOKEN}&channel=1")
}

/// Fails naming where a secret was found.
fn assert_no_secret(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in [PASSWORD, TOKEN, "viewer:"] {
        if let Some(at) = text.find(secret) {
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what}: holds {secret:?}: {}", &text[from..to]);
        }
    }
}

fn runner(proxy: &ProxyProcess, dir: &Path) -> Command {
    let mut c = Command::new(bin("triton-video"));
    c.env("MM_ADDR", proxy.url())
        .env("DOMINO_API_KEY", "test-key")
        .env("MODEL_NAME", MODEL)
        .env("IMG_SIZE", "320")
        .env("ENCODER", "none")
        .env("API_ADDR", "off")
        .env("RESULTS_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn check_output(what: &str, out: &Output, shown: &str) {
    check_streams(what, &out.stdout, &out.stderr, shown);
}

/// Runs `cmd` to its end (60 s at most), expects exit `code`, and checks its output.
fn expect_run(what: &str, cmd: &mut Command, code: i32, shown: &str) {
    let out = output_within(cmd.spawn().unwrap(), 60, what);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    check_output(what, &out, shown);
}

fn check_streams(what: &str, stdout: &[u8], stderr: &[u8], shown: &str) {
    gst_triton_tests::stderr::assert_clean(what, stderr);
    assert_no_secret(&format!("{what} stdout"), stdout);
    assert_no_secret(&format!("{what} stderr"), stderr);
    let err = String::from_utf8_lossy(stderr);
    assert!(
        err.contains(shown),
        "{what}: {shown:?} not in stderr:\n{err}"
    );
}

/// An HTTP server on a free port answering every request with 404, for `n` requests.
fn not_found_server(n: usize) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(n) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

#[test]
fn credentials_in_uris_never_reach_stdout_stderr_json_lines_bus_messages_or_metrics() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);

    // 1. A camera that streams, is lost for good and given up; the parser's and the camera
    // element's debug logs on.
    let mut cam = Camera::start_with(free_port(), (320, 180, 10));
    let dir = tmpdir("credentials-live");
    let json = dir.join("frame_counts.jsonl");
    // The debug log goes to a file: a pipe nobody reads while the run goes on would fill up and
    // stop it.
    let log = dir.join("stderr.txt");
    let mut host = runner(&proxy, &dir)
        .env("VIDEO_PATH", secret_uri("rtsp", cam.port, "cam"))
        .env("CAMERA_GIVE_UP_SECS", "3")
        .env(
            "GST_DEBUG",
            "GST_PIPELINE:6,tritoncamerasrc:6,tritoninfer:6",
        )
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("triton-video");
    wait_ok_after(&mut host, &json, 0, 10, "credentials: camera start");
    cam.kill();
    let out = output_within(host, 60, "triton-video after its camera went");
    let stderr = std::fs::read(&log).unwrap();
    let err = String::from_utf8_lossy(&stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    check_streams(
        "a lost camera",
        &out.stdout,
        &stderr,
        "rtsp://***@127.0.0.1",
    );
    assert!(
        err.contains("parsing pipeline description"),
        "the parser's log is on: {err}"
    );
    let lines = std::fs::read(&json).unwrap();
    assert_no_secret("the JSON lines", &lines);
    assert!(
        String::from_utf8_lossy(&lines).contains("no-signal"),
        "the outage's frames are in the JSON lines"
    );

    // 2. A camera that never answers: nothing decoded, given up.
    let dir = tmpdir("credentials-never");
    expect_run(
        "an absent camera",
        runner(&proxy, &dir)
            .env("VIDEO_PATH", secret_uri("rtsp", free_port(), "cam"))
            .env("CAMERA_GIVE_UP_SECS", "2"),
        5,
        "rtsp://***@127.0.0.1",
    );

    // 3. An HTTP URI answered with 404: GStreamer's error names the URL.
    let dir = tmpdir("credentials-http");
    let port = not_found_server(8);
    expect_run(
        "an HTTP 404",
        runner(&proxy, &dir).env("VIDEO_PATH", secret_uri("http", port, "clip.mp4")),
        4,
        "http://***@127.0.0.1",
    );

    // 4. A cameras file with a TOML error on the line of the URI.
    let dir = tmpdir("credentials-file");
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        format!(
            "[[camera]]\nname = \"door\"\nuri = \"{}\" oops\n",
            secret_uri("rtsp", 1, "cam")
        ),
    )
    .unwrap();
    expect_run(
        "a broken cameras file",
        runner(&proxy, &dir).arg("--cameras").arg(&file),
        2,
        "line 3",
    );

    // 5. A running cameras file: its log and its metrics.
    let cam = Camera::start_with(free_port(), (320, 180, 10));
    std::fs::write(
        &file,
        format!(
            "[[camera]]\nname = \"door\"\nuri = \"{}\"\n",
            secret_uri("rtsp", cam.port, "cam")
        ),
    )
    .unwrap();
    let metrics_port = free_port();
    let mut host = runner(&proxy, &dir)
        .arg("--cameras")
        .arg(&file)
        .env("METRICS_PORT", metrics_port.to_string())
        .spawn()
        .unwrap();
    wait_ok_after(
        &mut host,
        &dir.join("door/frame_counts.jsonl"),
        0,
        5,
        "cameras file",
    );
    let metrics = http_get(metrics_port, "/metrics");
    assert!(metrics.contains("camera=\"door\""), "{metrics}");
    assert_no_secret("the metrics", metrics.as_bytes());
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGTERM) };
    let out = output_within(host, 30, "triton-video --cameras after SIGTERM");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_output("a cameras file", &out, "rtsp://***@127.0.0.1");
    assert_no_secret(
        "its JSON lines",
        &std::fs::read(dir.join("door/frame_counts.jsonl")).unwrap(),
    );

    // 6. A malformed server address with a user-info.
    expect_run(
        "a malformed MM_ADDR",
        runner(&proxy, &dir)
            .env("VIDEO_PATH", secret_uri("rtsp", 1, "cam"))
            .env("MM_ADDR", format!("op:{PASSWORD}@bad host:1")),
        2,
        "MM_ADDR: '***@bad host:1'",
    );

    // 7. The element in a C host, every bus message printed (-m), the camera absent.
    let out = output_within(
        Command::new("gst-launch-1.0")
            .arg("-m")
            .arg("tritoncamerasrc")
            .arg(format!("uri={}", secret_uri("rtsp", free_port(), "cam")))
            .args(["give-up-secs=2", "!", "fakesink"])
            .env("GST_PLUGIN_PATH", plugin_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        60,
        "gst-launch-1.0 tritoncamerasrc",
    );
    let all = [out.stdout.clone(), out.stderr.clone()].concat();
    assert_no_secret("gst-launch-1.0's bus messages", &all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("rtsp://***@127.0.0.1"), "{text}");
}

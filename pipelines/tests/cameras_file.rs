//! `triton-video --cameras FILE`: what the file may not get past (an encoder that cannot work, a
//! model the server does not have), at start and in an edit, and a SIGHUP while the server is
//! still being checked.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{make_clip, tmpdir};
use gst_triton_tests::triton::shared_url;

const RUNNER: &str = env!("CARGO_BIN_EXE_triton-video");

/// The runner on a cameras file, straight to `server` (host:port), its stderr read line by line.
fn fleet(file: &Path, results: &Path, server: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(RUNNER)
        .args(["--direct", "--triton-url", server, "--cameras"])
        .arg(file)
        .env("RESULTS_DIR", results)
        .env("API_ADDR", "off")
        .env("MODEL_NAME", "shapes_nms")
        .env_remove("ENCODER")
        .env_remove("VIDEO_PATH")
        .env("GST_PLUGIN_PATH", gst_triton_tests::artifacts::plugin_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("triton-video");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a stderr line containing `needle`; the lines read so far on failure.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(l.clone());
            if l.contains(needle) {
                return l;
            }
        }
    }
    panic!(
        "no line with {needle:?} within 60 s; stderr:\n{}",
        seen.join("\n")
    );
}

fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn server() -> String {
    shared_url().trim_start_matches("http://").to_string()
}

#[test]
fn an_encoder_that_cannot_work_is_refused_at_start_naming_the_camera() {
    let dir = tmpdir("cams-encoder");
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        "[[camera]]\nname = \"door\"\nuri = \"rtsp://127.0.0.1:1/x\"\n\n\
         [[camera]]\nname = \"yard\"\nuri = \"rtsp://127.0.0.1:1/y\"\nencoder = \"no_such_enc\"\n",
    )
    .unwrap();
    // No server is asked: the file is refused first (127.0.0.1:1 would fail the preflight).
    let (mut child, rx) = fleet(&file, &dir.join("out"), "127.0.0.1:1");
    let st = exit_within(&mut child, Duration::from_secs(30));
    let err: Vec<String> = rx.try_iter().collect();
    assert_eq!(st.code(), Some(2), "{err:?}");
    let line = err.join("\n");
    assert!(
        line.contains("camera \"yard\": encoder: no GStreamer element named 'no_such_enc'"),
        "{line}"
    );
    assert!(line.contains("expected auto, none, x264"), "{line}");
}

#[test]
fn an_edit_with_a_bad_encoder_or_an_unknown_model_keeps_the_running_cameras() {
    let dir = tmpdir("cams-edit");
    let clip = make_clip(&dir, 10, 160, 120).0;
    let file = dir.join("cameras.toml");
    let good = format!(
        "[[camera]]\nname = \"a\"\nuri = \"{}\"\nencoder = \"none\"\n",
        clip.display()
    );
    std::fs::write(&file, &good).unwrap();
    let (mut child, rx) = fleet(&file, &dir.join("out"), &server());
    let mut seen = vec![];
    wait_line(&rx, "1 cameras from", &mut seen);
    // Written whole and renamed into place, as the docs ask.
    let edit = |text: String| {
        let tmp = dir.join("cameras.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    edit(format!(
        "{good}\n[[camera]]\nname = \"b\"\nuri = \"{}\"\nencoder = \"no_such_enc\"\n",
        clip.display()
    ));
    let l = wait_line(&rx, "the running cameras are kept", &mut seen);
    assert!(
        l.contains("camera \"b\": encoder: no GStreamer element named 'no_such_enc'"),
        "{l}"
    );
    edit(format!(
        "{good}\n[[camera]]\nname = \"c\"\nuri = \"{}\"\nmodel = \"no_such_model\"\n",
        clip.display()
    ));
    let l = wait_line(&rx, "the running cameras are kept", &mut seen);
    assert!(
        l.contains("camera \"c\": model:") && l.contains("no_such_model"),
        "{l}"
    );
    assert!(
        !dir.join("out/b").exists() && !dir.join("out/c").exists(),
        "a refused edit started nothing"
    );
    // A good edit after them is taken.
    edit(format!(
        "{good}\n[[camera]]\nname = \"d\"\nuri = \"{}\"\nencoder = \"none\"\n",
        clip.display()
    ));
    wait_line(&rx, "changed: 2 cameras", &mut seen);
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = exit_within(&mut child, Duration::from_secs(60));
    assert_eq!(st.code(), Some(0), "{}", seen.join("\n"));
}

#[test]
fn a_sighup_while_the_server_is_checked_is_no_end() {
    // A server that accepts the connection and never answers: the check waits for it.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap().to_string();
    let dir = tmpdir("cams-hup");
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        "[[camera]]\nname = \"door\"\nuri = \"rtsp://127.0.0.1:1/x\"\n",
    )
    .unwrap();
    let (mut child, rx) = fleet(&file, &dir.join("out"), &addr);
    let mut seen = vec![];
    wait_line(&rx, "checking the server", &mut seen);
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let st = exit_within(&mut child, Duration::from_secs(60));
    seen.extend(rx.try_iter());
    assert_eq!(
        st.signal(),
        None,
        "SIGHUP ended the runner: {}",
        seen.join("\n")
    );
    // It ends as a server that never answers ends it, with the preflight's exit code.
    assert_eq!(st.code(), Some(3), "{}", seen.join("\n"));
    drop(hole);
}

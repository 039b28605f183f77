//! Loopback RTSP cameras for the camera tests (`rtsp_camera`, a process of its own, killed and
//! started again), and what those tests read back: JSON lines, statuses, a host's exit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::artifacts::bin;
use crate::triton::spawn_tied;

/// A loopback RTSP camera on `port` until it is killed.
pub struct Camera {
    pub port: u16,
    /// Width, height, frames per second.
    pub mode: (u32, u32, u32),
    /// `ball` (nothing the test models detect) or `box` (a red box they detect).
    pub scene: &'static str,
    child: Option<Child>,
}

impl Camera {
    pub fn start(port: u16) -> Camera {
        Camera::start_with(port, (640, 360, 15))
    }

    pub fn start_with(port: u16, mode: (u32, u32, u32)) -> Camera {
        Camera::start_scene(port, mode, "ball")
    }

    /// A camera showing `scene` (see `rtsp_camera`).
    pub fn start_scene(port: u16, mode: (u32, u32, u32), scene: &'static str) -> Camera {
        let mut c = Camera {
            port,
            mode,
            scene,
            child: None,
        };
        c.up();
        c
    }

    pub fn up(&mut self) {
        let mut cmd = Command::new(bin("rtsp_camera"));
        let (w, h, fps) = self.mode;
        cmd.args([u32::from(self.port), w, h, fps].map(|v| v.to_string()))
            .arg(self.scene)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_tied(cmd).expect("rtsp_camera");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "rtsp_camera on port {}", self.port);
        self.child = Some(child);
    }

    /// SIGKILL, like a camera losing power.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `limit` for the camera process to exit by itself (after a SIGTERM: a
    /// graceful stop); its exit code, `None` when it did not exit (it is killed then).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The camera process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn statuses(p: &Path) -> Vec<String> {
    lines(p)
        .iter()
        .map(|l| l["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until `json` has `n` "ok" lines after line `from` while `host` runs; when they began.
pub fn wait_ok_after(host: &mut Child, json: &Path, from: usize, n: usize, what: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut first_ok: Option<Instant> = None;
    loop {
        let s = statuses(json);
        let oks = s.iter().skip(from).filter(|s| *s == "ok").count();
        if oks > 0 && first_ok.is_none() {
            first_ok = Some(Instant::now());
        }
        if oks >= n {
            return first_ok.unwrap();
        }
        if let Ok(Some(st)) = host.try_wait() {
            panic!("{what}: the host ended ({st}) after {} lines", s.len());
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no {n} ok lines after line {from} within 90 s: {:?}",
            &s[from.min(s.len())..]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `secs` for `host` to exit by itself (killed and failed otherwise); its output.
pub fn output_within(mut host: Child, secs: u64, what: &str) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while host.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = host.kill();
            panic!("{what}: still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    host.wait_with_output().unwrap()
}

/// `GET path` on a runner's HTTP port (its metrics or API), the whole response as text. With
/// `Connection: close`: the server (hyper) keeps a connection open otherwise.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the runner's HTTP port");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cameras-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Pictures that decode from a recording (`.ts` or `.mp4`), to its end; panics when it does not play.
pub fn decoded_frames(file: &Path) -> usize {
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! video/x-raw ! fakesink name=sink sync=false signal-handoffs=true",
        file.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    p.by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            None
        });
    if let Err(e) = p.set_state(gst::State::Playing) {
        let why = p
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            .map(|m| format!("{m:?}"));
        panic!(
            "{} ({:?} bytes) does not play: {e:?} {why:?}",
            file.display(),
            std::fs::metadata(file).map(|m| m.len())
        );
    }
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the recording decodes to its end within 60 s");
    p.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "{}: {msg:?}",
        file.display()
    );
    n.load(std::sync::atomic::Ordering::SeqCst)
}

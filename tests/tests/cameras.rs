//! Cameras come and go: a loopback RTSP camera (a process of its own, `rtsp_camera`) is killed
//! with SIGKILL and started again while `tritoncamerasrc` reads it, under `gst-launch-1.0` running
//! `pipelines/rtsp-camera-to-file.pipeline` and under `triton-video`.
//!
//! What it proves: the pipeline and the runner stay alive through two 4-s outages; every frame
//! has its JSON line, in order; the frames made while the camera was away say
//! `"status": "no-signal"` and carry no detections (no request was made for them); frames are
//! `ok` again after each return (how long that took is printed); the recording decodes end to end
//! with one picture per JSON line; the element's `triton-camera` messages say `lost` and `back`
//! twice; a camera that never returns ends `triton-video` with exit code 5, its files finished
//! (a camera's recording is MPEG-TS: `annotated.ts`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_triton_tests::artifacts::{bin, plugin_dir};
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::stderr;
use gst_triton_tests::triton::{free_port, repo_root, shared_url, spawn_tied};

const MODEL: &str = "shapes_nms";
/// How long each camera outage lasts (the fault itself, not a wait for a condition).
const OUTAGE: Duration = Duration::from_secs(4);

/// A loopback RTSP camera on `port` until it is killed.
struct Camera {
    port: u16,
    child: Option<Child>,
}

impl Camera {
    fn start(port: u16) -> Camera {
        let mut c = Camera { port, child: None };
        c.up();
        c
    }

    fn up(&mut self) {
        let mut cmd = Command::new(bin("rtsp_camera"));
        cmd.arg(self.port.to_string())
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
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn statuses(p: &Path) -> Vec<String> {
    lines(p)
        .iter()
        .map(|l| l["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until `json` has `n` "ok" lines after line `from` while `host` runs; when they began.
fn wait_ok_after(host: &mut Child, json: &Path, from: usize, n: usize, what: &str) -> Instant {
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

/// Two outages: camera killed, away for OUTAGE, started again; frames ok again after each.
/// Returns, per outage, the seconds from the camera's return to its first ok frame.
fn two_outages(cam: &mut Camera, host: &mut Child, json: &Path) -> Vec<f64> {
    let mut resumed = Vec::new();
    for k in 0..2 {
        let at = statuses(json).len();
        cam.kill();
        std::thread::sleep(OUTAGE);
        cam.up();
        let back = Instant::now();
        let first_ok = wait_ok_after(host, json, at + 1, 10, &format!("outage {k}"));
        resumed.push(first_ok.saturating_duration_since(back).as_secs_f64());
    }
    resumed
}

/// Pictures that decode from a recording (`.ts` or `.mp4`), to its end.
fn decoded_frames(file: &Path) -> usize {
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! fakesink name=sink sync=false signal-handoffs=true",
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

/// The JSON lines after a run with outages: one per frame in order, only ok and no-signal, the
/// no-signal ones without detections, at least `outages` separate no-signal runs after the first
/// ok, and ok at the end. The number of no-signal lines.
fn check_lines(lines: &[serde_json::Value], outages: usize) -> usize {
    assert!(!lines.is_empty());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["frame"], i as u64, "one line per frame, in order");
        let st = l["status"].as_str().unwrap();
        assert!(st == "ok" || st == "no-signal", "line {i}: {l}");
        if st == "no-signal" {
            assert_eq!(l["detections"], serde_json::json!([]), "line {i}: {l}");
        }
    }
    let st: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    let first_ok = st.iter().position(|s| *s == "ok").unwrap();
    let runs = st[first_ok..]
        .windows(2)
        .filter(|w| w[0] == "ok" && w[1] == "no-signal")
        .count();
    assert!(
        runs >= outages,
        "{runs} no-signal runs for {outages} outages: {st:?}"
    );
    assert_eq!(*st.last().unwrap(), "ok", "{st:?}");
    st.iter().filter(|s| **s == "no-signal").count()
}

/// Waits up to `secs` for `host` to exit by itself (killed and failed otherwise); its output.
fn output_within(mut host: Child, secs: u64, what: &str) -> std::process::Output {
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

/// The one critical a camera run may print, and only on GStreamer 1.22: `fallbacksrc`
/// (gst-plugins-rs 0.15) answers the EOS its source sends when it restarts a lost camera with
/// `PadProbeReturn::Drop` from a probe on the source's pads, and GStreamer 1.22 answers a Drop from
/// a Rust probe with an unref of the NULL the binding left there (the stack: a downstream event
/// pushed on a multiqueue thread of the camera's decodebin3, meeting a probe). Nothing leaks or
/// stops; it is code we link, not ours, and not fixed here (see docs/pipelines.md).
const FALLBACKSRC_ON_1_22: &str = "gst_mini_object_unref: assertion 'mini_object != NULL' failed";

/// [`stderr::assert_clean`], except for [`FALLBACKSRC_ON_1_22`], which is counted and said.
fn assert_clean_but_fallbacksrc(what: &str, err: &[u8]) {
    let text = String::from_utf8_lossy(err);
    let (known, rest): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.contains(FALLBACKSRC_ON_1_22));
    if !known.is_empty() {
        eprintln!(
            "KNOWN fallbacksrc + GStreamer 1.22 critical in {what}, {} time(s): {}",
            known.len(),
            known[0]
        );
    }
    stderr::assert_clean(what, rest.join("\n").as_bytes());
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cameras-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The pipeline file with its `${VARS}`, as `scripts/run-pipeline.sh` expands them.
fn pipeline_file(name: &str, vars: &[(&str, String)]) -> String {
    let text: String = std::fs::read_to_string(repo_root().join("pipelines").join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = text;
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    assert!(!out.contains("${"), "a variable left: {out}");
    out
}

#[test]
fn the_rtsp_pipeline_file_keeps_running_through_two_camera_outages() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let mut cam = Camera::start(free_port());
    let dir = tmpdir("file");
    let json = dir.join("frame_counts.jsonl");
    let desc = pipeline_file(
        "rtsp-camera-to-file.pipeline",
        &[
            ("RTSP_URL", cam.url()),
            ("MM_URL", proxy.url()),
            ("MODEL_NAME", MODEL.into()),
            ("RESULTS_DIR", dir.display().to_string()),
        ],
    );
    let messages = std::fs::File::create(dir.join("messages.txt")).unwrap();
    let mut host = Command::new("gst-launch-1.0")
        .args(["-e", "-m"])
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("DOMINO_API_KEY", "test-key")
        .stdout(messages)
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0");
    wait_ok_after(&mut host, &json, 0, 30, "start");
    let resumed = two_outages(&mut cam, &mut host, &json);

    // SAFETY: a signal to our own child (Ctrl-C: -e turns it into EOS).
    unsafe {
        libc::kill(host.id() as i32, libc::SIGINT);
    }
    let out = output_within(host, 30, "gst-launch-1.0 after Ctrl-C");
    assert_clean_but_fallbacksrc("gst-launch-1.0", &out.stderr);
    assert!(
        out.status.success(),
        "gst-launch-1.0: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let all = lines(&json);
    let no_signal = check_lines(&all, 2);
    let msgs = std::fs::read_to_string(dir.join("messages.txt")).unwrap();
    for state in ["lost", "back"] {
        let n = msgs
            .lines()
            .filter(|l| {
                l.contains("triton-camera") && l.contains(&format!("state=(string){state}"))
            })
            .count();
        assert_eq!(n, 2, "triton-camera state={state} messages:\n{msgs}");
    }
    let pictures = decoded_frames(&dir.join("annotated.ts"));
    assert_eq!(
        pictures,
        all.len(),
        "pictures in annotated.ts vs JSON lines"
    );
    eprintln!(
        "camera outages under the pipeline file: {} frames, {no_signal} no-signal, ok again {resumed:.1?} s after the camera's return",
        all.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn triton_video_rides_out_an_outage_and_ends_with_exit_5_when_the_camera_never_returns() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let mut cam = Camera::start(free_port());
    let dir = tmpdir("runner");
    let json = dir.join("frame_counts.jsonl");
    let mut host = Command::new(bin("triton-video"))
        .env("VIDEO_PATH", cam.url())
        .env("MM_ADDR", proxy.url())
        .env("DOMINO_API_KEY", "test-key")
        .env("MODEL_NAME", MODEL)
        .env("RESULTS_DIR", &dir)
        .env("CAMERA_GIVE_UP_SECS", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("triton-video");
    wait_ok_after(&mut host, &json, 0, 30, "start");
    // One outage shorter than the give-up time: the run goes on.
    let at = statuses(&json).len();
    cam.kill();
    std::thread::sleep(Duration::from_secs(2));
    cam.up();
    wait_ok_after(&mut host, &json, at + 1, 10, "short outage");
    // Then the camera goes for good.
    cam.kill();
    let out = output_within(host, 60, "triton-video after its camera went for good");
    assert_clean_but_fallbacksrc("triton-video", &out.stderr);
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{err}\n{summary}");
    assert!(
        err.contains("did not come back within 3 s"),
        "the reason: {err}"
    );
    let all = lines(&json);
    // The final outage's no-signal lines are the last ones; before them, ok.
    for (i, l) in all.iter().enumerate() {
        assert_eq!(l["frame"], i as u64, "one line per frame, in order");
    }
    assert_eq!(all.last().unwrap()["status"], "no-signal");
    assert!(summary.contains("no-signal"), "{summary}");
    let pictures = decoded_frames(&dir.join("annotated.ts"));
    assert_eq!(
        pictures,
        all.len(),
        "pictures in annotated.ts vs JSON lines"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

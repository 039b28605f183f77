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

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst_triton_tests::artifacts::{bin, plugin_dir};
use gst_triton_tests::camera::{
    Camera, decoded_frames, lines, output_within, statuses, tmpdir, wait_ok_after,
};
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::triton::{free_port, repo_root, shared_url};

const MODEL: &str = "shapes_nms";
/// How long each camera outage lasts (the fault itself, not a wait for a condition).
const OUTAGE: Duration = Duration::from_secs(4);

/// Two outages: camera killed, away for OUTAGE, started again (the second time in `second_mode`:
/// another size and frame rate); frames ok again after each.
/// Returns, per outage, the seconds from the camera's return to its first ok frame, which must be
/// at most 5 s: `detjsonsink` writes each line through (`flush-interval-ms=0`), so a line is in
/// the file when its frame has been answered, and the time it appears is the time it was made.
fn two_outages(
    cam: &mut Camera,
    host: &mut Child,
    json: &Path,
    second_mode: (u32, u32, u32),
) -> Vec<f64> {
    let mut resumed = Vec::new();
    for k in 0..2 {
        let at = statuses(json).len();
        cam.kill();
        std::thread::sleep(OUTAGE);
        if k == 1 {
            cam.mode = second_mode;
        }
        cam.up();
        let back = Instant::now();
        let first_ok = wait_ok_after(host, json, at + 1, 10, &format!("outage {k}"));
        let r = first_ok.saturating_duration_since(back).as_secs_f64();
        assert!(
            r <= 5.0,
            "outage {k}: the first ok frame came {r:.1} s after the camera's return (at most 5 s)"
        );
        resumed.push(r);
    }
    resumed
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

/// The pipeline file with its `${VARS}`, as `scripts/run-pipeline.sh` expands them.
fn pipeline_file(name: &str, vars: &[(&str, String)]) -> String {
    let text = std::fs::read_to_string(repo_root().join("pipelines").join(name)).unwrap();
    gst_triton_tests::pipeline::expand_pipeline_file(&text, |k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"))
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
    // The camera comes back the second time at 4:3 and 10 f/s instead of 16:9 and 15 f/s.
    let resumed = two_outages(&mut cam, &mut host, &json, (320, 240, 10));

    // SAFETY: a signal to our own child (Ctrl-C: -e turns it into EOS).
    unsafe {
        libc::kill(host.id() as i32, libc::SIGINT);
    }
    let out = output_within(host, 30, "gst-launch-1.0 after Ctrl-C");
    gst_triton_tests::stderr::assert_clean("gst-launch-1.0", &out.stderr);
    assert!(
        out.status.success(),
        "gst-launch-1.0: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let all = lines(&json);
    let no_signal = check_lines(&all, 2);
    // The output keeps the camera's first size (the 4:3 return is scaled into it with borders,
    // keeping its aspect), so the encoder and the muxer never see a caps change.
    for l in &all {
        assert_eq!(
            (&l["width"], &l["height"]),
            (&640.into(), &360.into()),
            "{l}"
        );
    }
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
fn triton_video_rides_out_two_outages_and_ends_with_exit_5_when_the_camera_never_returns() {
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
        .env("CAMERA_GIVE_UP_SECS", "6")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("triton-video");
    wait_ok_after(&mut host, &json, 0, 30, "start");
    // Two 4-s outages, shorter than the give-up time: the run goes on; the camera comes back the
    // second time at 4:3 and 10 f/s instead of 16:9 and 15 f/s.
    let resumed = two_outages(&mut cam, &mut host, &json, (320, 240, 10));
    // Then the camera goes for good.
    cam.kill();
    let out = output_within(host, 60, "triton-video after its camera went for good");
    gst_triton_tests::stderr::assert_clean("triton-video", &out.stderr);
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{err}\n{summary}");
    assert!(
        err.contains("did not come back within 6 s"),
        "the reason: {err}"
    );
    let all = lines(&json);
    // The final outage's no-signal lines are the last ones; before them, ok.
    for (i, l) in all.iter().enumerate() {
        assert_eq!(l["frame"], i as u64, "one line per frame, in order");
    }
    assert_eq!(all.last().unwrap()["status"], "no-signal");
    // Two outages ridden out before the last: two runs of no-signal lines between ok ones.
    let runs = all
        .windows(2)
        .filter(|w| w[0]["status"] == "ok" && w[1]["status"] == "no-signal")
        .count();
    assert_eq!(runs, 3, "two outages ridden out and the final one");
    // The recording keeps the camera's first size through the 4:3 return.
    for l in &all {
        assert_eq!(
            (&l["width"], &l["height"]),
            (&640.into(), &360.into()),
            "{l}"
        );
    }
    assert!(summary.contains("no-signal"), "{summary}");
    eprintln!(
        "triton-video through two outages: ok again {resumed:.1?} s after the camera's return"
    );
    let pictures = decoded_frames(&dir.join("annotated.ts"));
    assert_eq!(
        pictures,
        all.len(),
        "pictures in annotated.ts vs JSON lines"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! The whole job per camera, side by side (issue 28): a 1080p H.264 clip (OpenCV's `vtest.avi`
//! scaled to 1920×1080, 150 frames) through the proxy (release) to Triton, CPU seconds (user +
//! system) of the client process per frame and payload bytes per frame on the wire (the proxy's
//! `proxy_bytes_in_total`), all in one run:
//!
//! - the original client's design (`tests/python/original_client.py`: OpenCV decode, letterbox,
//!   Chat with base64 Acks, draw, `mp4v` writer, JSONL);
//! - `triton-video` (release) with the default encoder, with `ENCODER=avenc_mpeg4` (the same
//!   encoder family as `mp4v`), and with `ENCODER=none` (counts only);
//! - `triton-video` with the model's UINT8 twin (`shapes_yolov8_u8`: `dtype=auto` sends raw pixels);
//! - decoding alone (`gst-launch-1.0 filesrc ! decodebin ! fakesink`), the floor of any client.
//!
//! CPU is measured with `getrusage(RUSAGE_CHILDREN)` around each client process (process start
//! included for every one of them). A run counts only when every frame was answered (`ok` in the
//! JSON lines, each with the detections of a 1920×1080 frame: boxes inside it, confidences in
//! [0, 1], labels; the frame count right); the bench fails after printing its table when any had
//! errors. `cargo bench -p gst-triton-tests --bench job`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gst_triton_tests::artifacts::release_bin;
use gst_triton_tests::proxy::{ProxyProcess, metric};
use gst_triton_tests::triton::{Triton, repo_root, triton_metrics};

/// Frames asked of the clip (`identity eos-after`); how many it has is counted once made.
const CLIP_FRAMES: usize = 150;

fn children_cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("job-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// OpenCV's sample street video scaled to 1920×1080, `CLIP_FRAMES` frames, H.264 in MP4.
fn clip(dir: &Path) -> PathBuf {
    let src = gst_triton_tests::artifacts::vtest(dir);
    let clip = dir.join("clip1080.mp4");
    let desc = format!(
        "filesrc location={} ! decodebin ! identity eos-after={} ! videoconvert ! videoscale \
         ! video/x-raw,width=1920,height=1080 ! x264enc speed-preset=veryfast ! mp4mux ! filesink location={}",
        src.display(),
        CLIP_FRAMES + 1,
        clip.display()
    );
    let st = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .status()
        .unwrap();
    assert!(st.success(), "{desc}");
    clip
}

/// One client's figures.
struct Row {
    what: String,
    frames: usize,
    errors: usize,
    cpu_ms: f64,
    bytes: f64,
}

/// Runs `cmd` to its end; CPU per frame from the children's rusage, bytes from the proxy.
/// `check` reads what the run wrote: (frames, errors).
fn measure(
    what: &str,
    proxy: Option<&ProxyProcess>,
    mut cmd: Command,
    check: impl FnOnce(&std::process::Output) -> (usize, usize),
) -> Row {
    let bytes = || {
        proxy.map_or(0.0, |p| {
            metric(&triton_metrics(p.metrics_port), "proxy_bytes_in_total")
        })
    };
    let (b0, c0) = (bytes(), children_cpu_s());
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (c1, b1) = (children_cpu_s(), bytes());
    let (frames, mut errors) = check(&out);
    if !out.status.success() {
        eprintln!(
            "{what}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        errors += 1;
    }
    let n = frames.max(1) as f64;
    Row {
        what: what.into(),
        frames,
        errors,
        cpu_ms: (c1 - c0) * 1000.0 / n,
        bytes: (b1 - b0) / n,
    }
}

/// `triton-video` through the proxy; (frames, errors) from its JSON lines.
fn triton_video(
    frames_in: usize,
    bin: &Path,
    proxy: &ProxyProcess,
    video: &Path,
    name: &str,
    model: &str,
    encoder: &str,
) -> Row {
    let dir = tmpdir(name);
    let mut cmd = Command::new(bin);
    cmd.env("MM_ADDR", proxy.url())
        .env("DOMINO_API_KEY", "test-key")
        .env("MODEL_NAME", model)
        .env("VIDEO_PATH", video)
        .env("ENCODER", encoder)
        .env("RESULTS_DIR", &dir)
        .stdout(Stdio::null());
    let what = format!("triton-video, {model}, ENCODER={encoder}");
    measure(&what, Some(proxy), cmd, |_| {
        let text = std::fs::read_to_string(dir.join("frame_counts.jsonl")).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let frames = lines.iter().filter(|l| l.get("frame").is_some()).count();
        // An error: a frame not ok, or one whose answer is not a frame's detections (its size
        // not the clip's, a box outside it, a confidence outside [0, 1]).
        let errors = lines
            .iter()
            .filter(|l| l.get("frame").is_some() && (l["status"] != "ok" || !sound_detections(l)))
            .count();
        (frames, errors + frames_in.abs_diff(frames))
    })
}

/// Whether a JSON line's detections are those of a 1920×1080 frame: an array of boxes inside it,
/// each with a label and a confidence in [0, 1].
fn sound_detections(l: &serde_json::Value) -> bool {
    let Some(dets) = l["detections"].as_array() else {
        return false;
    };
    l["width"] == 1920
        && l["height"] == 1080
        && dets.iter().all(|d| {
            let b: Vec<f64> = d["box"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                .unwrap_or_default();
            let c = d["confidence"].as_f64().unwrap_or(-1.0);
            b.len() == 4
                && (0.0..=1920.0).contains(&b[0])
                && (0.0..=1080.0).contains(&b[1])
                && (b[0]..=1920.0).contains(&b[2])
                && (b[1]..=1080.0).contains(&b[3])
                && (0.0..=1.0).contains(&c)
                && d["label"].as_str().is_some_and(|s| !s.is_empty())
        })
}

fn main() {
    let dir = tmpdir("clip");
    let video = clip(&dir);
    let frames_in = gst_triton_tests::camera::decoded_frames(&video);
    assert!(frames_in >= CLIP_FRAMES, "the clip has {frames_in} frames");
    let bin = release_bin("triton-video");
    let triton = Triton::start().expect("start Triton");
    let proxy = ProxyProcess::start_release(&triton.url(), &[]);
    // Warm-up: the model's first answers, the page cache.
    triton_video(
        frames_in,
        &bin,
        &proxy,
        &video,
        "warm",
        "shapes_yolov8",
        "none",
    );

    let mut rows = Vec::new();
    // The floors: what decoding, and decoding plus the same-family encoder, cost with nothing else.
    for (what, tail) in [
        (
            "decoding alone (gst-launch-1.0 decodebin ! fakesink)",
            "fakesink",
        ),
        (
            "decoding + avenc_mpeg4 alone (no inference)",
            "videoconvert ! avenc_mpeg4 ! fakesink",
        ),
    ] {
        let mut cmd = Command::new("gst-launch-1.0");
        cmd.arg("-q").args(
            format!("filesrc location={} ! decodebin ! {tail}", video.display()).split_whitespace(),
        );
        rows.push(measure(what, None, cmd, |o| {
            (frames_in, usize::from(!o.status.success()))
        }));
    }
    let py_dir = tmpdir("original");
    let mut py = Command::new(repo_root().join(".venv/bin/python"));
    py.arg(repo_root().join("tests/python/original_client.py"))
        .args(["--video", &video.display().to_string()])
        .args(["--proxy", proxy.url().trim_start_matches("http://")])
        .args(["--key", "test-key", "--model", "shapes_yolov8"])
        .args(["--out", &py_dir.display().to_string()]);
    rows.push(measure(
        "original client's design (Python, OpenCV, mp4v)",
        Some(&proxy),
        py,
        |o| {
            let v = gst_triton_tests::last_json_line(o);
            let frames = v["frames"].as_u64().unwrap_or(0) as usize;
            let errors = v["errors"].as_u64().unwrap_or(1) as usize;
            (frames, errors + frames_in.abs_diff(frames))
        },
    ));
    for (name, model, encoder) in [
        ("auto", "shapes_yolov8", "auto"),
        ("mpeg4", "shapes_yolov8", "avenc_mpeg4"),
        ("none", "shapes_yolov8", "none"),
        ("u8-none", "shapes_yolov8_u8", "none"),
    ] {
        rows.push(triton_video(
            frames_in, &bin, &proxy, &video, name, model, encoder,
        ));
    }

    println!(
        "whole job, {frames_in} frames of 1920x1080 H.264, through the proxy to Triton (this run)"
    );
    println!(
        "| client | frames | errors | CPU per frame | vs the original design | bytes per frame |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |prefix: &str| {
        rows.iter()
            .find(|r| r.what.starts_with(prefix))
            .expect("measured above")
    };
    let original = row("original").cpu_ms;
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} ms | {:.2}x | {:.0} |",
            r.what,
            r.frames,
            r.errors,
            r.cpu_ms,
            original / r.cpu_ms,
            r.bytes
        );
    }
    let none = row("triton-video, shapes_yolov8, ENCODER=none");
    let u8 = row("triton-video, shapes_yolov8_u8");
    println!(
        "counts only / decoding alone: {:.2}x (goal <= 2); same encoder family: the original / ours {:.2}x (goal >= 3); FP32 / UINT8 bytes per frame: {:.2}x (goal >= 4)",
        none.cpu_ms / row("decoding alone").cpu_ms,
        original / row("triton-video, shapes_yolov8, ENCODER=avenc_mpeg4").cpu_ms,
        none.bytes / u8.bytes.max(1.0)
    );
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    assert_eq!(errors, 0, "runs with errors measure nothing");
    drop(proxy);
    drop(triton);
}

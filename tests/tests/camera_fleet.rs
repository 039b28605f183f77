//! Many cameras in one runner: `triton-video --cameras FILE` with three loopback RTSP cameras
//! (`rtsp_camera` processes), then the file edited while it runs: one camera removed, one added.
//!
//! What it proves: every camera of the file gets its own outputs (RESULTS_DIR/<name>/); the edit
//! stops the removed camera (its files finished, then no more lines) and starts the added one,
//! while the two others keep every frame: their JSON lines are all `ok`, in order, and no two
//! consecutive frames are more than 1.5 frame intervals apart from the moment all three stream to
//! the end of the run (a frame lost to the edit would leave a gap of 2); the Prometheus metrics on METRICS_PORT list exactly the
//! cameras of the file, up, with their frame counts; SIGTERM ends the run with 0, every recording
//! finished (the x264 camera's `annotated.ts` decodes with one picture per JSON line).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gst_triton_tests::artifacts::bin;
use gst_triton_tests::camera::{
    Camera, decoded_frames, http_get, lines, output_within, statuses, tmpdir, wait_ok_after,
};
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::triton::{free_port, shared_url};

const MODEL: &str = "shapes_nms";
/// Small cameras at 5 f/s and a 320×320 model input: four cameras, their encoders, Triton and
/// the proxy share two cores in CI, and a machine that cannot keep up loses frames whatever the
/// runner does (at 10 f/s and 640×640 under load, inference took 600 ms with 4 in flight, and
/// every camera lost 2.4 s at once). The claim here is that an edit costs the others nothing.
const MODE: (u32, u32, u32) = (320, 180, 5);

fn write_file(path: &Path, cams: &[(&str, &Camera, &str)]) {
    let mut text = String::new();
    for (name, cam, encoder) in cams {
        text.push_str(&format!(
            "[[camera]]\nname = \"{name}\"\nuri = \"{}\"\nencoder = \"{encoder}\"\n\n",
            cam.url()
        ));
    }
    // Written whole, then renamed: the runner never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `triton-video --cameras file` through `proxy` (no API), its outputs in `dir`, its metrics on
/// `port`, its stderr into `log`.
fn start_fleet(
    file: &Path,
    dir: &Path,
    proxy: &ProxyProcess,
    port: u16,
    log: &Path,
) -> std::process::Child {
    Command::new(bin("triton-video"))
        .arg("--cameras")
        .arg(file)
        .env("API_ADDR", "off")
        .env("MM_ADDR", proxy.url())
        .env("DOMINO_API_KEY", "test-key")
        .env("MODEL_NAME", MODEL)
        .env("IMG_SIZE", "320")
        .env("RESULTS_DIR", dir)
        .env("METRICS_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("triton-video")
}

/// The metrics text: `name{camera="x"}` → value.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let r = http_get(port, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    r.lines()
        .filter(|l| l.starts_with("triton_video_"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn series(m: &BTreeMap<String, f64>, name: &str, cam: &str) -> Option<f64> {
    m.get(&format!("triton_video_camera_{name}{{camera=\"{cam}\"}}"))
        .copied()
}

/// Waits for `cond` on the runner's stderr file (it goes on running meanwhile).
fn wait_log(log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
    {
        assert!(
            Instant::now() < deadline,
            "no {what:?} in the log within 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every line ok, in order; the gaps of more than 1.5 frame intervals between consecutive
/// frames, as (line, intervals).
fn every_frame(json: &Path) -> (usize, Vec<(usize, f64)>) {
    let all = lines(json);
    let interval = 1e9 / MODE.2 as f64;
    let mut gaps = Vec::new();
    for (i, l) in all.iter().enumerate() {
        assert_eq!(
            l["frame"],
            i as u64,
            "{}: one line per frame",
            json.display()
        );
        assert_eq!(l["status"], "ok", "{}: line {i}: {l}", json.display());
        if i > 0 {
            let gap = (l["pts_ns"].as_u64().unwrap() as f64
                - all[i - 1]["pts_ns"].as_u64().unwrap() as f64)
                / interval;
            if gap > 1.5 {
                gaps.push((i, gap));
            }
        }
    }
    (all.len(), gaps)
}

#[test]
fn a_cameras_file_runs_every_camera_and_an_edit_removes_and_adds_one_while_the_others_keep_every_frame()
 {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let cams: BTreeMap<&str, Camera> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (n, Camera::start_with(free_port(), MODE)))
        .collect();
    let dir = tmpdir("fleet");
    let file = dir.join("cameras.toml");
    write_file(
        &file,
        &[
            ("a", &cams["a"], "x264"),
            ("b", &cams["b"], "none"),
            ("c", &cams["c"], "none"),
        ],
    );
    let json = |n: &str| dir.join(n).join("frame_counts.jsonl");
    let log = dir.join("stderr.txt");
    let port = free_port();
    let mut host = start_fleet(&file, &dir, &proxy, port, &log);
    for n in ["a", "b", "c"] {
        wait_ok_after(&mut host, &json(n), 0, 20, n);
    }
    // From here all three cameras stream: the gaps are counted from these lines on. While they
    // start, four RTSP sessions, their encoders and the first inferences contend for two cores
    // (a CI run once lost the third frame of one camera there, 35 lines before the edit); that
    // start is not what this test is about.
    let streaming: BTreeMap<&str, usize> = ["a", "b"].map(|n| (n, lines(&json(n)).len())).into();
    let m = scrape(port);
    assert_eq!(m["triton_video_cameras"], 3.0, "{m:?}");
    for n in ["a", "b", "c"] {
        assert_eq!(series(&m, "up", n), Some(1.0), "{n}: {m:?}");
        assert!(series(&m, "frames_total", n).unwrap() >= 20.0, "{n}: {m:?}");
    }
    assert_eq!(series(&m, "up", "d"), None, "{m:?}");

    // The edit: c leaves, d comes.
    let before: BTreeMap<&str, usize> = ["a", "b"].map(|n| (n, lines(&json(n)).len())).into();
    write_file(
        &file,
        &[
            ("a", &cams["a"], "x264"),
            ("b", &cams["b"], "none"),
            ("d", &cams["d"], "none"),
        ],
    );
    wait_ok_after(&mut host, &json("d"), 0, 20, "d, added by the edit");
    wait_log(&log, "camera c: stopped after");
    let c_lines = lines(&json("c")).len();
    for n in ["a", "b"] {
        wait_ok_after(
            &mut host,
            &json(n),
            before[n],
            20,
            &format!("{n} after the edit"),
        );
    }
    let m = scrape(port);
    assert_eq!(m["triton_video_cameras"], 3.0, "{m:?}");
    assert!(
        !m.keys().any(|k| k.contains("camera=\"c\"")),
        "c is gone: {m:?}"
    );
    for n in ["a", "b", "d"] {
        assert_eq!(series(&m, "up", n), Some(1.0), "{n}: {m:?}");
        let frames = series(&m, "frames_total", n).unwrap();
        assert!(frames >= 20.0, "{n}: {m:?}");
        let latencies = series(&m, "inference_latency_seconds_count", n).unwrap();
        assert!(latencies >= 1.0 && latencies <= frames, "{n}: {m:?}");
        let ok = series(&m, "ok_frames_total", n).unwrap();
        assert!(
            ok >= 20.0 && ok <= frames,
            "{n}: ok frames {ok} of {frames}"
        );
        // No camera of this test went away, failed or was restarted (a and b were left alone
        // by the edit, d is new).
        for zero in [
            "error_frames_total",
            "no_signal_frames_total",
            "outages_total",
            "restarts_total",
        ] {
            assert_eq!(series(&m, zero, n), Some(0.0), "{n}: {zero}: {m:?}");
        }
        // 5 f/s cameras, measured over the last 5 s.
        let fps = series(&m, "fps", n).unwrap();
        assert!(fps > 2.0 && fps < 8.0, "{n}: fps {fps}: {m:?}");
    }

    // SAFETY: a signal to our own child: a routine stop.
    unsafe {
        libc::kill(host.id() as i32, libc::SIGTERM);
    }
    let out = output_within(host, 30, "triton-video after SIGTERM");
    let err = std::fs::read_to_string(&log).unwrap();
    gst_triton_tests::stderr::assert_clean("triton-video", err.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        lines(&json("c")).len(),
        c_lines,
        "c wrote nothing after it was removed"
    );
    assert!(c_lines >= 20);
    for n in ["a", "b"] {
        let (frames, gaps) = every_frame(&json(n));
        eprintln!(
            "camera {n}: {frames} frames, all ok; streaming from line {}, the edit at line {}; gaps over 1.5 frame intervals (line, intervals): {gaps:?}",
            streaming[n], before[n]
        );
        let lost: Vec<_> = gaps.iter().filter(|(i, _)| *i > streaming[n]).collect();
        assert!(
            lost.is_empty(),
            "camera {n}: frames missing at {lost:?} (streaming from line {}, the edit at line {})",
            streaming[n],
            before[n]
        );
    }
    let pictures = decoded_frames(&dir.join("a").join("annotated.ts"));
    assert_eq!(
        pictures,
        lines(&json("a")).len(),
        "pictures in a/annotated.ts vs JSON lines"
    );
    assert!(
        !dir.join("b").join("annotated.ts").exists(),
        "b has ENCODER none"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cameras file's text for `entries` (each a `[[camera]]` table's body after its name).
fn write_raw(path: &Path, entries: &[(&str, String)]) {
    let text: String = entries
        .iter()
        .map(|(name, body)| format!("[[camera]]\nname = \"{name}\"\n{body}\n"))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// How many times `what` is in the runner's log so far.
fn log_count(log: &Path, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(what)
        .count()
}

/// Waits until `what` is in the log `n` times.
fn wait_log_n(log: &Path, what: &str, n: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_count(log, what) < n {
        assert!(
            Instant::now() < deadline,
            "no {n} × {what:?} in the log within 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Instant::now()
}

/// Frames of `json` from line `from` on: none missing (no gap of more than 1.5 intervals).
fn no_gap_from(json: &Path, from: usize) -> Vec<(usize, f64)> {
    let all = lines(json);
    let interval = 1e9 / MODE.2 as f64;
    (from.max(1)..all.len())
        .map(|i| {
            let gap = (all[i]["pts_ns"].as_u64().unwrap() as f64
                - all[i - 1]["pts_ns"].as_u64().unwrap() as f64)
                / interval;
            (i, gap)
        })
        .filter(|(_, g)| *g > 1.5)
        .collect()
}

/// The rest of the cameras file's life under a running fleet, and what its metrics say of it:
/// - an edit that does not parse keeps both cameras running, every frame;
/// - an edit of one entry (its `timeout_ms`) restarts that camera only (the other keeps every
///   frame); its earlier files are kept as `frame_counts.1.jsonl`;
/// - the proxy killed: error lines and `error_frames_total`; an edit made meanwhile that adds a
///   camera with a model not checked yet is refused (the server is away) and stays refused when
///   the server is back (the file did not change) until a SIGHUP checks it again;
/// - a camera killed for 3 s: one outage, no-signal lines, and `outages_total`,
///   `no_signal_frames_total` equal to them;
/// - a camera whose pipeline cannot start (its JSON path is a directory) is tried again every
///   5 s (`restarts_total` counts each), and streams once the path is free.
#[test]
fn a_fleet_follows_bad_edits_changed_entries_and_sighup_and_its_metrics_count_each_fault() {
    let mut proxy = ProxyProcess::start(&shared_url(), &[]);
    let mut cams: BTreeMap<&str, Camera> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (n, Camera::start_with(free_port(), MODE)))
        .collect();
    let dir = tmpdir("fleet-life");
    let file = dir.join("cameras.toml");
    let urls: BTreeMap<&str, String> = cams.iter().map(|(n, c)| (*n, c.url())).collect();
    let entry = |n: &str, extra: &str| {
        (
            n.to_string(),
            format!(
                "uri = \"{}\"\nencoder = \"none\"\ngive_up_secs = 120\n{extra}",
                urls[n]
            ),
        )
    };
    let file_of = |e: &[(String, String)]| {
        let e: Vec<(&str, String)> = e.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        write_raw(&file, &e);
    };
    file_of(&[entry("a", ""), entry("b", "")]);
    let json = |n: &str| dir.join(n).join("frame_counts.jsonl");
    let log = dir.join("stderr.txt");
    let port = free_port();
    let mut host = start_fleet(&file, &dir, &proxy, port, &log);
    for n in ["a", "b"] {
        wait_ok_after(&mut host, &json(n), 0, 15, n);
    }
    let kept = "the running cameras are kept";

    // 1. An edit that does not parse: both keep running, every frame.
    let before: BTreeMap<&str, usize> = ["a", "b"].map(|n| (n, lines(&json(n)).len())).into();
    std::fs::write(&file, "[[camera]\nname = \"a\"\nuri = ").unwrap();
    wait_log_n(&log, kept, 1);
    for n in ["a", "b"] {
        wait_ok_after(
            &mut host,
            &json(n),
            before[n],
            10,
            &format!("{n} after a bad edit"),
        );
        let gaps = no_gap_from(&json(n), before[n]);
        assert!(gaps.is_empty(), "{n}: frames lost to a bad edit: {gaps:?}");
    }

    // 2. b's entry changed: b restarts, a keeps every frame; b's earlier lines are kept.
    let a_before = lines(&json("a")).len();
    let b_lines = lines(&json("b")).len();
    file_of(&[entry("a", ""), entry("b", "timeout_ms = 20000\n")]);
    wait_log(&log, "camera b: the earlier pipeline's files kept as");
    wait_ok_after(&mut host, &json("b"), 0, 10, "b after its restart");
    wait_ok_after(&mut host, &json("a"), a_before, 10, "a during b's restart");
    let gaps = no_gap_from(&json("a"), a_before);
    assert!(gaps.is_empty(), "a lost frames to b's restart: {gaps:?}");
    let b_first = lines(&dir.join("b").join("frame_counts.1.jsonl"));
    assert!(
        b_first.len() >= b_lines && b_first.iter().enumerate().all(|(i, l)| l["frame"] == i),
        "b's first pipeline's lines, kept: {} of at least {b_lines}",
        b_first.len()
    );
    assert_eq!(
        lines(&json("b"))[0]["frame"],
        0,
        "b's new file starts afresh"
    );

    // 3. The proxy killed: errors. An edit adding c (a model not checked yet) while it is away
    //    is refused; once it is back the file has not changed, so c waits for a SIGHUP.
    proxy.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines(&json("a")).iter().any(|l| l["status"] == "error") {
        assert!(
            Instant::now() < deadline,
            "no error line while the proxy is away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = log_count(&log, kept);
    file_of(&[
        entry("a", ""),
        entry("b", "timeout_ms = 20000\n"),
        entry("c", "model = \"shapes_yolov8\"\n"),
    ]);
    wait_log_n(&log, kept, refused + 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("camera \"c\": model:"), "{text}");
    proxy.restart();
    let a_now = lines(&json("a")).len();
    wait_ok_after(
        &mut host,
        &json("a"),
        a_now,
        15,
        "a after the proxy's return",
    );
    assert!(
        !json("c").exists(),
        "c started without a SIGHUP: the file did not change after the refusal"
    );
    let errors_in_a = statuses(&json("a"))
        .iter()
        .filter(|s| *s == "error")
        .count();
    let m = scrape(port);
    assert_eq!(
        series(&m, "error_frames_total", "a"),
        Some(errors_in_a as f64),
        "a's error lines vs its metric: {m:?}"
    );
    // SAFETY: a signal to our own child: a reload.
    unsafe {
        libc::kill(host.id() as i32, libc::SIGHUP);
    }
    wait_ok_after(&mut host, &json("c"), 0, 10, "c after the SIGHUP");

    // 4. a's camera away for 3 s: one outage, its no-signal lines counted.
    let a_now = lines(&json("a")).len();
    cams.get_mut("a").unwrap().kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines(&json("a"))[a_now..]
        .iter()
        .any(|l| l["status"] == "no-signal")
    {
        assert!(Instant::now() < deadline, "no no-signal line for a");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3)); // the outage itself
    cams.get_mut("a").unwrap().up();
    let after = lines(&json("a")).len();
    wait_ok_after(&mut host, &json("a"), after, 10, "a after its outage");
    let no_signal = statuses(&json("a"))
        .iter()
        .filter(|s| *s == "no-signal")
        .count();
    let m = scrape(port);
    assert_eq!(series(&m, "outages_total", "a"), Some(1.0), "{m:?}");
    assert_eq!(
        series(&m, "no_signal_frames_total", "a"),
        Some(no_signal as f64),
        "a's no-signal lines vs its metric: {m:?}"
    );
    for n in ["b", "c"] {
        assert_eq!(series(&m, "outages_total", n), Some(0.0), "{n}: {m:?}");
        assert_eq!(series(&m, "restarts_total", n), Some(0.0), "{n}: {m:?}");
    }

    // 5. d cannot start (its JSON path is a directory): tried again every 5 s, each counted;
    //    streams once the path is free.
    std::fs::create_dir_all(json("d")).unwrap();
    let mut with_d = vec![
        entry("a", ""),
        entry("b", "timeout_ms = 20000\n"),
        entry("c", "model = \"shapes_yolov8\"\n"),
    ];
    with_d.push(entry("d", ""));
    file_of(&with_d);
    let failed = "camera d: cannot start the pipeline";
    let first = wait_log_n(&log, failed, 1);
    let second = wait_log_n(&log, failed, 2);
    let waited = second - first;
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_secs(9),
        "d was tried again {waited:?} after it failed (every 5 s)"
    );
    let m = scrape(port);
    assert!(
        series(&m, "restarts_total", "d").is_some_and(|r| r >= 2.0),
        "{m:?}"
    );
    std::fs::remove_dir(json("d")).unwrap();
    wait_ok_after(&mut host, &json("d"), 0, 10, "d once its path is free");

    // SAFETY: a signal to our own child: a routine stop.
    unsafe {
        libc::kill(host.id() as i32, libc::SIGTERM);
    }
    let out = output_within(host, 30, "triton-video after SIGTERM");
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of `name{labels}` in a metrics text (labels as they are written), if present.
fn sample(m: &BTreeMap<String, f64>, name: &str, labels: &str) -> Option<f64> {
    m.get(&format!("triton_video_{name}{{{labels}}}")).copied()
}

/// The stage histograms (`triton_video_camera_stage_seconds{camera, stage}`): a file camera (the
/// demo clip, recorded with x264) that has ended has each of its frames counted once in every
/// stage it passed (letterbox, infer, overlay, encoder, to_json: its frames; decode and the
/// inference round trip: its ok frames; glass_to_json: none, a file has no capture time), every
/// sum above 0; a live RTSP camera's `glass_to_json` moves with its frames.
#[test]
fn stage_histograms_count_every_frame_of_a_file_camera_and_time_a_live_ones_capture() {
    let proxy = ProxyProcess::start(&shared_url(), &[]);
    let live = Camera::start_with(free_port(), MODE);
    let clip = gst_triton_tests::artifacts::demo_clip("fleet-stages", 60, 320, 180);
    let dir = tmpdir("fleet-stages");
    let file = dir.join("cameras.toml");
    write_raw(
        &file,
        &[
            (
                "f",
                format!("uri = \"{}\"\nencoder = \"x264\"\n", clip.display()),
            ),
            (
                "l",
                format!("uri = \"{}\"\nencoder = \"x264\"\n", live.url()),
            ),
        ],
    );
    let log = dir.join("stderr.txt");
    let port = free_port();
    let mut host = start_fleet(&file, &dir, &proxy, port, &log);
    wait_log(&log, "camera f: stopped after");
    wait_ok_after(
        &mut host,
        &dir.join("l").join("frame_counts.jsonl"),
        0,
        20,
        "l",
    );
    let m = scrape(port);
    let f_lines = lines(&dir.join("f").join("frame_counts.jsonl"));
    let frames = series(&m, "frames_total", "f").unwrap();
    let ok = series(&m, "ok_frames_total", "f").unwrap();
    assert_eq!(frames, f_lines.len() as f64, "f: frames vs JSON lines");
    assert!(
        frames >= 60.0 && ok == frames,
        "f: {frames} frames, {ok} ok"
    );
    let stage = |cam: &str, stage: &str, part: &str| {
        sample(
            &m,
            &format!("camera_stage_seconds_{part}"),
            &format!("camera=\"{cam}\",stage=\"{stage}\""),
        )
        .unwrap_or_else(|| panic!("no {cam} {stage} {part} in {m:?}"))
    };
    for (s, want) in [
        ("letterbox", frames),
        ("infer", frames),
        ("overlay", frames),
        ("encoder", frames),
        ("to_json", frames),
        ("decode", ok),
        ("glass_to_json", 0.0),
    ] {
        assert_eq!(stage("f", s, "count"), want, "f: {s} count");
        if want > 0.0 {
            assert!(stage("f", s, "sum") > 0.0, "f: {s} sum");
        }
    }
    assert_eq!(
        series(&m, "inference_latency_seconds_count", "f"),
        Some(ok),
        "f: round trips"
    );
    let l_frames = series(&m, "frames_total", "l").unwrap();
    let glass = stage("l", "glass_to_json", "count");
    assert!(
        glass >= 10.0 && glass <= l_frames,
        "l: glass_to_json counted {glass} of {l_frames} frames"
    );
    // A live camera's frames are at least as old as the time they took from the letterbox on.
    assert!(
        stage("l", "glass_to_json", "sum") / glass
            >= stage("l", "to_json", "sum") / stage("l", "to_json", "count") * 0.5,
        "l: glass_to_json shorter than half of to_json on average"
    );
    // SAFETY: a signal to our own child: a routine stop.
    unsafe {
        libc::kill(host.id() as i32, libc::SIGTERM);
    }
    let out = output_within(host, 30, "triton-video after SIGTERM");
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

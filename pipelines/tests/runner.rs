//! triton-video and make-demo-clip, as a user runs them: real Triton, real proxy, real files.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::{decoded_frames, make_clip, tmpdir};
use gst_triton_tests::proxy::TestProxy;
use gst_triton_tests::triton::shared_url;

const RUNNER: &str = env!("CARGO_BIN_EXE_triton-video");

fn runner(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(RUNNER);
    for k in [
        "MM_ADDR",
        "VIDEO_PATH",
        "RESULTS_DIR",
        "DOMINO_API_KEY",
        "GRPC_BEARER_TOKEN",
        "MODEL_NAME",
        "MAX_FRAMES",
        "FPS_CAP",
        "OUTPUT_NAMES",
        "INPUT_NAME",
        "TRITON_URL",
        "KSERVE",
        "LABELS_FILE",
        "SHARED_MEMORY",
        "TRACK",
        "INTERVAL",
        "LINES",
        "ZONES",
        "RULES_FILE",
        "REPORT_INTERVAL",
        "ENCODER",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied()).args(args);
    c
}

/// `runner` straight to the shared Triton (`--direct`), without the proxy.
fn direct_to_triton(env: &[(&str, &str)]) -> Command {
    let url = shared_url();
    runner(
        env,
        &[
            "--direct",
            "--triton-url",
            url.trim_start_matches("http://"),
        ],
    )
}

/// Runs a triton-video command; its stderr never holds a GStreamer critical or warning.
trait Run {
    fn run(&mut self) -> Output;
}

impl Run for Command {
    fn run(&mut self) -> Output {
        gst_triton_tests::stderr::output("triton-video", self)
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every frame's detections match the drawn objects: same labels, every edge within `tol` px.
fn check_against_truth(jsonl: &Path, truth: &Path, frames: usize, tol: f64) {
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let truth: Vec<serde_json::Value> = std::fs::read_to_string(truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), frames, "one line per frame");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["frame"], i as u64, "frames contiguous");
        assert_eq!(l["status"], "ok", "{l}");
        let dets = l["detections"].as_array().unwrap();
        let objs = truth[i]["objects"].as_array().unwrap();
        assert_eq!(dets.len(), objs.len(), "frame {i}: {l}");
        for o in objs {
            let ob: Vec<f64> = o["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let best = dets
                .iter()
                .filter(|d| d["label"] == o["label"])
                .map(|d| {
                    d["box"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .zip(&ob)
                        .map(|(a, b)| (a.as_f64().unwrap() - b).abs())
                        .fold(0.0, f64::max)
                })
                .fold(f64::INFINITY, f64::min);
            assert!(
                best <= tol,
                "frame {i}: {} off by {best} px: {l}",
                o["label"]
            );
        }
        let total: u64 = l["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(total as usize, dets.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_through_the_proxy_matches_the_drawn_shapes() {
    let dir = tmpdir("demo");
    let (clip, truth) = make_clip(&dir, 60, 640, 360);
    let proxy = TestProxy::start(&shared_url(), &["--grpc-expect-api-key", "demo-key"])
        .await
        .unwrap();
    let results = dir.join("results");
    let addr = proxy.addr.to_string();
    let out = tokio::task::spawn_blocking({
        let (clip, results) = (clip.clone(), results.clone());
        move || {
            runner(
                &[
                    ("MM_ADDR", &addr),
                    ("VIDEO_PATH", clip.to_str().unwrap()),
                    ("RESULTS_DIR", results.to_str().unwrap()),
                    ("DOMINO_API_KEY", "demo-key"),
                    ("MODEL_NAME", "shapes_yolov8"),
                ],
                &[],
            )
            .run()
        }
    })
    .await
    .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("frames:      60 (60 ok"), "{t}");
    assert!(t.contains("red 60") && t.contains("yellow 60"), "{t}");
    assert!(!t.contains("demo-key"), "the key leaked into the output");
    // 640×360 → r = 1: a pixel of letterbox error plus H.264 edge blur.
    check_against_truth(&results.join("frame_counts.jsonl"), &truth, 60, 3.0);
    assert_eq!(decoded_frames(&results.join("annotated.mp4")), 60);
}

/// Direct to Triton, with the tensors in the gRPC messages and then in shared memory
/// (`SHARED_MEMORY=1`): both match the drawn shapes, with the same detections.
#[test]
fn direct_to_triton_with_max_frames_and_other_layout() {
    let dir = tmpdir("direct");
    let (clip, truth) = make_clip(&dir, 40, 1280, 720);
    let mut seen = Vec::new();
    for shm in ["", "1"] {
        let results = dir.join(format!("results{shm}"));
        let out = direct_to_triton(&[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("RESULTS_DIR", results.to_str().unwrap()),
            ("MODEL_NAME", "shapes_effnms"),
            ("MAX_FRAMES", "25"),
            ("SHARED_MEMORY", shm),
        ])
        .run();
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        // A run capped by MAX_FRAMES on a healthy file warns of nothing.
        assert!(!t.contains("warning"), "{t}");
        let jsonl = results.join("frame_counts.jsonl");
        // 1280×720 → r = 0.5: 0.5/r + 0.5 px, plus the H.264 round trip blurring the edges.
        check_against_truth(&jsonl, &truth, 25, 4.0);
        assert_eq!(decoded_frames(&results.join("annotated.mp4")), 25);
        let dets: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["detections"].clone())
            .collect();
        seen.push(dets);
    }
    assert_eq!(seen[0], seen[1], "shared memory changed the detections");
}

/// `ROI` (here as fractions, `ROI_NORMALIZED=1`): the runner detects only inside the middle
/// band of the frame, where the demo clip's green and blue shapes move; red above it and yellow
/// below are left out, and the boxes are in full-frame pixels.
#[test]
fn roi_detects_only_inside_the_region_in_full_frame_pixels() {
    let dir = tmpdir("roi");
    let (clip, truth) = make_clip(&dir, 20, 1280, 720);
    let inside: String = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let objs = v["objects"].as_array_mut().unwrap();
            objs.retain(|o| {
                let b = &o["box"];
                b[1].as_f64().unwrap() >= 180.0 && b[3].as_f64().unwrap() <= 540.0
            });
            assert_eq!(objs.len(), 2, "the clip changed: {l}");
            format!("{v}\n")
        })
        .collect();
    let truth_inside = dir.join("truth-inside.jsonl");
    std::fs::write(&truth_inside, inside).unwrap();
    let results = dir.join("results");
    let out = direct_to_triton(&[
        ("VIDEO_PATH", clip.to_str().unwrap()),
        ("RESULTS_DIR", results.to_str().unwrap()),
        ("MODEL_NAME", "shapes_yolov8"),
        ("ENCODER", "none"),
        ("ROI", "0,0.25,1,0.5"),
        ("ROI_NORMALIZED", "1"),
    ])
    .run();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // 1280 wide into 640: r = 0.5, as for the whole frame.
    check_against_truth(&results.join("frame_counts.jsonl"), &truth_inside, 20, 4.0);
    let bad = direct_to_triton(&[
        ("VIDEO_PATH", clip.to_str().unwrap()),
        ("RESULTS_DIR", results.to_str().unwrap()),
        ("MODEL_NAME", "shapes_yolov8"),
        ("ROI", "0,0,1280"),
    ])
    .run();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("ROI: roi: '0,0,1280' has 3 values"),
        "{}",
        text(&bad)
    );
}

/// `ENCODER`: `auto` takes a hardware H.264 encoder or else x264, a named element is used as it
/// is (`avenc_mpeg4`, the original client's codec family), and the summary says which encoder
/// and which decoder ran; an element that does not exist, or is not a video encoder, is exit 2
/// naming `ENCODER` before anything runs.
#[test]
fn the_encoder_is_chosen_named_and_reported_with_the_decoder() {
    let dir = tmpdir("encoder");
    let (clip, truth) = make_clip(&dir, 20, 640, 360);
    for (enc, want) in [
        ("auto", "x264enc (auto: no hardware H.264 encoder here)"),
        ("avenc_mpeg4", "avenc_mpeg4 (ENCODER=avenc_mpeg4)"),
    ] {
        let results = dir.join(enc);
        let out = direct_to_triton(&[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("RESULTS_DIR", results.to_str().unwrap()),
            ("MODEL_NAME", "shapes_nms"),
            ("ENCODER", enc),
        ])
        .run();
        let t = text(&out);
        assert!(out.status.success(), "{enc}: {t}");
        let line = t
            .lines()
            .find(|l| l.starts_with("encoder:"))
            .unwrap_or_else(|| panic!("{enc}: no encoder line: {t}"));
        // What auto takes depends on the machine: x264 here, a hardware encoder where there is one.
        let auto = triton_video::encoder::choose(
            &triton_video::encoder::Encoder::Auto,
            triton_video::encoder::Container::Mp4,
        )
        .unwrap()
        .unwrap();
        if enc == "auto" && auto.element != "x264enc" {
            assert_eq!(line, format!("encoder:     {}", auto.summary()));
            assert!(auto.summary().ends_with("(auto: hardware H.264)"), "{line}");
        } else {
            assert_eq!(line, format!("encoder:     {want}"));
        }
        // decodebin picked the software H.264 decoder here (a hardware one where present).
        assert!(
            t.lines()
                .any(|l| l.starts_with("decoder:     ") && l.contains("264")),
            "{t}"
        );
        check_against_truth(&results.join("frame_counts.jsonl"), &truth, 20, 4.0);
        assert_eq!(decoded_frames(&results.join("annotated.mp4")), 20, "{enc}");
    }
    for (enc, want) in [
        (
            "no_such_encoder",
            "ENCODER: no GStreamer element named 'no_such_encoder'",
        ),
        ("identity", "ENCODER: 'identity' is not a video encoder"),
        ("vp8enc", "ENCODER: vp8enc makes"),
    ] {
        let out = direct_to_triton(&[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("RESULTS_DIR", dir.join("bad").to_str().unwrap()),
            ("MODEL_NAME", "shapes_nms"),
            ("ENCODER", enc),
        ])
        .run();
        assert_eq!(out.status.code(), Some(2), "{enc}: {}", text(&out));
        assert!(text(&out).contains(want), "{enc}: {}", text(&out));
        assert!(
            !dir.join("bad/frame_counts.jsonl").exists(),
            "{enc}: ran anyway"
        );
    }
}

/// `KSERVE=1` against MLServer (a KServe v2 server that is not Triton, with no class names:
/// `LABELS_FILE` names them) matches the drawn shapes; a missing labels file is exit 2.
#[test]
fn kserve_to_mlserver_matches_the_drawn_shapes() {
    let dir = tmpdir("kserve");
    let (clip, truth) = make_clip(&dir, 20, 640, 360);
    let ml = gst_triton_tests::mlserver::MlServer::start().unwrap();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "red\ngreen\nblue\nyellow\n").unwrap();
    let results = dir.join("results");
    let env = |labels: &str| {
        runner(
            &[
                ("VIDEO_PATH", clip.to_str().unwrap()),
                ("RESULTS_DIR", results.to_str().unwrap()),
                ("MODEL_NAME", "shapes_nms"),
                ("KSERVE", "1"),
                ("TRITON_URL", &ml.url()),
                ("LABELS_FILE", labels),
            ],
            &[],
        )
        .run()
    };
    let out = env(labels.to_str().unwrap());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("frames:      20 (20 ok"), "{t}");
    check_against_truth(&results.join("frame_counts.jsonl"), &truth, 20, 3.0);
    let out = env("/nonexistent/labels.txt");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("LABELS_FILE: cannot read"),
        "{}",
        text(&out)
    );
}

#[test]
fn clear_errors_and_exit_codes() {
    let dir = tmpdir("errors");
    let missing = runner(&[], &[]).run();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("VIDEO_PATH is required"),
        "{}",
        text(&missing)
    );

    let nofile = runner(&[("VIDEO_PATH", "/no/such/video.mp4")], &[]).run();
    assert_eq!(nofile.status.code(), Some(2));
    assert!(text(&nofile).contains("no such file: /no/such/video.mp4"));

    let (clip, _) = make_clip(&dir, 5, 320, 240);
    let dead = format!("127.0.0.1:{}", gst_triton_tests::triton::free_port());
    let bad_addr = runner(
        &[("VIDEO_PATH", clip.to_str().unwrap()), ("MM_ADDR", &dead)],
        &[],
    )
    .run();
    assert_eq!(bad_addr.status.code(), Some(3));
    assert!(
        text(&bad_addr).contains("cannot reach the proxy"),
        "{}",
        text(&bad_addr)
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt
        .block_on(TestProxy::start(
            &shared_url(),
            &["--grpc-expect-api-key", "the-right-key"],
        ))
        .unwrap();
    let wrong = runner(
        &[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("MM_ADDR", &proxy.addr.to_string()),
            ("DOMINO_API_KEY", "a-wrong-key"),
            ("MODEL_NAME", "shapes_nms"),
        ],
        &[],
    )
    .run();
    assert_eq!(wrong.status.code(), Some(3));
    let t = text(&wrong);
    assert!(
        t.contains("refused the credentials") && t.contains("DOMINO_API_KEY"),
        "{t}"
    );
    assert!(
        !t.contains("a-wrong-key") && !t.contains("the-right-key"),
        "{t}"
    );
    let unknown = runner(
        &[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("MM_ADDR", &proxy.addr.to_string()),
            ("DOMINO_API_KEY", "the-right-key"),
            ("MODEL_NAME", "nope"),
        ],
        &[],
    )
    .run();
    assert_eq!(unknown.status.code(), Some(3));
    assert!(text(&unknown).contains("MODEL_NAME"), "{}", text(&unknown));
    drop(proxy);
}

/// Ctrl-C (SIGINT) and a routine stop (SIGTERM: `podman stop`, systemd, Kubernetes) both finish
/// the files: the mp4 plays and has one picture per JSON line.
#[test]
fn ctrl_c_and_sigterm_finish_a_playable_mp4() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        interrupted_run_finishes_its_files(signal);
    }
}

fn interrupted_run_finishes_its_files(signal: i32) {
    let dir = tmpdir(&format!("signal-{signal}"));
    let (clip, _) = make_clip(&dir, 600, 640, 360);
    let results = dir.join("results");
    let child = direct_to_triton(&[
        ("VIDEO_PATH", clip.to_str().unwrap()),
        ("RESULTS_DIR", results.to_str().unwrap()),
        ("MODEL_NAME", "shapes_nms"),
        ("FPS_CAP", "30"),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until some frames are through, then the signal.
    let jsonl = results.join("frame_counts.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&jsonl).map(|m| m.len()).unwrap_or(0) < 2000 {
        assert!(
            std::time::Instant::now() < deadline,
            "runner made no progress"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    gst_triton_tests::stderr::assert_clean("triton-video", &out.stderr);
    let t = text(&out);
    assert!(out.status.success(), "signal {signal}: {t}");
    assert!(t.contains("interrupted"), "{t}");
    let n = decoded_frames(&results.join("annotated.mp4"));
    let lines = std::fs::read_to_string(&jsonl).unwrap().lines().count();
    assert!(n > 0 && n < 600, "{n} frames");
    assert_eq!(lines, n, "the JSON lines and the video agree");
}

/// A counting run (`TRACK`, `INTERVAL`, `LINES`, `REPORT_INTERVAL`) stopped routinely (SIGTERM)
/// exits 0 with its JSON lines whole: every frame line parses, frames count up from 0 without a
/// gap, the crossings so far on the last frame are the sum of the crossing events before it, and
/// the interval the stop fell in gets its summary line, marked partial. Killed (SIGKILL), it
/// leaves whole lines only, with the same consistency up to its last line.
#[test]
fn a_counting_run_stopped_or_killed_leaves_whole_consistent_lines() {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let dir = tmpdir(&format!("count-signal-{signal}"));
        let (clip, _) = make_clip(&dir, 900, 640, 360);
        let results = dir.join("results");
        let mut child = direct_to_triton(&[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("RESULTS_DIR", results.to_str().unwrap()),
            ("MODEL_NAME", "shapes_nms"),
            ("FPS_CAP", "30"),
            ("TRACK", "1"),
            ("INTERVAL", "2"),
            ("LINES", "mid 320,0 320,360"),
            ("REPORT_INTERVAL", "1"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let jsonl = results.join("frame_counts.jsonl");
        let crossed = || {
            std::fs::read_to_string(&jsonl)
                .map(|t| t.matches("\"event\":\"crossed\"").count())
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        // Some crossings are on disk (whole buffers of lines), so both stops have counts to keep.
        while crossed() < 3 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before the stop"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "no crossings within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        if signal == libc::SIGTERM {
            assert!(out.status.success(), "SIGTERM: {}", text(&out));
        } else {
            assert!(!out.status.success(), "SIGKILL ends it");
        }
        let text = std::fs::read_to_string(&jsonl).unwrap();
        assert!(
            text.ends_with('\n'),
            "signal {signal}: a cut line at the end"
        );
        let mut frames = Vec::new();
        let mut summaries = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("signal {signal}: line {}: {e}: {l}", i + 1));
            if v.get("summary").is_some() {
                summaries.push(v);
            } else {
                frames.push(v);
            }
        }
        assert!(frames.len() < 900, "stopped early: {} frames", frames.len());
        let mut events = 0u64;
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f["frame"].as_u64(), Some(i as u64), "signal {signal}: {f}");
            events += f["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event"] == "crossed")
                .count() as u64;
            for d in f["detections"].as_array().unwrap() {
                assert!(d.get("track_id").is_some(), "frame {i}: untracked {d}");
            }
        }
        let so_far: u64 = frames.last().unwrap()["lines"]["mid"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|l| l.as_object().unwrap().values())
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(so_far, events, "signal {signal}: totals vs events");
        assert!(!summaries.is_empty(), "signal {signal}: summary lines");
        if signal == libc::SIGTERM {
            let last = text.lines().last().unwrap();
            assert!(
                last.contains("\"summary\"") && last.contains("\"partial\":true"),
                "the stopped interval's summary comes last: {last}"
            );
        }
    }
}

/// A two-stage run (`CLASSIFIER_MODEL`: every detection cropped and classified by
/// `shapes_color`; the detector on a region, `ROI`) stopped routinely (SIGTERM) exits 0 with a
/// playable MP4 holding one picture per JSON line; killed (SIGKILL) it leaves whole lines only.
/// Either way every line parses, frames count up from 0 without a gap, and every detection on
/// every line carries the classifier's answer, its own colour: no frame is written between the
/// two stages' answers.
#[test]
fn a_two_stage_run_stopped_or_killed_leaves_whole_classified_lines() {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let dir = tmpdir(&format!("two-stage-signal-{signal}"));
        let (clip, _) = make_clip(&dir, 900, 640, 360);
        let results = dir.join("results");
        let child = direct_to_triton(&[
            ("VIDEO_PATH", clip.to_str().unwrap()),
            ("RESULTS_DIR", results.to_str().unwrap()),
            ("MODEL_NAME", "shapes_yolov8"),
            ("FPS_CAP", "30"),
            ("ROI", "0,0,640,360"),
            ("CLASSIFIER_MODEL", "shapes_color"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let jsonl = results.join("frame_counts.jsonl");
        let lines = || {
            std::fs::read_to_string(&jsonl)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while lines() < 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "no 20 lines within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let text_all = std::fs::read_to_string(&jsonl).unwrap();
        assert!(
            text_all.ends_with('\n'),
            "signal {signal}: a cut line at the end"
        );
        let mut classified = 0;
        let mut n = 0;
        for (i, l) in text_all.lines().enumerate() {
            let f: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("signal {signal}: line {}: {e}: {l}", i + 1));
            assert_eq!(f["frame"].as_u64(), Some(i as u64), "signal {signal}: {f}");
            assert_eq!(f["status"], "ok", "signal {signal}: {f}");
            for d in f["detections"].as_array().unwrap() {
                let a = &d["attributes"][0];
                assert_eq!(a["model"], "shapes_color", "signal {signal} frame {i}: {d}");
                assert_eq!(a["label"], d["label"], "signal {signal} frame {i}: {d}");
                classified += 1;
            }
            n += 1;
        }
        assert!(n < 900 && classified > 0, "{n} lines, {classified} objects");
        if signal == libc::SIGTERM {
            gst_triton_tests::stderr::assert_clean("triton-video", &out.stderr);
            assert!(out.status.success(), "SIGTERM: {}", text(&out));
            assert_eq!(
                decoded_frames(&results.join("annotated.mp4")),
                n,
                "the JSON lines and the video agree"
            );
        } else {
            assert!(!out.status.success(), "SIGKILL ends it");
        }
    }
}

/// `bytes` with the stretch `from..to` (fractions of the length) overwritten by pseudo-random
/// bytes, then cut to `keep` of its length.
fn damage(bytes: &[u8], from: f64, to: f64, keep: f64) -> Vec<u8> {
    let mut d = bytes.to_vec();
    let n = d.len() as f64;
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut d[(n * from) as usize..(n * to) as usize] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    d.truncate((n * keep) as usize);
    d
}

#[test]
fn max_frames_zero_undecodable_and_damaged_inputs() {
    let dir = tmpdir("inputs");
    let (clip, _) = make_clip(&dir, 90, 320, 240);
    let url = shared_url();
    let direct = [
        "--direct",
        "--triton-url",
        url.trim_start_matches("http://"),
    ];
    let run = |video: &Path, results: &str, extra: &[(&str, &str)]| {
        let results = dir.join(results);
        let mut env = vec![
            ("VIDEO_PATH", video.to_str().unwrap()),
            ("RESULTS_DIR", results.to_str().unwrap()),
            ("MODEL_NAME", "shapes_yolov8"),
        ];
        env.extend_from_slice(extra);
        let out = runner(&env, &direct).run();
        let t = text(&out);
        assert!(!t.contains("panicked"), "{t}");
        let lines = std::fs::read_to_string(results.join("frame_counts.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        (out.status.code(), t, lines)
    };

    // MAX_FRAMES=0 is "no limit", as in the seed's client.
    let (code, t, lines) = run(&clip, "all", &[("MAX_FRAMES", "0")]);
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("frames:      90 (90 ok"), "{t}");
    assert_eq!(lines, 90);
    assert!(!t.contains("warning"), "an intact file: {t}");

    // Nothing decodes: one line naming the file, exit 4, never 0.
    let junk = dir.join("junk.mp4");
    std::fs::write(&junk, b"not a video\n".repeat(200)).unwrap();
    let (code, t, _) = run(&junk, "junk", &[]);
    assert_eq!(code, Some(4), "{t}");
    let named: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("triton-video:"))
        .collect();
    assert_eq!(named.len(), 1, "{t}");
    assert!(
        named[0].starts_with(&format!(
            "triton-video: VIDEO_PATH: nothing could be decoded from {}",
            junk.display()
        )),
        "{t}"
    );

    // Damaged part way, in the two containers a camera recording comes in: garbled in the
    // middle (MP4), garbled and cut (MPEG-TS). Results for what decodes, a warning, exit 0.
    let ts = dir.join("in.ts");
    let mut remux = std::process::Command::new("gst-launch-1.0");
    remux
        .args(["-q", "filesrc", &format!("location={}", clip.display())])
        .args([
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "mpegtsmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", ts.display()));
    let remuxed = gst_triton_tests::stderr::output("gst-launch-1.0 remux", &mut remux);
    assert!(remuxed.status.success());
    // The warning needs packets the decoder gave no frame for: MP4's index keeps every packet
    // (the decoder drops the garbled ones); MPEG-TS's demuxer drops corrupt packets itself,
    // without a word, so a damaged TS gives its results and no warning (docs/pipelines.md).
    for (name, src, keep, warned) in [
        ("garbled.mp4", &clip, 1.0, true),
        ("cut.ts", &ts, 0.8, false),
    ] {
        let bad = dir.join(name);
        std::fs::write(&bad, damage(&std::fs::read(src).unwrap(), 0.45, 0.55, keep)).unwrap();
        let (code, t, lines) = run(&bad, &format!("out-{name}"), &[]);
        assert_eq!(code, Some(0), "{name}: {t}");
        assert!(lines > 10 && lines < 90, "{name}: {lines} frames: {t}");
        let warning = format!("triton-video: warning: VIDEO_PATH: only {lines} of the ");
        assert_eq!(t.contains(&warning), warned, "{name}: {t}");
        assert_eq!(
            t.contains(&bad.display().to_string()),
            warned,
            "{name}: {t}"
        );
        assert!(
            t.contains(&format!("frames:      {lines} ({lines} ok")),
            "{name}: {t}"
        );
    }
}

/// Waits for `child` at most `limit`; kills it and fails when it has not ended by then.
fn wait_at_most(child: &mut std::process::Child, limit: Duration, what: &str) -> i32 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_camera_unreachable_from_the_start_exits_5_when_given_up_and_sigterm_ends_it() {
    let dir = tmpdir("unreachable");
    // A port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("rtsp://127.0.0.1:{port}/cam");
    let results = dir.join("given-up");
    let mut c = direct_to_triton(&[
        ("VIDEO_PATH", &uri),
        ("RESULTS_DIR", results.to_str().unwrap()),
        ("MODEL_NAME", "shapes_yolov8"),
        ("CAMERA_GIVE_UP_SECS", "2"),
    ]);
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Before the fix it printed the give-up line and ran on for ever.
    let code = wait_at_most(&mut child, Duration::from_secs(60), "a given-up camera");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("did not come back within 2 s"), "{err}");

    // Never given up: SIGTERM ends it (the pipeline never started, so nothing is finished).
    let results = dir.join("stopped");
    let mut child = direct_to_triton(&[
        ("VIDEO_PATH", &uri),
        ("RESULTS_DIR", results.to_str().unwrap()),
        ("MODEL_NAME", "shapes_yolov8"),
        ("CAMERA_GIVE_UP_SECS", "0"),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // The pipeline is built and started when its JSON lines file exists.
    let jsonl = results.join("frame_counts.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !jsonl.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the runner ended by itself"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = wait_at_most(
        &mut child,
        Duration::from_secs(30),
        "SIGTERM on an unreachable camera",
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted, finishing the files"), "{err}");
    assert_eq!(code, 4, "no frame came, so no success: {err}");
}

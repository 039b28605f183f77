//! `triton-video`: the seed's client as a GStreamer pipeline (see [`runner::launch`]).
//!
//! Exit codes: 0 done, 1 pipeline error, 2 bad configuration or input, 3 server unreachable or
//! authentication refused, 4 no frame could be decoded from VIDEO_PATH, 5 the camera (a live
//! VIDEO_PATH) stayed away longer than CAMERA_GIVE_UP_SECS (the files are finished first).
//! With `--cameras FILE` ([`runner::fleet`]): 0 after SIGINT/SIGTERM, 2 or 3 before any start.

mod runner;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use runner::args::Args;
use runner::report::{self, Stats};

/// `eprintln!` through [`report::say`]: no credential of the run's URIs reaches stderr.
macro_rules! say {
    ($($t:tt)*) => { report::say(format_args!($($t)*)) };
}

fn fail(code: i32, msg: impl std::fmt::Display) -> ! {
    report::say(format_args!("triton-video: {msg}"));
    std::process::exit(code);
}

/// Exports the credentials for the element: through the environment it reads, never through the
/// pipeline string (which GStreamer may log).
fn export_credentials(a: &Args) {
    if let Some(k) = &a.domino_api_key {
        // SAFETY: still single-threaded: nothing has started a thread yet.
        unsafe { std::env::set_var("DOMINO_API_KEY", k) };
    }
    if let Some(t) = &a.grpc_bearer_token {
        // SAFETY: as above.
        unsafe { std::env::set_var("GRPC_BEARER_TOKEN", t) };
    }
}

fn init_gst() {
    if let Err(e) = gst::init() {
        fail(1, format!("GStreamer: {e}"));
    }
    if let Err(e) = gsttriton::plugin_register_static() {
        fail(1, format!("registering the triton plugin: {e}"));
    }
}

/// Checks the settings and the server.
fn prepare(a: &Args) -> String {
    let Some(video) = a.video_path.clone().filter(|v| !v.is_empty()) else {
        fail(
            2,
            "VIDEO_PATH is required: a video file or an rtsp:// URL (env VIDEO_PATH or --video-path), or CAMERAS_FILE (--cameras)",
        )
    };
    if !video.contains("://") && !std::path::Path::new(&video).is_file() {
        fail(2, format!("VIDEO_PATH: no such file: {video}"));
    }
    if let Err(f) = runner::preflight::preflight(a) {
        fail(f.code, f.message);
    }
    if let Err(e) = std::fs::create_dir_all(&a.results_dir) {
        fail(
            2,
            format!("RESULTS_DIR: cannot create {}: {e}", a.results_dir),
        );
    }
    video
}

/// The pipeline, and the encoder `ENCODER` chose (none with `ENCODER=none`).
fn build(a: &Args, video: &str) -> (gst::Pipeline, Option<triton_video::encoder::Chosen>) {
    init_gst();
    runner::launch::build(a, video).unwrap_or_else(|e| {
        let code = if e.starts_with("building the pipeline") {
            1
        } else {
            2
        };
        fail(code, e)
    })
}

fn static_pad(pipeline: &gst::Pipeline, element: &str, pad: &str) -> gst::Pad {
    pipeline
        .by_name(element)
        .and_then(|e| e.static_pad(pad))
        .unwrap_or_else(|| fail(1, format!("no {element}.{pad}")))
}

/// MAX_FRAMES: counts frames before the letterbox, drops any beyond the cap and says so.
fn cap_frames(pipeline: &gst::Pipeline, max: u64) -> Arc<AtomicBool> {
    let reached = Arc::new(AtomicBool::new(false));
    let seen = AtomicU64::new(0);
    let r = reached.clone();
    static_pad(pipeline, "letterbox", "sink").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if seen.fetch_add(1, Ordering::SeqCst) >= max {
                r.store(true, Ordering::SeqCst);
                // Take the buffer and say it was handled: GStreamer 1.22 answers a plain Drop here
                // with a GStreamer-CRITICAL (it unrefs the buffer the binding already gave back).
                drop(info.data.take());
                gst::PadProbeReturn::Handled
            } else {
                gst::PadProbeReturn::Ok
            }
        },
    );
    reached
}

/// How long the files may take to finish after EOS was sent (below the 10 s that `docker stop`
/// and `podman stop` wait before SIGKILL).
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Runs until EOS or an error; returns the exit code.
fn run(
    a: &Args,
    video: &str,
    pipeline: &gst::Pipeline,
    stats: &Mutex<Stats>,
    packets: &report::DemuxedPackets,
) -> i32 {
    let src = static_pad(pipeline, "infer", "src");
    let cap_reached = a.max_frames.map(|m| cap_frames(pipeline, m));
    // First Ctrl-C or SIGTERM: EOS, so the files are finished properly; second: abort.
    runner::signals::install(false);
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        fail(1, format!("cannot start the pipeline: {e}"));
    }
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let started = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(60);
    // When EOS was sent (a stop, MAX_FRAMES, a camera given up, damage): the files are finished
    // when it reaches the sinks, which it never does in a pipeline that never started (a camera
    // that never answered): past STOP_GRACE the run ends without it.
    let mut eos_at: Option<Instant> = None;
    let mut damaged: Option<String> = None;
    let mut camera_gone = false;
    let bus = pipeline.bus().unwrap_or_else(|| fail(1, "no bus"));
    loop {
        if let Some(t) = eos_at.filter(|t| t.elapsed() > STOP_GRACE) {
            say!(
                "\ntriton-video: the pipeline did not finish within {} s of its end (EOS sent {:.1} s ago); stopping it",
                STOP_GRACE.as_secs(),
                t.elapsed().as_secs_f64()
            );
            return if camera_gone {
                report::EXIT_CAMERA_GONE
            } else {
                1
            };
        }
        if runner::signals::stop_requested() && eos_at.is_none() {
            say!("\ntriton-video: interrupted, finishing the files (Ctrl-C again to abort)");
            pipeline.send_event(gst::event::Eos::new());
            eos_at = Some(Instant::now());
        }
        if cap_reached
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
            && eos_at.is_none()
        {
            pipeline.send_event(gst::event::Eos::new());
            eos_at = Some(Instant::now());
        }
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Eos(_) => {
                    let frames = stats.lock().unwrap().frames;
                    // (A camera's outages leave gaps in time that are no damage; a capped or
                    // stopped run leaves packets undecoded on purpose.)
                    let full_run = a.fps_cap.is_none()
                        && !runner::signals::stop_requested()
                        && !cap_reached
                            .as_ref()
                            .is_some_and(|c| c.load(Ordering::SeqCst))
                        && !gsttriton::camera::is_live(video);
                    let lost = full_run
                        .then(|| report::lost_frames_warning(video, frames, packets.get()))
                        .flatten();
                    if let Some(why) = damaged.take().or(lost) {
                        say!("\ntriton-video: warning: {why}");
                    }
                    return if camera_gone {
                        report::EXIT_CAMERA_GONE
                    } else {
                        0
                    };
                }
                gst::MessageView::Error(e) if msg.src().is_some_and(report::is_camera) => {
                    // The camera stayed away past CAMERA_GIVE_UP_SECS: finish the files, exit 5.
                    say!("\ntriton-video: VIDEO_PATH: {}", e.error());
                    if stats.lock().unwrap().frames == 0 {
                        // Nothing came, so nothing is to be finished.
                        return report::EXIT_CAMERA_GONE;
                    }
                    if eos_at.is_none() {
                        static_pad(pipeline, "letterbox", "sink")
                            .send_event(gst::event::Eos::new());
                        eos_at = Some(Instant::now());
                    }
                    camera_gone = true;
                }
                gst::MessageView::Error(e) => {
                    let frames = stats.lock().unwrap().frames;
                    let from_input = msg
                        .src()
                        .is_some_and(|s| report::is_input_element(s, pipeline));
                    if from_input && frames == 0 {
                        say!(
                            "\ntriton-video: VIDEO_PATH: nothing could be decoded from {}: {}",
                            video,
                            e.error()
                        );
                        return report::EXIT_UNDECODABLE;
                    }
                    if from_input && eos_at.is_none() {
                        // Damaged part way: keep what decoded and finish the files.
                        damaged = Some(format!(
                            "VIDEO_PATH: {} is damaged after {frames} frames ({}); the results cover the frames that decoded",
                            video,
                            e.error()
                        ));
                        static_pad(pipeline, "letterbox", "sink")
                            .send_event(gst::event::Eos::new());
                        eos_at = Some(Instant::now());
                        continue;
                    }
                    say!(
                        "\ntriton-video: {} ({})",
                        e.error(),
                        e.debug().unwrap_or_default()
                    );
                    return 1;
                }
                gst::MessageView::Warning(w) => say!("\ntriton-video: warning: {}", w.error()),
                _ => {}
            }
        }
        if last_print.elapsed() >= every {
            last_print = Instant::now();
            let (frames, errors) = {
                let s = stats.lock().unwrap();
                (s.frames, s.errors)
            };
            let fps = frames as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let total = report::total_frames(pipeline, &src, a.max_frames);
            report::print_progress(&report::progress_line(frames, errors, fps, total), tty);
        }
    }
}

fn main() {
    let a = Args::from_env();
    report::remember_secrets(&a);
    export_credentials(&a);
    if let Some(file) = &a.cameras_file {
        init_gst();
        std::process::exit(runner::fleet::run(&a, file));
    }
    let video = prepare(&a);
    let (pipeline, chosen) = build(&a, &video);
    let first = Stats {
        recording: runner::launch::recording_name(&video, &a.encoder),
        encoder: chosen.map(|c| c.summary()).unwrap_or_default(),
        ..Default::default()
    };
    let stats = Arc::new(Mutex::new(first));
    let src = static_pad(&pipeline, "infer", "src");
    let st = stats.clone();
    report::on_frame(&src, move |buf, w, h, _| {
        st.lock().unwrap().count(buf, w, h);
    });
    let packets = report::count_decoder_packets(&pipeline);
    let started = Instant::now();
    let mut code = run(&a, &video, &pipeline, &stats, &packets);
    {
        let mut s = stats.lock().unwrap();
        s.decoder = report::video_decoders(&pipeline);
        s.retimed = pipeline
            .by_name("retime")
            .map(|e| e.property::<u64>("repaired"))
            .unwrap_or(0);
    }
    let _ = pipeline.set_state(gst::State::Null);
    let s = stats.lock().unwrap();
    println!("\n{}", s.summary(started.elapsed(), &a.results_dir));
    if code == 0 && s.frames == 0 {
        // A run that processed nothing never reports success.
        say!("triton-video: VIDEO_PATH: no frame was decoded from {video}");
        code = report::EXIT_UNDECODABLE;
    }
    std::process::exit(code);
}

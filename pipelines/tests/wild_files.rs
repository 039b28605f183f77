//! Files the runner did not make, run with its defaults (`ENCODER=auto`, a recording and the
//! JSON lines): real sample videos from Debian's opencv-doc, and a corpus of quirks made here
//! with GStreamer (B-frames, an edit list, odd sizes, a rotation tag, interlaced, 10-bit, audio
//! tracks, variable frame rate, raw elementary streams without timestamps, timestamps that go
//! back, six containers and five codecs). Each must exit 0, write one JSON line per decoded
//! frame, and leave a recording that decodes to as many pictures.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{decoded_frames, tmpdir};
use gst_triton_tests::artifacts::opencv_sample;
use gst_triton_tests::triton::shared_url;

const RUNNER: &str = env!("CARGO_BIN_EXE_triton-video");

const SRC: &str = "videotestsrc pattern=ball num-buffers=48";
const CAPS: &str = "video/x-raw,width=320,height=240,framerate=24/1";

/// The quirky files: name and the `gst-launch-1.0` description that writes it (`{out}`: its path).
fn corpus() -> Vec<(&'static str, String)> {
    let enc = |caps: &str, tail: &str| format!("{SRC} ! {caps} ! {tail}");
    vec![
        (
            "h264-bframes.mp4",
            enc(
                CAPS,
                "x264enc bframes=3 b-adapt=false ! h264parse ! mp4mux ! filesink location={out}",
            ),
        ),
        (
            "h264-starts-at-1s.mov",
            format!(
                "{SRC} timestamp-offset=1000000000 ! {CAPS} ! x264enc ! h264parse ! qtmux ! filesink location={{out}}"
            ),
        ),
        (
            "vp8-641x479.webm",
            enc(
                "video/x-raw,width=641,height=479,framerate=24/1",
                "vp8enc deadline=1 ! webmmux ! filesink location={out}",
            ),
        ),
        (
            "h264-rotate-90.mp4",
            enc(
                CAPS,
                "x264enc ! h264parse ! taginject tags=image-orientation=rotate-90 ! mp4mux ! filesink location={out}",
            ),
        ),
        (
            "h264-interlaced.mkv",
            enc(
                "video/x-raw,width=320,height=240,framerate=48/1",
                "interlace field-pattern=1:1 ! x264enc interlaced=true ! h264parse ! matroskamux ! filesink location={out}",
            ),
        ),
        (
            "h264-10bit.mp4",
            enc(
                CAPS,
                "videoconvert ! video/x-raw,format=I420_10LE ! x264enc ! h264parse ! mp4mux ! filesink location={out}",
            ),
        ),
        (
            "h265.mkv",
            enc(
                CAPS,
                "x265enc speed-preset=ultrafast ! h265parse ! matroskamux ! filesink location={out}",
            ),
        ),
        (
            "vp9-opus.webm",
            format!(
                "webmmux name=m ! filesink location={{out}} {SRC} ! {CAPS} ! vp9enc deadline=1 cpu-used=8 ! m. \
                 audiotestsrc num-buffers=100 ! audioconvert ! opusenc ! m."
            ),
        ),
        (
            "h264-aac.mp4",
            format!(
                "mp4mux name=m ! filesink location={{out}} {SRC} ! {CAPS} ! x264enc ! h264parse ! m. \
                 audiotestsrc num-buffers=100 ! audioconvert ! avenc_aac ! m."
            ),
        ),
        (
            // Frames dropped at random before the encoder: gaps of one, two or more frames.
            "h264-variable-rate.mp4",
            enc(
                CAPS,
                "identity drop-probability=0.3 ! x264enc ! h264parse ! mp4mux ! filesink location={out}",
            ),
        ),
        (
            // An elementary stream: no container, no timestamps.
            "raw.h264",
            enc(
                CAPS,
                "x264enc ! h264parse ! video/x-h264,stream-format=byte-stream ! filesink location={out}",
            ),
        ),
        (
            "h264.ts",
            enc(
                CAPS,
                "x264enc ! h264parse ! mpegtsmux ! filesink location={out}",
            ),
        ),
        (
            "mpeg4.avi",
            enc(CAPS, "avenc_mpeg4 ! avimux ! filesink location={out}"),
        ),
        (
            "av1.mkv",
            format!(
                "videotestsrc pattern=ball num-buffers=24 ! {CAPS} ! av1enc cpu-used=8 ! av1parse ! matroskamux ! filesink location={{out}}"
            ),
        ),
    ]
}

fn make(dir: &Path, name: &str, desc: &str) -> PathBuf {
    let out = dir.join(name);
    let desc = desc.replace("{out}", &out.display().to_string());
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-q").arg("-e").args(desc.split_whitespace());
    let o = gst_triton_tests::stderr::output("gst-launch-1.0 (corpus)", &mut c);
    assert!(
        o.status.success(),
        "{name}: {desc}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Runs the runner with its defaults on `video`; checks exit 0, one JSON line per decoded frame,
/// a recording of as many pictures, no damage reported. Returns the output.
fn run_defaults(video: &Path, results: &Path) -> String {
    let url = shared_url();
    let mut c = Command::new(RUNNER);
    for k in [
        "ENCODER",
        "MAX_FRAMES",
        "FPS_CAP",
        "MM_ADDR",
        "TRACK",
        "INTERVAL",
    ] {
        c.env_remove(k);
    }
    c.env("VIDEO_PATH", video)
        .env("RESULTS_DIR", results)
        .env("MODEL_NAME", "shapes_yolov8")
        .args([
            "--direct",
            "--triton-url",
            url.trim_start_matches("http://"),
        ]);
    let o = gst_triton_tests::stderr::output("triton-video", &mut c);
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let name = video.display();
    assert_eq!(o.status.code(), Some(0), "{name}: {t}");
    let decoded = decoded_frames(video);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(results.join("frame_counts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        decoded,
        "{name}: one line per decoded frame: {t}"
    );
    assert!(
        lines.iter().all(|l| l["status"] == "ok"),
        "{name}: every frame answered: {t}"
    );
    assert_eq!(
        decoded_frames(&results.join("annotated.mp4")),
        decoded,
        "{name}: the recording has one picture per frame: {t}"
    );
    assert!(!t.contains("damaged"), "{name}: an intact file: {t}");
    t
}

#[test]
fn real_sample_videos_from_debian_run_with_the_defaults() {
    let dir = tmpdir("wild-real");
    // Megamind.avi: MPEG-4 with packed B-frames, whose decoded frames repeat timestamps (x264 then
    // gave mp4mux buffers without PTS); Megamind_bugy.avi: a damaged copy; tree.avi: Cinepak
    // with repeated (empty) frames, a variable rate.
    for (name, retimed) in [
        ("Megamind.avi", true),
        ("Megamind_bugy.avi", true),
        ("tree.avi", false),
    ] {
        let video = opencv_sample(&dir, name);
        let t = run_defaults(&video, &dir.join(format!("out-{name}")));
        assert_eq!(
            t.contains("frames retimed for the recording"),
            retimed,
            "{name}: {t}"
        );
    }
}

#[test]
fn a_corpus_of_quirky_files_runs_with_the_defaults() {
    let dir = tmpdir("wild-corpus");
    let mut files: Vec<PathBuf> = corpus()
        .iter()
        .map(|(name, desc)| make(&dir, name, desc))
        .collect();
    // Two MPEG-TS recordings joined: the timestamps go back where the second starts.
    let joined = dir.join("joined.ts");
    let ts = std::fs::read(dir.join("h264.ts")).unwrap();
    std::fs::write(&joined, [ts.as_slice(), ts.as_slice()].concat()).unwrap();
    files.push(joined);
    for f in &files {
        let results = dir.join(format!("out-{}", f.file_name().unwrap().to_string_lossy()));
        run_defaults(f, &results);
    }
}

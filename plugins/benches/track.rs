//! ByteTrack's cost per frame at 100 objects: dettrack's tracker (`gsttriton::track`) against
//! the Python reference (Roboflow's `trackers` ByteTrack, `scripts/track_reference.py time`, in
//! `.venv-track` from scripts/setup.sh) on the same detections, in the same run.
//!
//! The scene: 100 boxes (40×80) moving at constant speeds on a 1920×1080 frame, turning at the
//! edges, jittered by up to a pixel, one detection in twenty missing, 300 frames. Only work
//! that succeeded counts: each side must give an id to at least 90 % of the detections after
//! the first frames, else the run fails.
//! `cargo bench -p gst-plugin-triton --bench track`

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use gsttriton::track::{Detection, Params, Tracker};

const OBJECTS: usize = 100;
const FRAMES: usize = 300;

/// A small deterministic generator (xorshift), so both sides see the same scene every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn scene() -> Vec<Vec<Detection>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (w, h) = (1920.0f32, 1080.0f32);
    let mut objs: Vec<[f32; 4]> = (0..OBJECTS)
        .map(|k| {
            let (col, row) = ((k % 10) as f32, (k / 10) as f32);
            [
                40.0 + col * 185.0,
                20.0 + row * 105.0,
                (rng.next() - 0.5) * 8.0,
                (rng.next() - 0.5) * 2.0,
            ]
        })
        .collect();
    (0..FRAMES)
        .map(|_| {
            let mut dets = Vec::new();
            for o in objs.iter_mut() {
                o[0] += o[2];
                o[1] += o[3];
                if o[0] < 0.0 || o[0] + 40.0 > w {
                    o[2] = -o[2];
                }
                if o[1] < 0.0 || o[1] + 80.0 > h {
                    o[3] = -o[3];
                }
                if rng.next() < 0.05 {
                    continue;
                }
                let j = |r: &mut Rng| (r.next() - 0.5) * 2.0;
                let (x, y) = (o[0] + j(&mut rng), o[1] + j(&mut rng));
                dets.push(Detection {
                    bbox: [x, y, x + 40.0, y + 80.0],
                    score: 0.6 + 0.4 * rng.next(),
                    class_id: 0,
                });
            }
            dets
        })
        .collect()
}

fn write_jsonl(path: &Path, frames: &[Vec<Detection>]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (i, dets) in frames.iter().enumerate() {
        let dets: Vec<_> = dets
            .iter()
            .map(|d| serde_json::json!({"label": "person", "class_id": 0, "confidence": d.score, "box": d.bbox}))
            .collect();
        writeln!(f, "{}", serde_json::json!({"frame": i, "detections": dets})).unwrap();
    }
}

fn main() {
    let frames = scene();
    let detections: usize = frames.iter().map(Vec::len).sum();
    let mut best = Duration::MAX;
    let mut tracked = 0;
    for _ in 0..5 {
        let mut t = Tracker::new(Params::default());
        let start = Instant::now();
        let outs: Vec<_> = frames.iter().map(|f| t.update(f)).collect();
        best = best.min(start.elapsed());
        tracked = outs
            .iter()
            .map(|o| o.ids.iter().filter(|i| i.is_some()).count())
            .sum();
    }
    let ours_ms = best.as_secs_f64() * 1000.0 / FRAMES as f64;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-track/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    let file = std::env::temp_dir().join(format!("track-bench-{}.jsonl", std::process::id()));
    write_jsonl(&file, &frames);
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/track_reference.py"))
        .args([
            "time",
            "--detections",
            file.to_str().unwrap(),
            "--repeat",
            "3",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (ref_ms, ref_tracked) = (
        r["ms_per_frame"].as_f64().unwrap(),
        r["tracked"].as_u64().unwrap() as usize,
    );
    for (name, n) in [("dettrack", tracked), ("reference", ref_tracked)] {
        assert!(
            n * 10 >= detections * 9,
            "{name} gave ids to {n} of {detections} detections: not the work measured"
        );
    }
    println!(
        "ByteTrack, {OBJECTS} objects x {FRAMES} frames: dettrack {ours_ms:.3} ms/frame ({tracked} ids given), \
         Python reference {ref_ms:.3} ms/frame ({ref_tracked} ids given): {:.0}x",
        ref_ms / ours_ms
    );
}

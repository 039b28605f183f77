//! How many cameras fit: 1280×720 15 f/s H.264 cameras (loopback RTSP servers, `rtsp_camera`
//! processes) read by one `triton-video --cameras` (release build, ENCODER=none: JSON lines only)
//! through the proxy to Triton with `shapes_nms`, stepping up the number of cameras until the
//! runner no longer keeps every camera in real time.
//!
//! Per step, over a 20-s window after every camera is flowing: frames per second per camera (ok
//! frames only), the runner's CPU per camera (user + system, from /proc), and the machine's busy
//! cores split into the runner, the loopback cameras (their encoders share this machine) and the
//! rest (Triton, the proxy). Real time: every camera at ≥ 95 % of 15 f/s with no error frame.
//! Two series: the model at 640×640 (as deployed) and at 320×320 (the CPU Triton is the limit at
//! 640 on a small machine; at 320 it leaves room to load the runner). Baseline in the same run:
//! the same cameras, one `triton-video` process per camera (the way to run many cameras before
//! `--cameras`), at the largest real-time count of the 320 series.
//!
//! The run fails when one camera alone is not real time or has errors (nothing was measured).
//! `cargo bench -p gst-triton-tests --bench cameras`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst_triton_tests::artifacts::release_bin;
use gst_triton_tests::camera::{Camera, lines, tmpdir, wait_ok_after};
use gst_triton_tests::cpu_secs;
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::triton::{Triton, free_port};

const MODE: (u32, u32, u32) = (1280, 720, 15);
const WINDOW: Duration = Duration::from_secs(20);
const STEPS: [usize; 6] = [1, 2, 3, 4, 6, 8];

/// Busy CPU seconds of the whole machine (all cores, from /proc/stat).
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    (cpu.iter().take(8).sum::<f64>() - cpu[3] - cpu[4]) / 100.0
}

struct Snapshot {
    at: Instant,
    ok: Vec<usize>,
    not_ok: Vec<usize>,
    runners: f64,
    cameras: f64,
    machine: f64,
}

fn snapshot(jsons: &[PathBuf], runners: &[u32], cams: &[Camera]) -> Snapshot {
    let (mut ok, mut not_ok) = (Vec::new(), Vec::new());
    for j in jsons {
        let l = lines(j);
        let k = l.iter().filter(|l| l["status"] == "ok").count();
        ok.push(k);
        not_ok.push(l.len() - k);
    }
    Snapshot {
        at: Instant::now(),
        ok,
        not_ok,
        runners: runners.iter().map(|p| cpu_secs(Some(*p), None)).sum(),
        cameras: cams
            .iter()
            .filter_map(|c| c.pid())
            .map(|p| cpu_secs(Some(p), None))
            .sum(),
        machine: machine_busy_secs(),
    }
}

struct Step {
    fps: Vec<f64>,
    errors: usize,
    runner_cores: f64,
    camera_cores: f64,
    other_cores: f64,
}

impl Step {
    fn real_time(&self) -> bool {
        self.errors == 0 && self.fps.iter().all(|f| *f >= 0.95 * MODE.2 as f64)
    }
}

fn runner(
    bin: &Path,
    proxy: &ProxyProcess,
    dir: &Path,
    cameras: Option<&Path>,
    side: u32,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("MM_ADDR", proxy.url())
        .env("IMG_SIZE", side.to_string())
        .env("DOMINO_API_KEY", "test-key")
        .env("MODEL_NAME", "shapes_nms")
        .env("ENCODER", "none")
        .env("RESULTS_DIR", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap());
    if let Some(f) = cameras {
        cmd.arg("--cameras").arg(f);
    }
    cmd
}

/// `n` cameras through one runner (`one_process`) or one runner per camera, the model at
/// `side`×`side`.
fn step(bin: &Path, proxy: &ProxyProcess, n: usize, one_process: bool, side: u32) -> Step {
    let cams: Vec<Camera> = (0..n)
        .map(|_| Camera::start_with(free_port(), MODE))
        .collect();
    let dir = tmpdir(&format!("bench-{n}-{one_process}"));
    let mut hosts: Vec<Child> = Vec::new();
    let jsons: Vec<PathBuf>;
    if one_process {
        let file = dir.join("cameras.toml");
        let text: String = cams
            .iter()
            .enumerate()
            .map(|(i, c)| format!("[[camera]]\nname = \"c{i}\"\nuri = \"{}\"\n\n", c.url()))
            .collect();
        std::fs::write(&file, text).unwrap();
        hosts.push(runner(bin, proxy, &dir, Some(&file), side).spawn().unwrap());
        jsons = (0..n)
            .map(|i| dir.join(format!("c{i}")).join("frame_counts.jsonl"))
            .collect();
    } else {
        jsons = (0..n)
            .map(|i| dir.join(format!("c{i}")).join("frame_counts.jsonl"))
            .collect();
        for (i, c) in cams.iter().enumerate() {
            let d = dir.join(format!("c{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let mut cmd = runner(bin, proxy, &d, None, side);
            cmd.env("VIDEO_PATH", c.url())
                .env("STREAM_ID", format!("c{i}"));
            hosts.push(cmd.spawn().unwrap());
        }
    }
    for (i, j) in jsons.iter().enumerate() {
        let h = if one_process { 0 } else { i };
        wait_ok_after(&mut hosts[h], j, 0, 15, &format!("camera {i} of {n}"));
    }
    let pids: Vec<u32> = hosts.iter().map(|h| h.id()).collect();
    let a = snapshot(&jsons, &pids, &cams);
    std::thread::sleep(WINDOW); // the measurement window itself
    let b = snapshot(&jsons, &pids, &cams);
    for h in &mut hosts {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(h.id() as i32, libc::SIGKILL) };
        let _ = h.wait();
    }
    drop(cams);
    let _ = std::fs::remove_dir_all(&dir);
    let t = b.at.duration_since(a.at).as_secs_f64();
    let runner_cores = (b.runners - a.runners) / t;
    let camera_cores = (b.cameras - a.cameras) / t;
    Step {
        fps: (0..n).map(|i| (b.ok[i] - a.ok[i]) as f64 / t).collect(),
        errors: (0..n).map(|i| b.not_ok[i] - a.not_ok[i]).sum(),
        runner_cores,
        camera_cores,
        other_cores: ((b.machine - a.machine) / t - runner_cores - camera_cores).max(0.0),
    }
}

fn print(label: &str, n: usize, s: &Step) {
    let min = s.fps.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{label:<20} {n:>2} cameras: min {min:5.1} f/s, errors {:>3}, runner {:.2} cores ({:.3} per camera, {:.1} ms per frame), cameras {:.2}, Triton+proxy+rest {:.2}{}",
        s.errors,
        s.runner_cores,
        s.runner_cores / n as f64,
        1000.0 * s.runner_cores / (n as f64 * MODE.2 as f64),
        s.camera_cores,
        s.other_cores,
        if s.real_time() {
            ""
        } else {
            "  (not real time)"
        }
    );
}

fn main() {
    let bin = release_bin("triton-video");
    let triton = Triton::start().expect("Triton");
    let proxy = ProxyProcess::start_release(&triton.url(), &[]);
    println!(
        "cameras: {}x{} {} f/s H.264 over loopback RTSP; shapes_nms (FP32) through the proxy; ENCODER=none; window {} s; {} cores",
        MODE.0,
        MODE.1,
        MODE.2,
        WINDOW.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // 640x640 as deployed; 320x320 makes the CPU Triton cheap enough to load the runner itself.
    let mut last = (0, None);
    for side in [640, 320] {
        let mut fit = (0, None);
        for n in STEPS {
            let s = step(&bin, &proxy, n, true, side);
            print(&format!("{side}: one runner"), n, &s);
            if !s.real_time() {
                assert!(
                    n > 1,
                    "one camera alone is not real time: nothing to report"
                );
                break;
            }
            fit = (n, Some(s));
        }
        println!(
            "model at {side}x{side}: largest real-time count with one runner: {}",
            fit.0
        );
        last = fit;
    }
    let (n, ours) = (last.0, last.1.expect("at least one step"));
    let base = step(&bin, &proxy, n, false, 320);
    print("320: one per camera", n, &base);
    println!(
        "runner CPU per camera at {n} cameras: one process per camera / one runner = {:.2}",
        base.runner_cores / ours.runner_cores.max(1e-9)
    );
    drop(triton);
}

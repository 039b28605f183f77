//! A rolling restart, as a deploy does it, under four live cameras in one `gst-launch-1.0`
//! process (a C host): two Triton replicas behind one proxy process; replica A is stopped
//! gracefully (SIGTERM) and started again, then replica B the same, then the proxy itself is
//! stopped gracefully and started again 2 s later on the same address.
//!
//! What it proves: while at least one replica is ready no frame gets an error result (the
//! proxy sends what the stopping replica refuses to the other one); the proxy's own restart,
//! 2 s on the same address, costs no frame either (the cameras' frames wait for it: under
//! `timeout-ms` and the client's `RESTART_WAIT`); every frame of every camera has its JSON line,
//! in order (none is lost), and the host never dies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst_triton_tests::artifacts::plugin_dir;
use gst_triton_tests::proxy::ProxyProcess;
use gst_triton_tests::stderr;
use gst_triton_tests::triton::Triton;

const CAMERAS: usize = 4;
const MODEL: &str = "shapes_nms";

/// Each camera's result statuses so far ("ok", "error", ...), one per JSON line.
fn statuses(files: &[PathBuf]) -> Vec<Vec<String>> {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| v["status"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

/// Waits until every camera has `more` lines beyond `from` and the last `ok_tail` of each are
/// all "ok", while the host keeps running; the line counts then.
fn wait_cameras(
    host: &mut Child,
    files: &[PathBuf],
    from: &[usize],
    more: usize,
    ok_tail: usize,
    what: &str,
) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = statuses(files);
        let done = s
            .iter()
            .zip(from)
            .all(|(c, &f)| c.len() >= f + more && c[c.len() - ok_tail..].iter().all(|s| s == "ok"));
        if done {
            return s.iter().map(Vec::len).collect();
        }
        if let Ok(Some(st)) = host.try_wait() {
            panic!("{what}: gst-launch-1.0 ended: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: cameras not answered within 120 s: {:?}",
            s.iter()
                .map(|c| c.iter().rev().take(30).cloned().collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn camera_branch(i: usize, url: &str, file: &Path) -> String {
    // A different moving pattern per camera; small tensors keep four cameras within two cores.
    let pattern = ["ball", "snow", "smpte", "pinwheel"][i % 4];
    format!(
        "videotestsrc is-live=true pattern={pattern} \
         ! video/x-raw,width=320,height=240,framerate=20/1 \
         ! tritonletterbox width=160 height=160 \
         ! tritoninfer url={url} transport=proxy api-key=test-key model={MODEL} on-error=skip \
         timeout-ms=5000 ! detjsonsink location={} ",
        file.display()
    )
}

#[test]
fn a_rolling_restart_of_both_replicas_then_the_proxy_under_four_cameras_loses_no_frame() {
    let (a, b) = Triton::start_two().unwrap();
    let mut proxy = ProxyProcess::start(
        &format!("{},{}", a.url(), b.url()),
        &["--proxy-drain-secs", "10", "--triton-timeout-secs", "10"],
    );
    let dir = std::env::temp_dir().join(format!("rolling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..CAMERAS)
        .map(|i| dir.join(format!("camera{i}.jsonl")))
        .collect();
    let line: String = (0..CAMERAS)
        .map(|i| camera_branch(i, &proxy.url(), &files[i]))
        .collect();
    let mut host = Command::new("gst-launch-1.0")
        .arg("-e")
        .args(line.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0");

    let mut counts = wait_cameras(&mut host, &files, &[0; CAMERAS], 40, 20, "start");
    let mut replicas = [("A", a), ("B", b)];
    for (name, replica) in replicas.iter_mut() {
        replica.terminate();
        let exit = replica.wait_stopped(Duration::from_secs(60));
        assert!(
            exit.is_some(),
            "replica {name}: no exit within 60 s of SIGTERM"
        );
        counts = wait_cameras(&mut host, &files, &counts, 20, 20, name);
        replica.restart().unwrap();
        // Served again by both: 40 more frames each after the restart.
        counts = wait_cameras(&mut host, &files, &counts, 40, 20, name);
    }
    // Everything so far was answered; from here the proxy is away for a while.
    let before_proxy = counts.clone();
    let exit = proxy.terminate();
    assert!(exit.success(), "the proxy's exit after SIGTERM: {exit}");
    std::thread::sleep(Duration::from_secs(2));
    proxy.restart();
    wait_cameras(&mut host, &files, &before_proxy, 20, 20, "proxy restart");

    // SAFETY: a signal to our own child (Ctrl-C: -e turns it into EOS).
    unsafe {
        libc::kill(host.id() as i32, libc::SIGINT);
    }
    let out = host.wait_with_output().expect("gst-launch-1.0 output");
    stderr::assert_clean("gst-launch-1.0", &out.stderr);
    assert!(
        out.status.success(),
        "gst-launch-1.0 ended with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut costs = Vec::new();
    for (c, file) in files.iter().enumerate() {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(
                l["frame"], i as u64,
                "camera {c}: one line per frame, in order"
            );
        }
        for l in &lines[..before_proxy[c]] {
            assert_eq!(
                l["status"], "ok",
                "camera {c}: an error while a replica was ready: {l}"
            );
        }
        let errors: Vec<&serde_json::Value> = lines[before_proxy[c]..]
            .iter()
            .filter(|l| l["status"] != "ok")
            .collect();
        assert!(
            errors.is_empty(),
            "camera {c}: the proxy's 2-s restart cost {} frames: {:?}",
            errors.len(),
            errors.first()
        );
        costs.push(lines.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "rolling restart: frames per camera {costs:?}; 0 errors during the replica restarts and \
         the proxy's"
    );
}

//! The pipeline files as the tests run them: loaded with `${VAR}`s filled in, and the loopback
//! RTSP server that plays their camera and records their RTSP output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gst_rtsp_server::prelude::*;
use gst_triton_tests::triton::shared_url;

pub use gst_triton_tests::pipeline::init;

pub fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pipeline"))
        .collect();
    v.sort();
    v
}

pub fn load(name: &str, vars: &HashMap<&str, String>) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap();
    gst_triton_tests::pipeline::expand_pipeline_file(&text, |k| vars.get(k).cloned())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .count()
}

pub fn vars(dir: &Path, clip: &Path, mm: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("VIDEO_PATH", clip.display().to_string()),
        ("VIDEO_PATH_2", clip.display().to_string()),
        ("RESULTS_DIR", dir.display().to_string()),
        ("MM_URL", mm.to_string()),
        ("TRITON_URL", shared_url()),
        ("MODEL_NAME", "shapes_nms".into()),
        ("RTSP_URL", "rtsp://127.0.0.1:1/cam".into()),
        ("RTSP_OUT_URL", "rtsp://127.0.0.1:1/out".into()),
        ("INTERVAL", "2".into()),
        ("RULES_FILE", dir.join("rules.txt").display().to_string()),
        ("REPORT_INTERVAL", "1".into()),
        ("CLASSIFIER_MODEL", "shapes_color".into()),
    ])
}

/// An RTSP server on 127.0.0.1: each `(mount, clip)` plays the clip (an MP4 of H.264) from its
/// start to its end for every client; `/out` records H.264 into `out`, and `/replay` serves it.
pub fn rtsp_server(cams: &[(&str, &Path)], out: &Path) -> (u16, gst::glib::MainLoop) {
    init();
    let ctx = gst::glib::MainContext::new();
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    let mounts = server.mount_points().unwrap();
    for (mount, clip) in cams {
        let cam = gst_rtsp_server::RTSPMediaFactory::new();
        cam.set_launch(&format!(
            "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )",
            clip.display()
        ));
        mounts.add_factory(mount, cam);
    }
    let rec = gst_rtsp_server::RTSPMediaFactory::new();
    rec.set_transport_mode(gst_rtsp_server::RTSPTransportMode::RECORD);
    rec.set_launch(&format!(
        "( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink buffer-mode=unbuffered location={} )",
        out.display()
    ));
    mounts.add_factory("/out", rec);
    // What /out recorded, served again for read-back over RTSP.
    let replay = gst_rtsp_server::RTSPMediaFactory::new();
    replay.set_launch(&format!(
        "( filesrc location={} ! tsdemux ! h264parse ! rtph264pay name=pay0 pt=96 )",
        out.display()
    ));
    mounts.add_factory("/replay", replay);
    let _id = server.attach(Some(&ctx)).unwrap();
    let port = server.bound_port() as u16;
    let ml = gst::glib::MainLoop::new(Some(&ctx), false);
    let ml2 = ml.clone();
    std::thread::spawn(move || {
        let _server = server;
        ml2.run();
    });
    (port, ml)
}

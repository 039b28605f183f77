//! `rtsp_camera`: a live camera on loopback for the camera-outage tests — GStreamer's RTSP server
//! serving a moving test picture as H.264 at `rtsp://127.0.0.1:PORT/cam`, until it is killed or
//! stopped. SIGTERM is a graceful stop: the stream ends (EOS: RTCP BYE to its clients) and the
//! process exits 0 a second later.
//!
//! Usage: `rtsp_camera PORT [WIDTH HEIGHT FPS [SCENE]]` (default 640 360 15 ball). SCENE `ball`:
//! videotestsrc's moving ball (nothing the test models detect); `box`: a still red box on grey,
//! which the `shapes_*` models detect (confidence 0.9). Prints `ready` on stdout once it listens.

use std::sync::atomic::{AtomicBool, Ordering};

use gst_rtsp_server::prelude::*;

/// SIGTERM came: end the stream, then exit.
static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u32| -> u32 {
        args.get(i).map_or(d, |v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("rtsp_camera: argument {i}: expected a whole number, got '{v}'");
                std::process::exit(2)
            })
        })
    };
    let Some(port) = args.first() else {
        eprintln!("rtsp_camera: usage: rtsp_camera PORT [WIDTH HEIGHT FPS]");
        std::process::exit(2)
    };
    let (w, h, fps) = (num(1, 640), num(2, 360), num(3, 15));
    gst::init().expect("GStreamer");
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let cam = gst_rtsp_server::RTSPMediaFactory::new();
    let raw = format!("video/x-raw,width={w},height={h},framerate={fps}/1");
    let encode = format!(
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} \
         ! rtph264pay name=pay0 pt=96 config-interval=1"
    );
    let launch = match args.get(4).map(String::as_str).unwrap_or("ball") {
        "ball" => format!("( videotestsrc is-live=true pattern=ball ! {raw} ! {encode} )"),
        "box" => format!(
            "( compositor name=m sink_1::xpos={} sink_1::ypos={} ! {raw} ! videoconvert ! {encode} \
             videotestsrc is-live=true pattern=solid-color foreground-color=0xff505050 ! {raw} ! m. \
             videotestsrc is-live=true pattern=solid-color foreground-color=0xffff0000 \
             ! video/x-raw,width={},height={},framerate={fps}/1 ! m. )",
            w / 5,
            h / 4,
            w / 4,
            h / 3
        ),
        other => {
            eprintln!("rtsp_camera: SCENE: expected ball or box, got '{other}'");
            std::process::exit(2)
        }
    };
    cam.set_launch(&launch);
    cam.set_shared(true);
    let medias = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let m2 = medias.clone();
    cam.connect_media_configure(move |_, media| m2.lock().unwrap().push(media.clone()));
    server
        .mount_points()
        .expect("mounts")
        .add_factory("/cam", cam);
    let main_loop = gst::glib::MainLoop::new(None, false);
    let _id = server.attach(None).unwrap_or_else(|e| {
        eprintln!("rtsp_camera: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    let quit = main_loop.clone();
    gst::glib::timeout_add_local(std::time::Duration::from_millis(50), move || {
        if !TERM.load(Ordering::SeqCst) {
            return gst::glib::ControlFlow::Continue;
        }
        for m in medias.lock().unwrap().iter() {
            m.element().send_event(gst::event::Eos::new());
        }
        let quit = quit.clone();
        gst::glib::timeout_add_local_once(std::time::Duration::from_secs(1), move || quit.quit());
        gst::glib::ControlFlow::Break
    });
    println!("ready");
    main_loop.run();
}

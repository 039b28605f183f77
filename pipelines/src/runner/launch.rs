//! The pipeline `triton-video` runs, as a `gst-launch` description.
//!
//! `source ! decodebin ! videoconvert ! tritonletterbox ! tritoninfer [! dettrack [! detcount]] ! tee`
//!   → `detoverlay ! videoconvert ! ptsrepair ! ENCODER ! mp4mux ! filesink RESULTS_DIR/annotated.mp4`
//!     (`ptsrepair`: real files decode to frames with missing or repeated timestamps, which
//!     encoders and muxers refuse; [`EVEN`]: an odd width or height, which x264 refuses, is
//!     scaled to the nearest even one, the pixel aspect ratio kept)
//!     (a camera: `tritoncamerasrc` as the source, `mpegtsmux` into `annotated.ts`)
//!   → `detjsonsink RESULTS_DIR/frame_counts.jsonl`
//!
//! Credentials never go into the description (GStreamer logs it at `GST_DEBUG` level): the
//! element reads the keys from the environment, and the URI and the server address, which may
//! carry a user-info or a token, are set on the parsed pipeline by [`build`].

use triton_endpoint::normalize_url;

use super::args::{Args, Encoder};
use gsttriton::letterbox::region::RoiSpec;
use triton_video::encoder::{self, Chosen, Container};

/// The recording's frames have an even width and height (4:2:0 encoders, x264 among them, refuse
/// odd ones: "Can not initialize x264 encoder" on a 641×479 file); `videoscale` passes even
/// sizes through untouched.
pub const EVEN: &str = "videoscale ! video/x-raw,width=(int)[2,32768,2],height=(int)[2,32768,2]";

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The annotated recording's file name: MPEG-TS for a camera (it plays however the run ends, and
/// takes the one caps change a camera's start may bring), MP4 for a file; none with ENCODER=none.
pub fn recording_name(video: &str, encoder: &Encoder) -> &'static str {
    if *encoder == Encoder::None {
        ""
    } else if gsttriton::camera::is_live(video) {
        "annotated.ts"
    } else {
        "annotated.mp4"
    }
}

/// Whether `a.encoder` can make this input's recording (the check [`pipeline_description`]
/// makes, without building anything): `Err` names what is wrong, without the `ENCODER: ` it
/// would start with.
pub fn check_encoder(a: &Args, video: &str) -> Result<(), String> {
    let container = match recording_name(video, &a.encoder) {
        "" => return Ok(()),
        "annotated.ts" => Container::MpegTs,
        _ => Container::Mp4,
    };
    encoder::choose(&a.encoder, container)
        .map(|_| ())
        .map_err(|e| e.trim_start_matches("ENCODER: ").to_string())
}

/// The settings that may carry credentials, set on the parsed pipeline rather than written into
/// its description: (element, property, value).
pub fn private_settings(a: &Args, video: &str) -> Vec<(&'static str, &'static str, String)> {
    let url = normalize_url(a.server().0);
    let mut out = vec![("infer", "url", url.clone())];
    if a.classifier_model.as_deref().is_some_and(|m| !m.is_empty()) {
        out.push(("classify", "url", url));
    }
    if video.contains("://") {
        out.push(("input", "uri", video.to_string()));
    }
    out
}

/// The run's pipeline: [`pipeline_description`] parsed, then [`private_settings`] set.
pub fn build(a: &Args, video: &str) -> Result<(gst::Pipeline, Option<Chosen>), String> {
    use gst::prelude::*;
    let (desc, chosen) = pipeline_description(a, video)?;
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("building the pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    for (element, property, value) in private_settings(a, video) {
        pipeline
            .by_name(element)
            .ok_or_else(|| format!("building the pipeline: no element {element}"))?
            .set_property(property, value);
    }
    Ok((pipeline, chosen))
}

/// The `gst-launch` description of the whole run, and the encoder chosen (`ENCODER`; none
/// with `ENCODER=none`). `Err`: an `ENCODER` that cannot work, named.
pub fn pipeline_description(a: &Args, video: &str) -> Result<(String, Option<Chosen>), String> {
    let source = if gsttriton::camera::is_live(video) {
        // A camera: restarted while away, black frames marked no-signal meanwhile.
        format!(
            "tritoncamerasrc name=input timeout-ms={} give-up-secs={}",
            a.camera_timeout_ms, a.camera_give_up_secs
        )
    } else if video.contains("://") {
        "uridecodebin name=input".to_string()
    } else {
        format!(
            "filesrc name=source location={} ! decodebin name=input",
            quote(video)
        )
    };
    let mut d = format!("{source} ! videoconvert ! queue max-size-buffers=4");
    if let Some(fps) = a.fps_cap {
        d.push_str(&format!(
            " ! videorate name=fpscap drop-only=true max-rate={}",
            fps.round().max(1.0) as u32
        ));
    }
    d.push_str(&format!(
        " ! tritonletterbox width={s} height={s} name=letterbox",
        s = a.img_size
    ));
    if let Some(roi) = a.roi.as_deref().filter(|v| !v.trim().is_empty()) {
        // Checked here as well as by the element, so that a bad ROI stops the runner before
        // anything runs.
        RoiSpec::parse_list(roi, a.roi_normalized).map_err(|e| format!("ROI: {e}"))?;
        d.push_str(&format!(" roi={}", quote(roi)));
        if a.roi_normalized {
            d.push_str(" roi-normalized=true");
        }
        if a.roi_drop_cut {
            d.push_str(" roi-drop-cut=true");
        }
    }
    // The letterbox decides which frames are sent: the others get no tensor and no request.
    if a.interval > 1 {
        d.push_str(&format!(" interval={}", a.interval));
    }
    let transport = if a.kserve {
        "kserve"
    } else if a.direct {
        "triton"
    } else {
        "proxy"
    };
    d.push_str(&format!(
        " ! tritoninfer name=infer transport={transport} model={} stream-id={} conf-threshold={} max-in-flight={}",
        quote(&a.model_name),
        quote(&a.stream_id),
        a.conf_thres,
        a.max_in_flight
    ));
    if a.shared_memory {
        d.push_str(" shared-memory=system");
    }
    if let Some(v) = a.model_version.as_deref().filter(|v| !v.is_empty()) {
        d.push_str(&format!(" model-version={}", quote(v)));
    }
    if let Some(v) = &a.input_name {
        d.push_str(&format!(" input-name={}", quote(v)));
    }
    if let Some(v) = &a.output_names {
        d.push_str(&format!(" output-names={}", quote(v)));
    }
    if let Some(v) = &a.tls_ca_file {
        d.push_str(&format!(" tls-ca-file={}", quote(v)));
    }
    if let Some(v) = &a.labels_file {
        d.push_str(&format!(" labels-file={}", quote(v)));
    }
    let counting = [&a.lines, &a.zones, &a.rules_file]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()));
    let tracking = a.track || counting;
    // The tracker comes before a classifier, whose crops it lets go once per track.
    if tracking {
        d.push_str(" ! dettrack name=track");
    }
    if a.reclassify_interval > 0 && (!tracking || a.classifier_model.is_none()) {
        return Err(
            "RECLASSIFY_INTERVAL: needs CLASSIFIER_MODEL and tracks (TRACK=1, or LINES/ZONES/RULES_FILE); expected 0 otherwise"
                .into(),
        );
    }
    if let Some(m) = a.classifier_model.as_deref().filter(|m| !m.is_empty()) {
        // The second stage: each detection cropped from the frame, classified in one batch per
        // frame, on the same server and transport as the detector.
        d.push_str(&format!(
            " ! tritonletterbox objects=true width={s} height={s}",
            s = a.classifier_size
        ));
        if a.reclassify_interval > 0 {
            d.push_str(&format!(" reclassify-interval={}", a.reclassify_interval));
        }
        if let Some(c) = a.classifier_classes.as_deref().filter(|c| !c.is_empty()) {
            d.push_str(&format!(" object-classes={}", quote(c)));
        }
        d.push_str(&format!(
            " ! tritoninfer name=classify transport={transport} model={} decoder=classify stream-id={} max-in-flight={}",
            quote(m),
            quote(&a.stream_id),
            a.max_in_flight
        ));
        if a.shared_memory {
            d.push_str(" shared-memory=system");
        }
        if let Some(v) = &a.tls_ca_file {
            d.push_str(&format!(" tls-ca-file={}", quote(v)));
        }
    }
    if counting {
        d.push_str(" ! detcount name=count");
        for (prop, v) in [
            ("lines", &a.lines),
            ("zones", &a.zones),
            ("rules-file", &a.rules_file),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                d.push_str(&format!(" {prop}={}", quote(v)));
            }
        }
    }
    let dir = a.results_dir.trim_end_matches('/');
    let mut json = format!(
        "detjsonsink name=json location={} stream-id={}",
        quote(&format!("{dir}/frame_counts.jsonl")),
        quote(&a.stream_id)
    );
    if a.report_interval > 0 {
        json.push_str(&format!(" report-interval={}", a.report_interval));
    }
    let recording = recording_name(video, &a.encoder);
    let container = match recording {
        "" => {
            d.push_str(&format!(" ! queue max-size-buffers=30 ! {json}"));
            return Ok((d, None));
        }
        "annotated.ts" => Container::MpegTs,
        _ => Container::Mp4,
    };
    let chosen =
        encoder::choose(&a.encoder, container)?.ok_or("ENCODER=none makes no recording")?;
    let mux = match container {
        Container::MpegTs => "mpegtsmux",
        Container::Mp4 => "mp4mux",
    };
    d.push_str(&format!(
        " ! tee name=t \
         t. ! queue max-size-buffers=30 ! detoverlay name=overlay ! videoconvert ! {EVEN} ! ptsrepair name=retime ! {} ! {mux} name=mux ! filesink location={} \
         t. ! queue max-size-buffers=30 ! {json}",
        chosen.desc,
        quote(&format!("{dir}/{recording}")),
    ));
    Ok((d, Some(chosen)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn file_and_uri_sources_quoting_and_options() {
        let a = Args::parse_from([
            "triton-video",
            "--mm-addr",
            "proxy:50051",
            "--model-name",
            "m\"x",
            "--fps-cap",
            "9.6",
            "--results-dir",
            "out/",
            "--domino-api-key",
            "secret-key",
        ]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(
            d.starts_with("filesrc name=source location=\"/v/in.mp4\" ! decodebin name=input"),
            "{d}"
        );
        assert!(
            d.contains("videorate name=fpscap drop-only=true max-rate=10"),
            "{d}"
        );
        assert!(
            d.contains("tritoninfer name=infer transport=proxy model=\"m\\\"x\""),
            "{d}"
        );
        assert!(d.contains("location=\"out/annotated.mp4\""), "{d}");
        assert!(d.contains("location=\"out/frame_counts.jsonl\""), "{d}");
        assert!(!d.contains("secret-key"), "{d}");
        assert!(!d.contains("model-version"), "{d}");

        let a = Args::parse_from(["triton-video", "--direct", "--triton-url", "t:8001"]);
        let d = pipeline_description(&a, "rtsp://cam/1").unwrap().0;
        assert!(
            d.starts_with("tritoncamerasrc name=input timeout-ms=2000 give-up-secs=0"),
            "{d}"
        );
        assert!(
            d.contains("mpegtsmux name=mux ! filesink location=\"results/annotated.ts\""),
            "{d}"
        );
        let d = pipeline_description(&a, "http://host/clip.mp4").unwrap().0;
        assert!(d.starts_with("uridecodebin name=input !"), "{d}");
        assert!(d.contains("tritoninfer name=infer transport=triton"), "{d}");
        assert!(!d.contains("t:8001") && !d.contains("host"), "{d}");
        assert_eq!(
            private_settings(&a, "http://u:pw@host/clip.mp4"),
            [
                ("infer", "url", "http://t:8001".to_string()),
                ("input", "uri", "http://u:pw@host/clip.mp4".to_string())
            ]
        );
        assert_eq!(
            private_settings(&a, "/v/in.mp4"),
            [("infer", "url", "http://t:8001".to_string())]
        );
        let mut none = a.clone();
        none.encoder = Encoder::None;
        let d = pipeline_description(&none, "rtsp://cam/1").unwrap().0;
        assert!(
            d.ends_with(
                "tritoninfer name=infer transport=triton model=\"yolov8n\" stream-id=\"cam-001\" conf-threshold=0.25 max-in-flight=4 \
                 ! queue max-size-buffers=30 ! detjsonsink name=json location=\"results/frame_counts.jsonl\" stream-id=\"cam-001\""
            ),
            "{d}"
        );
        assert!(!d.contains("x264enc") && !d.contains("detoverlay"), "{d}");
        assert!(!d.contains("videorate"), "{d}");
        assert!(!d.contains("dettrack") && !d.contains("interval"), "{d}");
        let mut tracked = none.clone();
        (tracked.track, tracked.interval) = (true, 3);
        let d = pipeline_description(&tracked, "rtsp://cam/1").unwrap().0;
        assert!(
            d.contains("name=letterbox interval=3 ! tritoninfer")
                && d.contains("max-in-flight=4 ! dettrack name=track ! queue"),
            "{d}"
        );
        let mut counted = none.clone();
        counted.lines = Some("door 0,100 640,100".into());
        counted.report_interval = 60;
        let d = pipeline_description(&counted, "rtsp://cam/1").unwrap().0;
        assert!(
            d.contains(
                "! dettrack name=track ! detcount name=count lines=\"door 0,100 640,100\" ! queue"
            ),
            "{d}"
        );
        assert!(
            d.ends_with("stream-id=\"cam-001\" report-interval=60"),
            "{d}"
        );
        assert!(!d.contains("shared-memory"), "{d}");
        let a = Args::parse_from(["triton-video", "--kserve", "--triton-url", "m:8081"]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(d.contains("transport=kserve"), "{d}");
        assert_eq!(private_settings(&a, "/v/in.mp4")[0].2, "http://m:8081");
        assert!(!d.contains("roi"), "{d}");
        let a = Args::parse_from(["triton-video", "--roi", "0.5,0,0.5,0.5", "--roi-normalized"]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(
            d.contains("name=letterbox roi=\"0.5,0,0.5,0.5\" roi-normalized=true !"),
            "{d}"
        );
        let a = Args::parse_from([
            "triton-video",
            "--roi",
            "0,0,64,64; 64,0,64,64",
            "--roi-drop-cut",
        ]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(
            d.contains("name=letterbox roi=\"0,0,64,64; 64,0,64,64\" roi-drop-cut=true !"),
            "{d}"
        );
        let a = Args::parse_from([
            "triton-video",
            "--direct",
            "--classifier-model",
            "shapes_color",
            "--classifier-classes",
            "red,blue",
        ]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(
            d.contains(" ! tritonletterbox objects=true width=64 height=64 object-classes=\"red,blue\" ! tritoninfer name=classify transport=triton model=\"shapes_color\" decoder=classify"),
            "{d}"
        );
        assert_eq!(
            private_settings(&a, "/v/in.mp4"),
            [
                ("infer", "url", "http://localhost:8001".to_string()),
                ("classify", "url", "http://localhost:8001".to_string())
            ]
        );
        // With tracks, the tracker goes before the classifier, which then takes each track
        // once per interval; without them RECLASSIFY_INTERVAL is refused by name.
        let a = Args::parse_from([
            "triton-video",
            "--classifier-model",
            "shapes_color",
            "--track",
            "--reclassify-interval",
            "5",
        ]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(
            d.contains(" ! dettrack name=track ! tritonletterbox objects=true width=64 height=64 reclassify-interval=5 ! tritoninfer name=classify"),
            "{d}"
        );
        let a = Args::parse_from([
            "triton-video",
            "--classifier-model",
            "shapes_color",
            "--reclassify-interval",
            "5",
        ]);
        let e = pipeline_description(&a, "/v/in.mp4").unwrap_err();
        assert!(e.starts_with("RECLASSIFY_INTERVAL: needs"), "{e}");
        let a = Args::parse_from(["triton-video", "--roi", "0,0,0,10"]);
        let e = pipeline_description(&a, "/v/in.mp4").unwrap_err();
        assert!(
            e.starts_with("ROI: roi: ") && e.contains("zero width"),
            "{e}"
        );
        let a = Args::parse_from(["triton-video", "--direct", "--shared-memory"]);
        let d = pipeline_description(&a, "/v/in.mp4").unwrap().0;
        assert!(
            d.contains("transport=triton") && d.contains("shared-memory=system"),
            "{d}"
        );
    }
}

//! Embedding the elements in a Rust application: build a pipeline, read the detections from the
//! ROI metas in a pad probe, print per-frame counts.
//!
//! ```sh
//! cargo run -p gst-plugin-triton --example embed -- VIDEO URL [MODEL] [TRANSPORT]
//! cargo run -p gst-plugin-triton --example embed -- in.mp4 http://localhost:8001 shapes_nms triton
//! ```
//! Credentials for the proxy come from DOMINO_API_KEY / GRPC_BEARER_TOKEN.

use std::collections::BTreeMap;

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, video, url, rest @ ..] = args.as_slice() else {
        eprintln!("usage: embed VIDEO URL [MODEL] [TRANSPORT proxy|triton]");
        std::process::exit(2);
    };
    let model = rest.first().map_or("yolov8n", String::as_str);
    let transport = rest.get(1).map_or("proxy", String::as_str);
    gst::init()?;
    gsttriton::plugin_register_static()?;
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{video}\" ! decodebin ! videoconvert ! tritonletterbox \
         ! tritoninfer url={url} model={model} transport={transport} ! fakesink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;

    let sinkpad = pipeline
        .by_name("sink")
        .ok_or("no sink")?
        .static_pad("sink")
        .ok_or("no pad")?;
    sinkpad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let Some(buf) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let caps = pad.current_caps();
        let s = caps.as_ref().and_then(|c| c.structure(0));
        let (w, h) = s
            .map(|s| {
                (
                    s.get::<i32>("width").unwrap_or(0),
                    s.get::<i32>("height").unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in gsttriton::meta::detections(buf, w as u32, h as u32) {
            *counts.entry(d.label).or_default() += 1;
        }
        let r = gsttriton::meta::result_meta(buf).unwrap_or_default();
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("frame {} {} {}", r.frame, r.status, counts.join(" "));
        gst::PadProbeReturn::Ok
    });

    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(format!("{}", e.error()).into());
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    result
}

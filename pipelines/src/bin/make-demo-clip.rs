//! Writes the demo clip (moving coloured rectangles, H.264 in MP4) and its ground truth, one JSON
//! line per frame: `{"frame": i, "objects": [{"id", "label", "class_id", "box": [x1,y1,x2,y2]}]}`
//! (the `crossings` scene adds `visible`, the visible fraction of the object's box).

use std::io::Write;

use anyhow::{Context, bail};
use clap::Parser;
use gst::prelude::*;
use triton_video::scene;

#[derive(Parser)]
#[command(about = "Make the demo clip and its ground truth")]
struct Args {
    /// Output video (MP4, H.264).
    #[arg(long, default_value = "results/demo_input.mp4")]
    out: String,
    /// Ground truth, JSON lines.
    #[arg(long, default_value = "results/demo_truth.jsonl")]
    truth: String,
    #[arg(long, default_value_t = 300)]
    frames: u32,
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// `demo` (four objects in lanes) or `crossings` (the tracking scene: a pillar, objects
    /// crossing each other and the centre line).
    #[arg(long, default_value = "demo", value_parser = ["demo", "crossings"])]
    scene: String,
}

/// Frame `i`'s pixels (tight RGB) and truth objects.
fn frame(a: &Args, i: u32) -> (Vec<u8>, Vec<serde_json::Value>) {
    let (w, h) = (a.width, a.height);
    if a.scene == "crossings" {
        let objects = scene::crossings::truth(w, h, i)
            .iter()
            .map(|o| serde_json::json!({"id": o.id, "label": scene::LABELS[o.class], "class_id": o.class, "box": o.bbox, "visible": (o.visible * 1000.0).round() / 1000.0}))
            .collect();
        return (scene::crossings::draw(w, h, i), objects);
    }
    let objects = scene::objects(w, h, i)
        .iter()
        .enumerate()
        .map(|(k, o)| serde_json::json!({"id": k + 1, "label": scene::LABELS[o.class], "class_id": o.class, "box": [o.x1, o.y1, o.x2, o.y2]}))
        .collect();
    (scene::draw(w, h, i), objects)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.width < 64 || a.height < 64 || a.width % 2 == 1 || a.height % 2 == 1 {
        bail!("--width/--height: expected even sizes of at least 64");
    }
    gst::init()?;
    for p in [&a.out, &a.truth] {
        if let Some(dir) = std::path::Path::new(p)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let desc = format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate={fps}/1 block=true \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=veryfast pass=quant quantizer=12 key-int-max=60 \
         ! mp4mux ! filesink location=\"{out}\"",
        w = a.width,
        h = a.height,
        fps = a.fps,
        out = a.out
    );
    let pipeline = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .context("appsrc")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| anyhow::anyhow!("appsrc"))?;
    let mut truth = std::io::BufWriter::new(
        std::fs::File::create(&a.truth).with_context(|| format!("creating {}", a.truth))?,
    );
    pipeline.set_state(gst::State::Playing)?;
    let info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, a.width, a.height).build()?;
    let stride = info.stride()[0] as usize;
    let row = 3 * a.width as usize;
    for i in 0..a.frames {
        let (tight, objects) = frame(&a, i);
        let mut laid = vec![0u8; info.size()];
        for y in 0..a.height as usize {
            laid[y * stride..y * stride + row].copy_from_slice(&tight[y * row..(y + 1) * row]);
        }
        let mut buf = gst::Buffer::from_slice(laid);
        {
            let b = buf.get_mut().context("buffer")?;
            let dur = gst::ClockTime::SECOND / a.fps as u64;
            b.set_pts(dur * i as u64);
            b.set_duration(dur);
        }
        src.push_buffer(buf)
            .map_err(|e| anyhow::anyhow!("push: {e:?}"))?;
        writeln!(
            truth,
            "{}",
            serde_json::json!({"frame": i, "objects": objects})
        )?;
    }
    src.end_of_stream()
        .map_err(|e| anyhow::anyhow!("eos: {e:?}"))?;
    let bus = pipeline.bus().context("bus")?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => bail!("encoding failed: {} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    truth.flush()?;
    println!(
        "wrote {} ({} frames {}x{} @ {} fps) and {}",
        a.out, a.frames, a.width, a.height, a.fps, a.truth
    );
    Ok(())
}

//! `triton` GStreamer plugin: Triton Inference Server object detection elements.
//!
//! * `tritonletterbox`: frame → model tensor (letterbox, colour conversion, normalisation) as a meta.
//!
//! The maths lives in plain modules ([`letterbox::geometry`], [`letterbox::kernel`]) with no
//! GStreamer types; [`meta`] reads and writes the metas the elements exchange.

pub mod decode;
pub mod infer;
pub mod jsonsink;
pub mod letterbox;
pub mod meta;
pub mod overlay;

gst::plugin_define!(
    triton,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "Apache-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);

/// An always-present `src` and `sink` pad template with the same caps (all our filters).
pub(crate) fn src_sink_templates(caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("src", gst::PadDirection::Src),
        ("sink", gst::PadDirection::Sink),
    ]
    .into_iter()
    .map(|(name, dir)| {
        gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps)
            .expect("valid pad template")
    })
    .collect()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    meta::register();
    letterbox::register(plugin)?;
    infer::register(plugin)?;
    jsonsink::register(plugin)?;
    overlay::register(plugin)?;
    Ok(())
}

//! Bus messages that leave `tritoncamerasrc` without the camera's credentials: an inner
//! `rtspsrc` quotes the URI in its progress messages ("Connecting to rtsp://user:pass@…") and a
//! source may quote it in an error's debug text.

use gst::glib;
use gst::prelude::*;

/// `message` with the remembered credentials scrubbed from its text fields and its error (an
/// error's text and debug string, a progress message's "Connecting to rtsp://…"); a message
/// without them as it is. Only the kinds that carry text are read: the others (QoS, state
/// changes, latency, ...) pass as they are, without work per message.
pub fn scrubbed(mut message: gst::Message) -> gst::Message {
    use gst::MessageType as T;
    use triton_endpoint::redact::scrub;
    if !matches!(
        message.type_(),
        T::Error | T::Warning | T::Info | T::Progress | T::Element
    ) {
        return message;
    }
    let Some(fields) = message.structure() else {
        return message;
    };
    let changes: Vec<(String, glib::SendValue)> = fields
        .iter()
        .filter_map(|(name, value)| {
            let clean = if let Ok(Some(text)) = value.get::<Option<&str>>() {
                let clean = scrub(text);
                (clean != text).then(|| clean.to_send_value())
            } else if let Ok(e) = value.get::<glib::Error>() {
                let clean = scrub(e.message());
                (clean != e.message()).then(|| same_kind(&e, &clean).to_send_value())
            } else {
                None
            };
            clean.map(|v| (name.to_string(), v))
        })
        .collect();
    if !changes.is_empty() {
        let fields = message.make_mut().structure_mut();
        for (name, value) in changes {
            fields.set_value(name.as_str(), value);
        }
    }
    message
}

/// A GStreamer error of the same domain and code as `e`, with `text`.
fn same_kind(e: &glib::Error, text: &str) -> glib::Error {
    if let Some(k) = e.kind::<gst::ResourceError>() {
        glib::Error::new(k, text)
    } else if let Some(k) = e.kind::<gst::StreamError>() {
        glib::Error::new(k, text)
    } else if let Some(k) = e.kind::<gst::LibraryError>() {
        glib::Error::new(k, text)
    } else {
        glib::Error::new(
            e.kind::<gst::CoreError>().unwrap_or(gst::CoreError::Failed),
            text,
        )
    }
}

//! The question `tritonletterbox dtype=auto` asks downstream before it makes tensors: which
//! datatype does the model's input take? `tritoninfer` answers from the model's description
//! (KServe `ModelMetadata`, or the proxy's `ModelInfo`), so that the tensor is made in that type
//! from the first frame: a UINT8 input costs a quarter of FP32's bytes on the wire. A custom
//! query travels through the elements between (queues, converters) unchanged; when nothing
//! answers it, the letterbox makes FP32, the type of every model that normalises outside.

use gst::prelude::*;

/// The query's structure name.
pub const NAME: &str = "triton-model-input";
const DATATYPE: &str = "datatype";

/// Asks the peer of `pad` (a source pad); the model's input datatype (`FP32`, `UINT8`, ...), or
/// `None` when nothing downstream knows it.
pub fn ask(pad: &gst::Pad) -> Option<String> {
    let mut q = gst::query::Custom::new(gst::Structure::new_empty(NAME));
    if !pad.peer_query(&mut q) {
        return None;
    }
    q.structure().and_then(|s| s.get::<String>(DATATYPE).ok())
}

/// True when `query` is the question.
pub fn is_question(query: &gst::QueryRef) -> bool {
    matches!(query.view(), gst::QueryView::Custom(_))
        && query.structure().is_some_and(|s| s.name() == NAME)
}

/// Answers the question with the model's input `datatype`.
pub fn answer(query: &mut gst::QueryRef, datatype: &str) -> bool {
    match query.view_mut() {
        gst::QueryViewMut::Custom(c) => {
            c.structure_mut().set(DATATYPE, datatype);
            true
        }
        _ => false,
    }
}

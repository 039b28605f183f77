//! The question `tritonletterbox` asks downstream before it makes tensors: which datatype does
//! the model's input take (`dtype=auto`), and how many objects may one request carry
//! (`objects=true`)? `tritoninfer` answers from the model's description (KServe `ModelMetadata`
//! and Triton's `ModelConfig`, or the proxy's `ModelInfo`), so that the tensor is made in that
//! type from the first frame (a UINT8 input costs a quarter of FP32's bytes on the wire) and a
//! frame's crops never exceed the model's `max_batch_size` (Triton refuses such a request). A
//! custom query travels through the elements between (queues, converters) unchanged; when
//! nothing answers it, the letterbox makes FP32, the type of every model that normalises outside,
//! and at most `max-objects` crops.

use gst::prelude::*;

/// The query's structure name.
pub const NAME: &str = "triton-model-input";
const DATATYPE: &str = "datatype";
const MAX_BATCH: &str = "max-batch-size";

/// What the model downstream says of its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInput {
    /// The input's datatype (`FP32`, `UINT8`, ...).
    pub datatype: Option<String>,
    /// The largest batch one request may carry.
    pub max_batch_size: Option<u32>,
}

/// Asks the peer of `pad` (a source pad); `None` when nothing downstream knows the model.
pub fn ask(pad: &gst::Pad) -> Option<ModelInput> {
    let mut q = gst::query::Custom::new(gst::Structure::new_empty(NAME));
    if !pad.peer_query(&mut q) {
        return None;
    }
    q.structure().map(|s| ModelInput {
        datatype: s.get::<String>(DATATYPE).ok(),
        max_batch_size: s.get::<u32>(MAX_BATCH).ok(),
    })
}

/// True when `query` is the question.
pub fn is_question(query: &gst::QueryRef) -> bool {
    matches!(query.view(), gst::QueryView::Custom(_))
        && query.structure().is_some_and(|s| s.name() == NAME)
}

/// Answers the question with what is known of the model's input; false when nothing is.
pub fn answer(query: &mut gst::QueryRef, input: &ModelInput) -> bool {
    if input == &ModelInput::default() {
        return false;
    }
    match query.view_mut() {
        gst::QueryViewMut::Custom(c) => {
            let s = c.structure_mut();
            if let Some(d) = &input.datatype {
                s.set(DATATYPE, d);
            }
            if let Some(n) = input.max_batch_size {
                s.set(MAX_BATCH, n);
            }
            true
        }
        _ => false,
    }
}

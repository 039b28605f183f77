//! triton-proxy's `multimodal.MultiModal/Chat`: each request is a `DataPacket` whose `Meta.note`
//! is the control JSON ([`triton_proto::wire::Control`]) and whose frame payload is the tensor;
//! each answer is an `Ack` with binary outputs, matched by correlation id.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use triton_endpoint::Auth;
use triton_proto::multimodal::multi_modal_client::MultiModalClient;
use triton_proto::multimodal::{DataPacket, Frame, Meta, data_packet::Payload};
use triton_proto::wire::{Control, ControlInput};

use super::{Link, Sender, StreamItem, read_stream};
use crate::{ClientConfig, InferError, InputDesc, MAX_MESSAGE, Request, answer};

/// Opens a Chat stream on `ch`; its reader answers the link's pending requests until it ends.
pub(crate) fn open(ch: InterceptedService<Channel, Auth>, tls: bool) -> Link {
    let (tx, rx) = mpsc::channel::<DataPacket>(64);
    let link = Link::new(Sender::Proxy(tx));
    let mut mm = MultiModalClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let reader = link.clone();
    tokio::spawn(async move {
        let why = match mm.chat(ReceiverStream::new(rx)).await {
            Err(s) => InferError::status(&s, tls),
            Ok(resp) => {
                read_stream(
                    resp.into_inner(),
                    &reader.pending,
                    ("the proxy", tls),
                    |mut ack| {
                        let id = std::mem::take(&mut ack.correlation_id);
                        StreamItem::For(id, answer::from_ack(ack))
                    },
                    |_| None,
                )
                .await
            }
        };
        reader.fail_all(why);
    });
    link
}

/// The control JSON the proxy reads for a request with this input: binary outputs, the
/// client's model, outputs and timeout.
pub fn control_note(cfg: &ClientConfig, desc: &InputDesc) -> String {
    let control = Control {
        model: Some(cfg.model.clone()),
        version: Some(cfg.model_version.clone().into()),
        inputs: Some(vec![ControlInput {
            name: desc.input_name.clone(),
            shape: desc.shape.clone(),
            dtype: desc.dtype.clone(),
            from: "frame".into(),
        }]),
        outputs: Some(cfg.output_names.clone()),
        timeout: Some(cfg.timeout.as_secs_f64()),
        binary: Some(true),
        parameters: None,
    };
    serde_json::to_string(&control).expect("the control JSON serialises")
}

/// The packet for `r`, with the note built for its input description.
pub(crate) fn packet(r: &Request, note: String) -> DataPacket {
    DataPacket {
        meta: Some(Meta {
            correlation_id: r.id.clone(),
            note,
            stream_id: String::new(),
            capture_ts_ns: 0,
        }),
        payload: Some(Payload::Frame(Frame {
            data: r.data.clone(),
        })),
    }
}

/// The note of the last input description, reused while the description holds (every frame of
/// a stream has the same one).
#[derive(Default)]
pub(crate) struct NoteCache(std::sync::Mutex<Option<(Arc<InputDesc>, String)>>);

impl NoteCache {
    pub(crate) fn get(&self, cfg: &ClientConfig, desc: &Arc<InputDesc>) -> String {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, note)) = cache.as_ref()
            && (Arc::ptr_eq(k, desc) || **k == **desc)
        {
            return note.clone();
        }
        let note = control_note(cfg, desc);
        *cache = Some((desc.clone(), note.clone()));
        note
    }
}

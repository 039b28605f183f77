//! The source pad's task: waits for the frame at the head of the queue to be answered (in
//! the order frames came in, whatever order answers arrive in), finishes it and pushes it, with
//! the events queued between frames; a refused push pauses the task.

use super::*;

impl TritonInfer {
    pub(super) fn src_loop(&self) {
        // Wait for the head item; take its receiver but leave it queued (it still counts).
        let mut flush_rx = self.queue.flushes();
        let Some(rx) = self.queue.peek_head(|item| match item {
            Item::Frame { rx, .. } => rx.take(),
            _ => None,
        }) else {
            let _ = self.srcpad.pause_task();
            return;
        };
        let result = match rx {
            Some(rx) => {
                let got = RUNTIME.block_on(async {
                    tokio::select! {
                        r = rx => Some(r.unwrap_or_else(|_| Err(InferError::Closed("request abandoned".into())))),
                        _ = flush_rx.changed() => None,
                    }
                });
                match got {
                    Some(r) => Some(r),
                    None => {
                        let _ = self.srcpad.pause_task();
                        return;
                    }
                }
            }
            None => None,
        };
        let Some(item) = self.queue.pop() else {
            let _ = self.srcpad.pause_task();
            return;
        };
        let flow = match item {
            Item::Event(e) => {
                gst::log!(CAT, imp = self, "pushing event {:?}", e.type_());
                let is_eos = matches!(e.view(), gst::EventView::Eos(_));
                if !self.srcpad.push_event(e) && is_eos {
                    gst::debug!(CAT, imp = self, "EOS not handled downstream");
                }
                Ok(gst::FlowSuccess::Ok)
            }
            Item::Passed {
                mut buffer,
                frame_no,
                status,
            } => {
                let (model, version) = self.model_names();
                if self.classifying() {
                    // The detector's result stays; the classifier's status goes next to it,
                    // and tracked objects keep their tracks' last answers.
                    let b = buffer.make_mut();
                    let tracks = meta::track_ids(b);
                    let cached = match self.running.lock().unwrap().as_mut() {
                        Some(r) => Self::add_cached(r, b, &tracks, &[], frame_no),
                        None => 0,
                    };
                    let c = meta::Classified {
                        model,
                        status: status.into(),
                        cached,
                        ..Default::default()
                    };
                    meta::set_classified(b, &c, frame_no);
                } else {
                    meta::add_result_meta(
                        buffer.make_mut(),
                        &meta::ResultMeta {
                            status: status.into(),
                            model,
                            model_version: version,
                            frame: frame_no,
                            ..Default::default()
                        },
                    );
                }
                self.srcpad.push(buffer)
            }
            Item::Frame {
                buffer,
                frame_no,
                request_id,
                submitted,
                places,
                objects,
                ..
            } => {
                let res = result.unwrap_or_else(|| Err(InferError::Closed("no request".into())));
                let done = match objects {
                    Some(objects) if self.classifying() => {
                        self.finish_classified(buffer, frame_no, objects, res)
                    }
                    _ => self.finish_frame(buffer, frame_no, request_id, submitted, places, res),
                };
                match done {
                    Ok(b) => self.srcpad.push(b),
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = flow {
            let _posting = self.posting.lock().unwrap();
            self.queue.fail(e);
            if e != gst::FlowError::Flushing {
                gst::debug!(CAT, imp = self, "downstream returned {e:?}; pausing");
                if matches!(e, gst::FlowError::Error | gst::FlowError::NotNegotiated) {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("tritoninfer: streaming stopped: {:?}", e)
                    );
                }
            }
            let _ = self.srcpad.pause_task();
        }
    }

    /// `decoder=classify`: this element classifies objects rather than detecting them.
    pub(super) fn classifying(&self) -> bool {
        self.settings.lock().unwrap().decoder == settings::DecoderProp::Classify
    }

    pub(super) fn model_names(&self) -> (String, String) {
        let s = self.settings.lock().unwrap();
        (s.model.clone(), s.model_version.clone())
    }
}

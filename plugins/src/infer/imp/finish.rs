//! What a frame carries when it leaves `tritoninfer`: its answer decoded into detections (ROI
//! metas, and analytics metas with `v1_24`) and a result meta; or, when the request failed, the
//! failure policy: `on-error=fail` stops the stream with an element error naming the frame,
//! `on-error=skip` passes the frame on without detections and warns at most every 5 s.

use super::*;

impl TritonInfer {
    pub(super) fn finish_frame(
        &self,
        mut buffer: gst::Buffer,
        frame_no: u64,
        request_id: String,
        submitted: Instant,
        geometry: Letterbox,
        res: Outcome,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let latency_ms = submitted.elapsed().as_secs_f64() * 1000.0;
        let mut guard = self.running.lock().unwrap();
        let Some(r) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let mut result = meta::ResultMeta {
            status: "ok".into(),
            latency_ms,
            model: r.settings.model.clone(),
            model_version: r.settings.model_version.clone(),
            request_id,
            frame: frame_no,
            ..Default::default()
        };
        let decoded = res.map_err(|e| e.to_string()).and_then(|out| {
            result.model_version = out.model_version.clone();
            r.decoding.decode(&out)
        });
        let b = buffer.make_mut();
        match decoded {
            Ok(dets) => {
                let dets = r.decoding.detections(dets, &geometry);
                if let Err(e) = meta::add_detections(b, &dets, geometry.frame_w, geometry.frame_h) {
                    gst::warning!(CAT, imp = self, "frame {frame_no}: {e}");
                }
                result.detections = dets.len() as u32;
                result.labels = dets.into_iter().map(|d| d.label).collect();
                if r.failures_since_warning > 0 {
                    gst::info!(
                        CAT,
                        imp = self,
                        "inference recovered after {} failed frames",
                        r.failures_since_warning
                    );
                    r.failures_since_warning = 0;
                }
            }
            Err(e) => {
                result.status = "error".into();
                result.error = e.clone();
                if r.settings.on_error == OnError::Fail {
                    drop(guard);
                    // Refuse further frames before anyone hears of the error.
                    let _posting = self.posting.lock().unwrap();
                    self.queue.fail(gst::FlowError::Error);
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Failed,
                        ("tritoninfer: inference failed for frame {frame_no}: {e}")
                    );
                    return Err(gst::FlowError::Error);
                }
                // An analysed frame always says what was found: here nothing (an empty analytics
                // meta, so overlays that keep the last boxes until a new meta arrives clear them).
                meta::add_detections(b, &[], geometry.frame_w, geometry.frame_h).ok();
                r.failures_since_warning += 1;
                let due = r
                    .last_warning
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due {
                    r.last_warning = Some(Instant::now());
                    let n = r.failures_since_warning;
                    drop(guard);
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Read,
                        (
                            "tritoninfer: inference failed ({} frames passed on without detections): {}",
                            n,
                            e
                        )
                    );
                    meta::add_result_meta(b, &result);
                    return Ok(buffer);
                }
            }
        }
        meta::add_result_meta(b, &result);
        Ok(buffer)
    }
}

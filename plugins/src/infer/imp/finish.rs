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
        places: Places,
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
        let (frame_w, frame_h) = places.frame_size();
        let decoding = Instant::now();
        let decoded = res.map_err(|e| e.to_string()).and_then(|out| {
            result.model_version = out.model_version.clone();
            r.decoding.frame_detections(&out, &places)
        });
        result.decode_ms = decoding.elapsed().as_secs_f64() * 1000.0;
        let b = buffer.make_mut();
        match decoded {
            Ok(dets) => {
                if let Err(e) = meta::add_detections(b, &dets, frame_w, frame_h) {
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
                // An analysed frame always says what was found: here nothing (an empty analytics
                // meta, so overlays that keep the last boxes until a new meta arrives clear them).
                if r.settings.on_error != OnError::Fail {
                    meta::add_detections(b, &[], frame_w, frame_h).ok();
                }
                self.failed(guard, frame_no, &e)?;
            }
        }
        meta::add_result_meta(b, &result);
        Ok(buffer)
    }

    /// `decoder=classify`: each object's best class goes onto its ROI meta (a `classification`
    /// param), and the classifier's status into the frame's result meta.
    pub(super) fn finish_classified(
        &self,
        mut buffer: gst::Buffer,
        frame_no: u64,
        objects: Vec<u32>,
        res: Outcome,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let mut guard = self.running.lock().unwrap();
        let Some(r) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let model = r.settings.model.clone();
        let mut c = meta::Classified {
            model: model.clone(),
            status: "ok".into(),
            sent: objects.len() as u32,
            ..Default::default()
        };
        let classes = res
            .map_err(|e| e.to_string())
            .and_then(|out| r.decoding.classify(&out, objects.len(), &model));
        let b = buffer.make_mut();
        let tracks = meta::track_ids(b);
        match classes {
            Ok(classes) => {
                let attrs: Vec<(usize, meta::Attribute)> = objects
                    .iter()
                    .zip(classes)
                    .filter_map(|(&i, a)| Some((i as usize, a?)))
                    .collect();
                c.classified = attrs.len() as u32;
                if let Err(e) = meta::add_attributes(b, &attrs) {
                    gst::warning!(CAT, imp = self, "frame {frame_no}: {e}");
                }
                r.answers.remember(&tracks, &objects, &attrs, frame_no);
                c.cached = Self::add_cached(r, b, &tracks, &objects, frame_no);
                r.failures_since_warning = 0;
            }
            Err(e) => {
                c.status = "error".into();
                c.error = e.clone();
                c.cached = Self::add_cached(r, b, &tracks, &objects, frame_no);
                meta::set_classified(b, &c, frame_no);
                self.failed(guard, frame_no, &e)?;
                return Ok(buffer);
            }
        }
        meta::set_classified(b, &c, frame_no);
        Ok(buffer)
    }

    /// `decoder=classify` on a frame whose objects were not all sent (`reclassify-interval`, or
    /// nothing sent at all): the tracked ones not sent get their track's last answer, marked
    /// cached. Returns how many did.
    pub(super) fn add_cached(
        r: &mut Running,
        b: &mut gst::BufferRef,
        tracks: &[Option<u64>],
        sent: &[u32],
        frame_no: u64,
    ) -> u32 {
        let cached = r.answers.cached(tracks, sent, frame_no);
        if let Err(e) = meta::add_attributes(b, &cached) {
            gst::warning!(CAT, "frame {frame_no}: {e}");
        }
        cached.len() as u32
    }

    /// The failure policy for a frame whose request failed: `on-error=fail` stops the stream
    /// (an element error naming the frame); `skip` lets the frame pass, with a warning at most
    /// every 5 s saying how many frames passed without an answer.
    pub(super) fn failed(
        &self,
        mut guard: std::sync::MutexGuard<'_, Option<Running>>,
        frame_no: u64,
        e: &str,
    ) -> Result<(), gst::FlowError> {
        let Some(r) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
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
                    "tritoninfer: inference failed ({} frames passed on without an answer): {}",
                    n,
                    e
                )
            );
        }
        Ok(())
    }
}

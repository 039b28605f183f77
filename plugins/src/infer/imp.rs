use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use tokio::sync::oneshot;

use triton_client::{Client, InferError, InputDesc, ModelDesc, Outcome, Request};

use super::answers::TrackAnswers;
use super::bridge::{self, Blocked, Cancel, RUNTIME};
use super::decoding::Decoding;
use super::places::Places;
use super::queue::{OrderedQueue, Refused};
use super::settings::{self, OnError, Settings};
use crate::{meta, model_query};

mod finish;
mod src_loop;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tritoninfer",
        gst::DebugColorFlags::empty(),
        Some("Triton inference"),
    )
});

enum Item {
    Frame {
        buffer: gst::Buffer,
        frame_no: u64,
        request_id: String,
        rx: Option<oneshot::Receiver<Outcome>>,
        submitted: Instant,
        /// Where each batch item came from in the frame.
        places: Places,
        /// `tritonletterbox objects=true`: the ROI metas the batch's items were cut from.
        objects: Option<Vec<u32>>,
    },
    /// A frame passed on without a request: "skipped" (interval) or "no-signal" (made by
    /// tritoncamerasrc while its camera was away).
    Passed {
        buffer: gst::Buffer,
        frame_no: u64,
        status: &'static str,
    },
    Event(gst::Event),
}

/// Created on READY→PAUSED, dropped on PAUSED→READY.
struct Running {
    client: Arc<Client>,
    settings: Settings,
    decoding: Decoding,
    /// The input description of the last request, shared by every request while it holds.
    input: Option<Arc<InputDesc>>,
    frame_no: u64,
    failures_since_warning: u64,
    last_warning: Option<Instant>,
    /// The model's description was asked for (on the first frame, or on tritonletterbox's
    /// question).
    model_learnt: bool,
    /// The model's input datatype and batch limit, from its description.
    model_input: model_query::ModelInput,
    /// `decoder=classify`: each track's last answer (`tritonletterbox reclassify-interval`).
    answers: TrackAnswers,
}

pub struct TritonInfer {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    /// Frames in arrival order, waiting for their answers, and serialized events.
    queue: OrderedQueue<Item, gst::FlowError>,
    /// Held while failing the queue and posting why; refused chains wait on it (our error first).
    posting: Mutex<()>,
    /// Ends the blocking network calls of the streaming thread (flush, PAUSED→READY).
    cancel: Cancel,
}

#[glib::object_subclass]
impl ObjectSubclass for TritonInfer {
    const NAME: &'static str = "GstTritonInfer";
    type Type = super::TritonInfer;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|pad, parent, buffer| {
                TritonInfer::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |s| s.chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                TritonInfer::catch_panic_pad_function(
                    parent,
                    || false,
                    |s| s.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                TritonInfer::catch_panic_pad_function(
                    parent,
                    || false,
                    |s| s.sink_query(pad, query),
                )
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
            .activatemode_function(|pad, parent, mode, active| {
                TritonInfer::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic in activate")),
                    |s| s.src_activate(pad, mode, active),
                )
            })
            .query_function(|pad, parent, query| {
                TritonInfer::catch_panic_pad_function(parent, || false, |s| s.src_query(pad, query))
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        TritonInfer {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            running: Mutex::new(None),
            queue: OrderedQueue::new(),
            posting: Mutex::new(()),
            cancel: Cancel::default(),
        }
    }
}

impl TritonInfer {
    fn refused<T>(&self, r: Result<T, Refused<gst::FlowError>>) -> Result<T, gst::FlowError> {
        r.map_err(|r| match r {
            Refused::Flow(e) => {
                drop(self.posting.lock().unwrap());
                e
            }
            Refused::Flushing => gst::FlowError::Flushing,
        })
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        meta::register();
        let s = self.settings.lock().unwrap().clone();
        let labels_text = match &s.labels_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("tritoninfer: labels-file: cannot read {}: {}", path, e)
                )
            })?),
            None => None,
        };
        let settings_error =
            |e: String| gst::error_msg!(gst::LibraryError::Settings, ("tritoninfer: {}", e));
        let decoding = Decoding::new(&s, labels_text.as_deref()).map_err(settings_error)?;
        let cfg = s.client_config().map_err(settings_error)?;
        self.cancel.clear();
        if let Some(pool) = cfg.shm.clone() {
            match bridge::prepare_shm(&self.cancel, pool).map_err(settings_error)? {
                Ok(gone) => gst::info!(CAT, imp = self, "shared memory ok; removed {gone:?}"),
                Err(e) => gst::warning!(CAT, imp = self, "shared memory not checked: {e}"),
            }
        }
        *self.running.lock().unwrap() = Some(Running {
            client: Arc::new(Client::new(cfg)),
            settings: s,
            decoding,
            input: None,
            frame_no: 0,
            failures_since_warning: 0,
            last_warning: None,
            model_learnt: false,
            model_input: Default::default(),
            answers: TrackAnswers::default(),
        });
        Ok(())
    }

    /// First frame: asks the model for its input name, outputs and class names (best effort),
    /// within 5 s, without holding the element's state, and cancelled by a flush or a stop.
    /// `Err(Flushing)`: cancelled.
    fn learn_model(&self) -> Result<(), gst::FlowError> {
        let client = match self.running.lock().unwrap().as_ref() {
            Some(r) if !r.model_learnt => r.client.clone(),
            Some(_) => return Ok(()),
            None => return Err(gst::FlowError::Flushing),
        };
        let got = bridge::bounded(&self.cancel, Duration::from_secs(5), client.model_desc());
        if matches!(got, Blocked::Cancelled) {
            return Err(gst::FlowError::Flushing);
        }
        let mut guard = self.running.lock().unwrap();
        let Some(r) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        r.model_learnt = true;
        match got {
            Blocked::Done(Ok(d)) => self.apply_model(r, d),
            Blocked::Done(Err(e)) => gst::warning!(
                CAT,
                imp = self,
                "model description unavailable ({e}); using input '{}' and deciding the decoder from the first answer",
                r.decoding.input_name
            ),
            _ => gst::warning!(
                CAT,
                imp = self,
                "model description timed out; using defaults"
            ),
        }
        Ok(())
    }

    fn apply_model(&self, r: &mut Running, d: ModelDesc) {
        r.model_input = model_query::ModelInput {
            datatype: d.input_dtype.clone(),
            max_batch_size: d.max_batch_size,
        };
        let applied = r.decoding.apply(d);
        if let Some(outputs) = applied.outputs {
            let mut cfg = r.client.config().clone();
            cfg.output_names = outputs;
            r.client = Arc::new(Client::new(cfg));
        }
        if let Some(w) = applied.warning {
            gst::warning!(CAT, imp = self, "{w}");
        }
        gst::info!(
            CAT,
            imp = self,
            "model {}: input {}, decoder {:?}, {} labels",
            r.settings.model,
            r.decoding.input_name,
            r.decoding.decoder(),
            r.decoding.labels().len()
        );
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let tm = meta::tensor_meta(&buffer);
        // A frame tritonletterbox made no tensor for (its `interval`) passes as skipped.
        let letterbox_skipped = tm.is_none() && meta::skipped(&buffer).is_some();
        if tm.is_none() && !letterbox_skipped {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("tritoninfer: frame has no TritonTensorMeta; put tritonletterbox before tritoninfer (e.g. '... ! tritonletterbox ! tritoninfer ! ...')")
            );
            return Err(gst::FlowError::Error);
        }
        // Room first, request second: never more than max-in-flight requests outstanding.
        let max = self.settings.lock().unwrap().max_in_flight.max(1) as usize;
        self.refused(self.queue.wait_for_room(max))?;
        self.learn_model()?;
        let item = {
            let mut guard = self.running.lock().unwrap();
            let Some(r) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let frame_no = r.frame_no;
            r.frame_no += 1;
            let classify = r.decoding.is_classify();
            if classify && tm.as_ref().is_some_and(|t| t.objects.is_none()) {
                drop(guard);
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("tritoninfer: decoder=classify needs object crops; put 'tritonletterbox objects=true' before this tritoninfer (after the detector's)")
                );
                return Err(gst::FlowError::Error);
            }
            let passed = meta::no_signal(&buffer)
                .map(|_| "no-signal")
                .or_else(|| {
                    (letterbox_skipped || frame_no % r.settings.interval.max(1) as u64 != 0)
                        .then_some("skipped")
                })
                .or_else(|| {
                    // A frame without objects to classify sends nothing.
                    tm.as_ref()
                        .and_then(|t| t.objects.as_ref())
                        .is_some_and(Vec::is_empty)
                        .then_some("no-objects")
                });
            // Without a tensor the frame was skipped by the letterbox (checked above).
            match (passed, tm) {
                (status, None) | (status @ Some(_), _) => Item::Passed {
                    buffer,
                    frame_no,
                    status: status.unwrap_or("skipped"),
                },
                (None, Some(tm)) => {
                    let request_id = format!("{}:{}", r.settings.stream_id, frame_no);
                    let data = tm
                        .tensor
                        .clone()
                        .into_mapped_buffer_readable()
                        .map_err(|_| gst::FlowError::Error)?;
                    let desc = match &r.input {
                        Some(d)
                            if d.dtype == tm.dtype
                                && d.shape == tm.shape
                                && d.input_name == r.decoding.input_name =>
                        {
                            d.clone()
                        }
                        _ => {
                            let d = Arc::new(InputDesc {
                                input_name: r.decoding.input_name.clone(),
                                dtype: tm.dtype.clone(),
                                shape: tm.shape.clone(),
                            });
                            r.input = Some(d.clone());
                            d
                        }
                    };
                    let req = Request {
                        id: request_id.clone(),
                        desc,
                        data: bytes::Bytes::from_owner(data),
                    };
                    let (tx, rx) = oneshot::channel();
                    let client = r.client.clone();
                    RUNTIME.spawn(async move {
                        let _ = tx.send(client.infer(req).await);
                    });
                    Item::Frame {
                        buffer,
                        frame_no,
                        request_id,
                        rx: Some(rx),
                        submitted: Instant::now(),
                        places: Places {
                            items: if tm.regions.is_empty() {
                                vec![tm.geometry]
                            } else {
                                tm.regions
                            },
                            drop_cut: tm.drop_cut,
                        },
                        objects: tm.objects,
                    }
                }
            }
        };
        self.refused(self.queue.push_frame(item))?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, imp = self, "sink event {:?}", event.type_());
        match event.view() {
            EventView::FlushStart(_) => {
                self.cancel.cancel();
                self.set_flushing(true);
                let ok = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                ok
            }
            EventView::FlushStop(_) => {
                self.cancel.clear();
                self.set_flushing(false);
                let ok = self.srcpad.push_event(event);
                self.start_task();
                ok
            }
            _ if event.is_serialized() => self.queue.push_other(Item::Event(event)),
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// Flushing drops the queued frames: dropping their receivers abandons the answers.
    fn set_flushing(&self, flushing: bool) {
        self.queue.set_flushing(flushing);
    }

    fn start_task(&self) {
        let this = self.ref_counted();
        if let Err(e) = self.srcpad.start_task(move || this.src_loop()) {
            gst::error!(CAT, imp = self, "cannot start the src task: {e}");
        }
    }

    fn src_activate(
        &self,
        _pad: &gst::Pad,
        _mode: gst::PadMode,
        active: bool,
    ) -> Result<(), gst::LoggableError> {
        if active {
            self.set_flushing(false);
            self.start_task();
        } else {
            self.set_flushing(true);
            self.srcpad
                .stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "stop task: {e}"))?;
        }
        Ok(())
    }

    /// tritonletterbox's question (crate::model_query): the model's input datatype and batch
    /// limit, learnt now if no frame has asked for the description yet.
    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if !model_query::is_question(query) {
            // A serialized query (the allocation query that follows new caps) goes downstream
            // only after the events and frames queued before it: else it overtakes the caps
            // event and downstream answers for the old format (a camera that came up at
            // another format failed with "Failed to configure the buffer pool").
            if query.is_serialized() && self.queue.wait_drained().is_err() {
                return false;
            }
            return gst::Pad::query_default(pad, Some(&*self.obj()), query);
        }
        if self.learn_model().is_err() {
            return false;
        }
        let input = (self.running.lock().unwrap().as_ref()).map(|r| r.model_input.clone());
        input.is_some_and(|i| model_query::answer(query, &i))
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let mut peer = gst::query::Latency::new();
            if !self.sinkpad.peer_query(&mut peer) {
                return false;
            }
            let (live, min, max) = peer.result();
            let timeout =
                gst::ClockTime::from_mseconds(self.settings.lock().unwrap().timeout_ms as u64);
            // Frames wait for their answer: at worst the request timeout.
            q.set(live, min, max.map(|m| m + timeout));
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }
}

impl ObjectImpl for TritonInfer {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::properties);
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.settings.lock().unwrap().set(pspec.name(), value);
        // The one setting that changes while running: the next answer is decoded with it.
        if pspec.name() == "conf-threshold"
            && let Some(r) = self.running.lock().unwrap().as_mut()
        {
            let t: f64 = value.get().expect("type checked");
            r.settings.conf_threshold = t;
            r.decoding.set_conf_threshold(t);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.settings.lock().unwrap().get(pspec.name())
    }
}

impl GstObjectImpl for TritonInfer {}

impl ElementImpl for TritonInfer {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Triton inference",
                "Filter/Analyzer/Video",
                "Streams each frame's tensor (from tritonletterbox) to Triton, via triton-proxy or directly, and attaches detections as GstVideoRegionOfInterestMeta",
                "gst-triton developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/x-raw").build();
            crate::video::src_sink_templates(&caps)
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused
            && let Err(e) = self.start()
        {
            self.post_error_message(e);
            return Err(gst::StateChangeError);
        }
        if transition == gst::StateChange::PausedToReady {
            // The streaming thread may be waiting on the network: deactivating the pads waits
            // for it, so end its wait first.
            self.cancel.cancel();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            let stopped = self.running.lock().unwrap().take();
            if let Some(r) = stopped
                && let Err(e) = bridge::close_shm(r.client.config())
            {
                gst::warning!(CAT, imp = self, "shared memory regions left in Triton: {e}");
            }
        }
        Ok(ret)
    }
}

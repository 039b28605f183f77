use std::collections::VecDeque;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use tokio::sync::{oneshot, watch};

use super::client::{Client, ClientConfig, InferOutput, RUNTIME, Request, Transport};
use crate::decode::{self, COCO80, Decoder, Params};
use crate::letterbox::geometry::Letterbox;
use crate::meta;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tritoninfer",
        gst::DebugColorFlags::empty(),
        Some("Triton inference"),
    )
});

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonTransport")]
pub enum TransportProp {
    #[enum_value(name = "triton-proxy: multimodal.MultiModal/Chat", nick = "proxy")]
    Proxy = 0,
    #[enum_value(name = "Triton directly: ModelStreamInfer", nick = "triton")]
    Triton = 1,
}

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonDecoder")]
pub enum DecoderProp {
    #[enum_value(name = "Choose from the output names and shapes", nick = "auto")]
    Auto = 0,
    #[enum_value(
        name = "YOLOv8/v11 raw head [1,4+nc,N] or [1,N,4+nc], with NMS",
        nick = "yolov8"
    )]
    Yolov8 = 1,
    #[enum_value(name = "[1,M,6] x1,y1,x2,y2,score,class", nick = "xyxy-score-class")]
    XyxyScoreClass = 2,
    #[enum_value(name = "num_dets, boxes, scores, classes", nick = "efficient-nms")]
    EfficientNms = 3,
    #[enum_value(name = "No decoding (result meta only)", nick = "none")]
    None = 4,
}

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonOnError")]
pub enum OnError {
    #[enum_value(
        name = "Pass the frame on without detections (status error) and keep going",
        nick = "skip"
    )]
    Skip = 0,
    #[enum_value(name = "Post an element error and stop", nick = "fail")]
    Fail = 1,
}

#[derive(Clone)]
struct Settings {
    url: String,
    transport: TransportProp,
    model: String,
    model_version: String,
    input_name: Option<String>,
    output_names: Option<String>,
    api_key: Option<String>,
    bearer_token: Option<String>,
    tls_ca_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    tls_domain: Option<String>,
    timeout_ms: u32,
    max_in_flight: u32,
    interval: u32,
    stream_id: String,
    decoder: DecoderProp,
    conf_threshold: f64,
    iou_threshold: f64,
    max_detections: u32,
    class_agnostic_nms: bool,
    labels_file: Option<String>,
    classes: Option<String>,
    on_error: OnError,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: "http://localhost:50051".into(),
            transport: TransportProp::Proxy,
            model: "yolov8n".into(),
            model_version: String::new(),
            input_name: None,
            output_names: None,
            api_key: None,
            bearer_token: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_domain: None,
            timeout_ms: 30000,
            max_in_flight: 4,
            interval: 1,
            stream_id: "cam-001".into(),
            decoder: DecoderProp::Auto,
            conf_threshold: 0.25,
            iou_threshold: 0.45,
            max_detections: 300,
            class_agnostic_nms: false,
            labels_file: None,
            classes: None,
            on_error: OnError::Skip,
        }
    }
}

enum Item {
    Frame {
        buffer: gst::Buffer,
        frame_no: u64,
        request_id: String,
        rx: Option<oneshot::Receiver<Result<InferOutput, String>>>,
        submitted: Instant,
        geometry: Letterbox,
    },
    /// A frame passed on without a request (interval).
    Skipped {
        buffer: gst::Buffer,
        frame_no: u64,
    },
    Event(gst::Event),
}

struct Shared {
    queue: VecDeque<Item>,
    frames_queued: usize,
    flushing: bool,
    flow: Result<gst::FlowSuccess, gst::FlowError>,
}

/// Created on READY→PAUSED, dropped on PAUSED→READY.
struct Running {
    client: Arc<Client>,
    settings: Settings,
    input_name: String,
    decoder: Option<Decoder>,
    labels: Vec<String>,
    params: Params,
    frame_no: u64,
    failures_since_warning: u64,
    last_warning: Option<Instant>,
    described: bool,
    /// Labels came from labels-file: the model's class names do not replace them.
    labels_locked: bool,
}

pub struct TritonInfer {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    shared: Mutex<Shared>,
    cond: Condvar,
    flush_tx: watch::Sender<u64>,
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
            shared: Mutex::new(Shared {
                queue: VecDeque::new(),
                frames_queued: 0,
                flushing: true,
                flow: Ok(gst::FlowSuccess::Ok),
            }),
            cond: Condvar::new(),
            flush_tx: watch::channel(0).0,
        }
    }
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

impl TritonInfer {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        meta::register();
        let s = self.settings.lock().unwrap().clone();
        let output_names: Vec<String> = s
            .output_names
            .as_deref()
            .map(|o| {
                o.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_else(|| {
                if s.transport == TransportProp::Proxy {
                    vec!["output0".to_string()]
                } else {
                    vec![]
                }
            });
        let cfg = ClientConfig {
            url: s.url.clone(),
            transport: if s.transport == TransportProp::Proxy {
                Transport::Proxy
            } else {
                Transport::Triton
            },
            model: s.model.clone(),
            model_version: s.model_version.clone(),
            output_names,
            api_key: s.api_key.clone().or_else(|| env_nonempty("DOMINO_API_KEY")),
            bearer_token: s
                .bearer_token
                .clone()
                .or_else(|| env_nonempty("GRPC_BEARER_TOKEN")),
            tls_ca_file: s.tls_ca_file.clone(),
            tls_cert_file: s.tls_cert_file.clone(),
            tls_key_file: s.tls_key_file.clone(),
            tls_domain: s.tls_domain.clone(),
            timeout: Duration::from_millis(s.timeout_ms as u64),
        };
        let mut labels: Vec<String> = COCO80.iter().map(|s| s.to_string()).collect();
        let mut from_file = false;
        if let Some(path) = &s.labels_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("tritoninfer: labels-file: cannot read {}: {}", path, e)
                )
            })?;
            labels = decode::parse_labels(&text);
            from_file = true;
        }
        let decoder = match s.decoder {
            DecoderProp::Auto | DecoderProp::None => None,
            DecoderProp::Yolov8 => Some(Decoder::Yolov8),
            DecoderProp::XyxyScoreClass => Some(Decoder::XyxyScoreClass),
            DecoderProp::EfficientNms => Some(Decoder::EfficientNms),
        };
        let params = Params {
            conf_threshold: s.conf_threshold as f32,
            iou_threshold: s.iou_threshold as f32,
            max_detections: s.max_detections as usize,
            class_agnostic: s.class_agnostic_nms,
            classes: None,
        };
        let mut running = Running {
            client: Arc::new(Client::new(cfg)),
            input_name: s.input_name.clone().unwrap_or_else(|| "images".into()),
            settings: s,
            decoder,
            labels,
            params,
            frame_no: 0,
            failures_since_warning: 0,
            last_warning: None,
            described: false,
            labels_locked: from_file,
        };
        running
            .resolve_classes()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("tritoninfer: {}", e)))?;
        *self.running.lock().unwrap() = Some(running);
        Ok(())
    }

    /// First frame: ask the model for its input name, outputs and class names (best effort).
    fn describe(&self, r: &mut Running) {
        r.described = true;
        let client = r.client.clone();
        let desc = RUNTIME.block_on(async move {
            tokio::time::timeout(Duration::from_secs(5), client.describe()).await
        });
        match desc {
            Ok(Ok(d)) => {
                if r.settings.input_name.is_none()
                    && let Some(n) = d.input_name
                {
                    r.input_name = n;
                }
                if r.settings.output_names.is_none() && !d.outputs.is_empty() {
                    // Ask for exactly the model's outputs (the proxy's default is only 'output0').
                    let mut cfg = r.client.config().clone();
                    cfg.output_names = d.outputs.iter().map(|(n, _)| n.clone()).collect();
                    r.client = Arc::new(Client::new(cfg));
                }
                if r.decoder.is_none()
                    && r.settings.decoder == DecoderProp::Auto
                    && !d.outputs.is_empty()
                {
                    match decode::detect(&d.outputs) {
                        Ok(k) => r.decoder = Some(k),
                        Err(e) => gst::warning!(CAT, imp = self, "{e}"),
                    }
                }
                if !r.labels_locked
                    && let Some(names) = d.class_names.filter(|n| !n.is_empty())
                {
                    r.labels = names;
                    let _ = r.resolve_classes();
                }
                gst::info!(
                    CAT,
                    imp = self,
                    "model {}: input {}, decoder {:?}, {} labels",
                    r.settings.model,
                    r.input_name,
                    r.decoder,
                    r.labels.len()
                );
            }
            Ok(Err(e)) => gst::warning!(
                CAT,
                imp = self,
                "model description unavailable ({e}); using input '{}' and deciding the decoder from the first answer",
                r.input_name
            ),
            Err(_) => gst::warning!(
                CAT,
                imp = self,
                "model description timed out; using defaults"
            ),
        }
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(tm) = meta::tensor_meta(&buffer) else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("tritoninfer: frame has no TritonTensorMeta; put tritonletterbox before tritoninfer (e.g. '... ! tritonletterbox ! tritoninfer ! ...')")
            );
            return Err(gst::FlowError::Error);
        };
        let item = {
            let mut guard = self.running.lock().unwrap();
            let Some(r) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            if !r.described {
                self.describe(r);
            }
            let frame_no = r.frame_no;
            r.frame_no += 1;
            if frame_no % r.settings.interval.max(1) as u64 != 0 {
                Item::Skipped { buffer, frame_no }
            } else {
                let request_id = format!("{}:{}", r.settings.stream_id, frame_no);
                let data = tm
                    .tensor
                    .clone()
                    .into_mapped_buffer_readable()
                    .map_err(|_| gst::FlowError::Error)?;
                let req = Request {
                    id: request_id.clone(),
                    input_name: r.input_name.clone(),
                    dtype: tm.dtype.clone(),
                    shape: tm.shape.clone(),
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
                    geometry: tm.geometry,
                }
            }
        };
        let max = self.settings.lock().unwrap().max_in_flight.max(1) as usize;
        let mut sh = self.shared.lock().unwrap();
        while sh.frames_queued >= max && !sh.flushing && sh.flow.is_ok() {
            sh = self.cond.wait(sh).unwrap();
        }
        if sh.flushing {
            return Err(gst::FlowError::Flushing);
        }
        sh.flow?;
        sh.frames_queued += 1;
        sh.queue.push_back(item);
        self.cond.notify_all();
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::FlushStart(_) => {
                self.set_flushing(true);
                let ok = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                ok
            }
            EventView::FlushStop(_) => {
                self.set_flushing(false);
                let ok = self.srcpad.push_event(event);
                self.start_task();
                ok
            }
            _ if event.is_serialized() => {
                let mut sh = self.shared.lock().unwrap();
                if sh.flushing {
                    return false;
                }
                sh.queue.push_back(Item::Event(event));
                self.cond.notify_all();
                true
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn set_flushing(&self, flushing: bool) {
        let mut sh = self.shared.lock().unwrap();
        sh.flushing = flushing;
        if flushing {
            // Dropping the receivers abandons the in-flight answers.
            sh.queue.clear();
            sh.frames_queued = 0;
            self.flush_tx.send_modify(|n| *n += 1);
        } else {
            sh.flow = Ok(gst::FlowSuccess::Ok);
        }
        self.cond.notify_all();
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

    fn src_loop(&self) {
        // Wait for the head item; take its receiver but leave it queued (it still counts).
        let mut flush_rx = self.flush_tx.subscribe();
        let rx = {
            let mut sh = self.shared.lock().unwrap();
            while sh.queue.is_empty() && !sh.flushing {
                sh = self.cond.wait(sh).unwrap();
            }
            if sh.flushing {
                let _ = self.srcpad.pause_task();
                return;
            }
            match sh.queue.front_mut() {
                Some(Item::Frame { rx, .. }) => rx.take(),
                _ => None,
            }
        };
        let result = match rx {
            Some(rx) => {
                let got = RUNTIME.block_on(async {
                    tokio::select! {
                        r = rx => Some(r.unwrap_or_else(|_| Err("request abandoned".into()))),
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
        let item = {
            let mut sh = self.shared.lock().unwrap();
            if sh.flushing {
                let _ = self.srcpad.pause_task();
                return;
            }
            let item = sh.queue.pop_front();
            if matches!(item, Some(Item::Frame { .. } | Item::Skipped { .. })) {
                sh.frames_queued -= 1;
            }
            self.cond.notify_all();
            item
        };
        let flow = match item {
            None => return,
            Some(Item::Event(e)) => {
                let is_eos = matches!(e.view(), gst::EventView::Eos(_));
                if !self.srcpad.push_event(e) && is_eos {
                    gst::debug!(CAT, imp = self, "EOS not handled downstream");
                }
                Ok(gst::FlowSuccess::Ok)
            }
            Some(Item::Skipped {
                mut buffer,
                frame_no,
            }) => {
                let (model, version) = self.model_names();
                meta::add_result_meta(
                    buffer.make_mut(),
                    &meta::ResultMeta {
                        status: "skipped".into(),
                        model,
                        model_version: version,
                        frame: frame_no,
                        ..Default::default()
                    },
                );
                self.srcpad.push(buffer)
            }
            Some(Item::Frame {
                buffer,
                frame_no,
                request_id,
                submitted,
                geometry,
                ..
            }) => {
                let res = result.unwrap_or_else(|| Err("no request".into()));
                match self.finish_frame(buffer, frame_no, request_id, submitted, geometry, res) {
                    Ok(b) => self.srcpad.push(b),
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = flow {
            let mut sh = self.shared.lock().unwrap();
            sh.flow = Err(e);
            self.cond.notify_all();
            drop(sh);
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

    fn model_names(&self) -> (String, String) {
        let s = self.settings.lock().unwrap();
        (s.model.clone(), s.model_version.clone())
    }

    fn finish_frame(
        &self,
        mut buffer: gst::Buffer,
        frame_no: u64,
        request_id: String,
        submitted: Instant,
        geometry: Letterbox,
        res: Result<InferOutput, String>,
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
        let decoded = res.and_then(|out| {
            result.model_version = out.model_version.clone();
            r.decode(&out)
        });
        let b = buffer.make_mut();
        match decoded {
            Ok(dets) => {
                let (fw, fh) = (geometry.src_w, geometry.src_h);
                for d in dets {
                    let bb = geometry.box_to_frame([
                        d.bbox[0] as f64,
                        d.bbox[1] as f64,
                        d.bbox[2] as f64,
                        d.bbox[3] as f64,
                    ]);
                    if bb[2] - bb[0] <= 0.0 || bb[3] - bb[1] <= 0.0 {
                        continue;
                    }
                    let label = r
                        .labels
                        .get(d.class)
                        .cloned()
                        .unwrap_or_else(|| format!("class{}", d.class));
                    meta::add_detection(
                        b,
                        &meta::Detection {
                            label: label.clone(),
                            class_id: d.class as i32,
                            confidence: d.score as f64,
                            bbox: bb,
                        },
                        fw,
                        fh,
                    );
                    result.detections += 1;
                    result.labels.push(label);
                }
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
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Failed,
                        (
                            "tritoninfer: inference failed for frame {}: {}",
                            frame_no,
                            e
                        )
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

impl Running {
    /// Class filter from the `classes` property (labels or ids), against the current labels.
    fn resolve_classes(&mut self) -> Result<(), String> {
        self.params.classes = match self
            .settings
            .classes
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            None => None,
            Some(list) => {
                let mut ids = Vec::new();
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match item.parse::<usize>() {
                        Ok(i) => ids.push(i),
                        Err(_) => match self.labels.iter().position(|l| l == item) {
                            Some(i) => ids.push(i),
                            None => {
                                return Err(format!(
                                    "classes: '{item}' is neither a class id nor a known label (labels: {})",
                                    self.labels.join(", ")
                                ));
                            }
                        },
                    }
                }
                Some(ids)
            }
        };
        Ok(())
    }

    fn decode(&mut self, out: &InferOutput) -> Result<Vec<decode::Det>, String> {
        if self.settings.decoder == DecoderProp::None {
            return Ok(vec![]);
        }
        let decoder = match self.decoder {
            Some(d) => d,
            None => {
                let seen: Vec<(String, Vec<i64>)> = out
                    .outputs
                    .iter()
                    .map(|o| (o.name.clone(), o.shape.clone()))
                    .collect();
                let d = decode::detect(&seen)?;
                self.decoder = Some(d);
                d
            }
        };
        let outs: Vec<decode::Output> = out
            .outputs
            .iter()
            .map(|o| decode::Output {
                name: &o.name,
                dtype: &o.dtype,
                shape: &o.shape,
                data: &o.data,
            })
            .collect();
        decode::decode(decoder, &outs, &self.params)
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
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            let s = |name: &str, blurb: &str, def: Option<&str>| {
                glib::ParamSpecString::builder(name)
                    .blurb(blurb)
                    .default_value(def)
                    .mutable_ready()
                    .build()
            };
            vec![
                s(
                    "url",
                    "gRPC address of triton-proxy (transport=proxy) or Triton (transport=triton); https:// for TLS",
                    Some(&d.url),
                ),
                glib::ParamSpecEnum::builder_with_default("transport", d.transport)
                    .blurb("proxy: multimodal Chat stream; triton: ModelStreamInfer")
                    .mutable_ready()
                    .build(),
                s("model", "Model name", Some(&d.model)),
                s(
                    "model-version",
                    "Model version (empty = server's choice)",
                    Some(""),
                ),
                s(
                    "input-name",
                    "Input tensor name (unset: from model metadata, else 'images')",
                    None,
                ),
                s(
                    "output-names",
                    "Comma-separated output names (unset: proxy 'output0'; triton all outputs)",
                    None,
                ),
                s(
                    "api-key",
                    "Sent as x-domino-api-key (unset: env DOMINO_API_KEY); never logged",
                    None,
                ),
                s(
                    "bearer-token",
                    "Sent as authorization: Bearer (unset: env GRPC_BEARER_TOKEN); never logged",
                    None,
                ),
                s(
                    "tls-ca-file",
                    "PEM CA to verify the server (enables TLS)",
                    None,
                ),
                s("tls-cert-file", "PEM client certificate (mTLS)", None),
                s("tls-key-file", "PEM client key (mTLS)", None),
                s(
                    "tls-domain",
                    "Server name to verify (default: host of url)",
                    None,
                ),
                glib::ParamSpecUInt::builder("timeout-ms")
                    .blurb("Per-request timeout")
                    .minimum(1)
                    .default_value(d.timeout_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-in-flight")
                    .blurb("Requests outstanding at once; frames wait (back-pressure) when full")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(d.max_in_flight)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .blurb("Infer every Nth frame; others pass with status 'skipped'")
                    .minimum(1)
                    .default_value(d.interval)
                    .mutable_ready()
                    .build(),
                s(
                    "stream-id",
                    "Stream name used in request ids '<stream-id>:<frame>'",
                    Some(&d.stream_id),
                ),
                glib::ParamSpecEnum::builder_with_default("decoder", d.decoder)
                    .blurb("Output layout")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("conf-threshold")
                    .blurb("Minimum confidence")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.conf_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("iou-threshold")
                    .blurb("NMS IoU threshold")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.iou_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-detections")
                    .blurb("Most detections per frame")
                    .minimum(1)
                    .default_value(d.max_detections)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("class-agnostic-nms")
                    .blurb("NMS across classes")
                    .default_value(d.class_agnostic_nms)
                    .mutable_ready()
                    .build(),
                s(
                    "labels-file",
                    "Class names, one per line (default: model config 'class_names', else COCO-80)",
                    None,
                ),
                s(
                    "classes",
                    "Keep only these classes: comma-separated labels or ids",
                    None,
                ),
                glib::ParamSpecEnum::builder_with_default("on-error", d.on_error)
                    .blurb("What a failed request does")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let opt = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked")
                .filter(|s| !s.is_empty())
        };
        match pspec.name() {
            "url" => s.url = opt(value).unwrap_or_default(),
            "transport" => s.transport = value.get().expect("type checked"),
            "model" => s.model = opt(value).unwrap_or_default(),
            "model-version" => s.model_version = opt(value).unwrap_or_default(),
            "input-name" => s.input_name = opt(value),
            "output-names" => s.output_names = opt(value),
            "api-key" => s.api_key = opt(value),
            "bearer-token" => s.bearer_token = opt(value),
            "tls-ca-file" => s.tls_ca_file = opt(value),
            "tls-cert-file" => s.tls_cert_file = opt(value),
            "tls-key-file" => s.tls_key_file = opt(value),
            "tls-domain" => s.tls_domain = opt(value),
            "timeout-ms" => s.timeout_ms = value.get().expect("type checked"),
            "max-in-flight" => s.max_in_flight = value.get().expect("type checked"),
            "interval" => s.interval = value.get().expect("type checked"),
            "stream-id" => s.stream_id = opt(value).unwrap_or_default(),
            "decoder" => s.decoder = value.get().expect("type checked"),
            "conf-threshold" => s.conf_threshold = value.get().expect("type checked"),
            "iou-threshold" => s.iou_threshold = value.get().expect("type checked"),
            "max-detections" => s.max_detections = value.get().expect("type checked"),
            "class-agnostic-nms" => s.class_agnostic_nms = value.get().expect("type checked"),
            "labels-file" => s.labels_file = opt(value),
            "classes" => s.classes = opt(value),
            "on-error" => s.on_error = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "url" => s.url.to_value(),
            "transport" => s.transport.to_value(),
            "model" => s.model.to_value(),
            "model-version" => s.model_version.to_value(),
            "input-name" => s.input_name.to_value(),
            "output-names" => s.output_names.to_value(),
            // Secrets are write-only in effect: reading them back never reveals the value.
            "api-key" => s.api_key.as_ref().map(|_| "*****").to_value(),
            "bearer-token" => s.bearer_token.as_ref().map(|_| "*****").to_value(),
            "tls-ca-file" => s.tls_ca_file.to_value(),
            "tls-cert-file" => s.tls_cert_file.to_value(),
            "tls-key-file" => s.tls_key_file.to_value(),
            "tls-domain" => s.tls_domain.to_value(),
            "timeout-ms" => s.timeout_ms.to_value(),
            "max-in-flight" => s.max_in_flight.to_value(),
            "interval" => s.interval.to_value(),
            "stream-id" => s.stream_id.to_value(),
            "decoder" => s.decoder.to_value(),
            "conf-threshold" => s.conf_threshold.to_value(),
            "iou-threshold" => s.iou_threshold.to_value(),
            "max-detections" => s.max_detections.to_value(),
            "class-agnostic-nms" => s.class_agnostic_nms.to_value(),
            "labels-file" => s.labels_file.to_value(),
            "classes" => s.classes.to_value(),
            "on-error" => s.on_error.to_value(),
            other => unreachable!("unknown property {other}"),
        }
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
            crate::src_sink_templates(&caps)
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
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            *self.running.lock().unwrap() = None;
        }
        Ok(ret)
    }
}

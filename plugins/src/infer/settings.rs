//! `tritoninfer`'s properties: the enums, [`Settings`] with the documented defaults, the
//! `GParamSpec` table and the mapping between the two. No GStreamer state lives here.

use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use triton_endpoint::{Auth, Names, Target, Tls};

use triton_client::shm::ShmPool;
use triton_client::{ClientConfig, Transport};

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonTransport")]
pub enum TransportProp {
    #[enum_value(name = "triton-proxy: multimodal.MultiModal/Chat", nick = "proxy")]
    Proxy = 0,
    #[enum_value(name = "Triton directly: ModelStreamInfer", nick = "triton")]
    Triton = 1,
    #[enum_value(
        name = "Any KServe v2 server directly: unary ModelInfer, pipelined",
        nick = "kserve"
    )]
    Kserve = 2,
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
    #[enum_value(
        name = "Classifier on tritonletterbox objects=true crops: [batch, classes] scores (logits or probabilities), the best class attached to each object",
        nick = "classify"
    )]
    Classify = 5,
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

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstTritonSharedMemory")]
pub enum SharedMemoryProp {
    #[enum_value(name = "Tensors travel in the gRPC messages", nick = "none")]
    None = 0,
    #[enum_value(
        name = "POSIX shared memory registered with Triton (transport=triton or kserve, same host)",
        nick = "system"
    )]
    System = 1,
}

#[derive(Clone)]
pub struct Settings {
    pub url: String,
    pub transport: TransportProp,
    pub kserve_service: String,
    pub model: String,
    pub model_version: String,
    pub input_name: Option<String>,
    pub output_names: Option<String>,
    pub api_key: Option<String>,
    pub bearer_token: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub tls_domain: Option<String>,
    pub timeout_ms: u32,
    pub max_in_flight: u32,
    pub interval: u32,
    pub stream_id: String,
    pub decoder: DecoderProp,
    pub conf_threshold: f64,
    pub iou_threshold: f64,
    pub max_detections: u32,
    pub class_agnostic_nms: bool,
    pub labels_file: Option<String>,
    pub classes: Option<String>,
    pub on_error: OnError,
    pub shared_memory: SharedMemoryProp,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: "http://localhost:50051".into(),
            transport: TransportProp::Proxy,
            kserve_service: triton_client::transport::unary::DEFAULT_SERVICE.into(),
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
            shared_memory: SharedMemoryProp::None,
        }
    }
}

/// The property table (names, blurbs, ranges, defaults from [`Settings::default`]).
pub fn properties() -> Vec<glib::ParamSpec> {
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
            "gRPC address of triton-proxy (transport=proxy), Triton (transport=triton) or a KServe v2 server (transport=kserve); https:// for TLS",
            Some(&d.url),
        ),
        glib::ParamSpecEnum::builder_with_default("transport", d.transport)
            .blurb("proxy: multimodal Chat stream; triton: ModelStreamInfer; kserve: unary ModelInfer (any KServe v2 server)")
            .mutable_ready()
            .build(),
        s(
            "kserve-service",
            "gRPC service of transport=kserve, for servers that rename the package",
            Some(&d.kserve_service),
        ),
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
            .blurb("Minimum confidence (may change while playing: the next answer uses it)")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(d.conf_threshold)
            .mutable_playing()
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
        glib::ParamSpecEnum::builder_with_default("shared-memory", d.shared_memory)
            .blurb("system: tensors go through POSIX shared memory registered with Triton (transport=triton, Triton on this host)")
            .mutable_ready()
            .build(),
    ]
}

impl Settings {
    /// Stores a property value (type-checked by GObject before it gets here).
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        let s = self;
        let opt = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked")
                .filter(|s| !s.is_empty())
        };
        match name {
            "url" => s.url = opt(value).unwrap_or_default(),
            "transport" => s.transport = value.get().expect("type checked"),
            "kserve-service" => {
                s.kserve_service = opt(value)
                    .unwrap_or_else(|| triton_client::transport::unary::DEFAULT_SERVICE.into())
            }
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
            "shared-memory" => s.shared_memory = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    /// Reads a property back; secrets come back masked.
    pub fn get(&self, name: &str) -> glib::Value {
        let s = self;
        match name {
            "url" => s.url.to_value(),
            "transport" => s.transport.to_value(),
            "kserve-service" => s.kserve_service.to_value(),
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
            "shared-memory" => s.shared_memory.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

impl Settings {
    /// The client's configuration: address, TLS and credentials (properties first, then the
    /// `DOMINO_API_KEY` / `GRPC_BEARER_TOKEN` environment), outputs to ask for, shared memory.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        if self.shared_memory == SharedMemoryProp::System && self.transport == TransportProp::Proxy
        {
            return Err("shared-memory=system needs transport=triton or kserve: the proxy carries tensors over the network; set shared-memory=none, or transport=triton with Triton on this host".into());
        }
        if !triton_client::transport::unary::valid_service(&self.kserve_service) {
            return Err(format!(
                "kserve-service: '{}' is not a gRPC service name; expected package.Service, e.g. {}",
                self.kserve_service,
                triton_client::transport::unary::DEFAULT_SERVICE
            ));
        }
        let mut target = Target::new(self.url.clone(), Names::ELEMENT);
        target.keepalive = Some(Duration::from_secs(30));
        target.tls = Tls {
            ca_file: self.tls_ca_file.clone(),
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
            domain: self.tls_domain.clone(),
        };
        let api_key = self
            .api_key
            .clone()
            .or_else(|| env_nonempty("DOMINO_API_KEY"));
        let bearer = self
            .bearer_token
            .clone()
            .or_else(|| env_nonempty("GRPC_BEARER_TOKEN"));
        let output_names = match &self.output_names {
            Some(o) => o
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect(),
            // The proxy needs a name; Triton sends every output when none is asked for.
            None if self.transport == TransportProp::Proxy => vec!["output0".to_string()],
            None => vec![],
        };
        let auth = Auth::new(api_key.as_deref(), bearer.as_deref(), &Names::ELEMENT)
            .map_err(|e| e.to_string())?;
        Ok(ClientConfig {
            shm: (self.shared_memory == SharedMemoryProp::System)
                .then(|| ShmPool::new(target.clone(), auth.clone())),
            target,
            auth,
            transport: match self.transport {
                TransportProp::Proxy => Transport::Proxy,
                TransportProp::Triton => Transport::TritonStream,
                TransportProp::Kserve => Transport::KserveUnary,
            },
            kserve_service: self.kserve_service.clone(),
            model: self.model.clone(),
            model_version: self.model_version.clone(),
            output_names,
            timeout: Duration::from_millis(self.timeout_ms as u64),
        })
    }
}

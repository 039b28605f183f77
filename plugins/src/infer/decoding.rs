//! [`Decoding`], the decoding policy of one `tritoninfer` run (READY→PAUSED to PAUSED→READY):
//! which labels, which classes, which decoder, what the model's description changes, and how an
//! answer becomes detections in frame pixels. No GStreamer and no network here, so all of it is
//! unit-tested.

use triton_client::{Answer, ModelDesc};

use super::settings::{DecoderProp, Settings};
use crate::decode::{self, COCO80, Decoder, Params};
use crate::letterbox::geometry::Letterbox;
use crate::meta::{Attribute, Detection};

/// What a model description changed, for the element to act on and log.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// Ask for exactly these outputs from now on (output-names was not set).
    pub outputs: Option<Vec<String>>,
    /// The description could not choose a decoder (the first answer will).
    pub warning: Option<String>,
}

/// The decoding policy of one run.
pub struct Decoding {
    /// The input tensor's name in requests.
    pub input_name: String,
    input_fixed: bool,
    outputs_fixed: bool,
    /// `None` until fixed by the property, the model description or the first answer.
    decoder: Option<Decoder>,
    setting: DecoderProp,
    labels: Vec<String>,
    /// Labels came from labels-file: the model's class names do not replace them.
    labels_locked: bool,
    /// The last `class_names` tensor taken from an answer (unchanged ones are not parsed again).
    labels_seen: Option<bytes::Bytes>,
    classes: Option<String>,
    params: Params,
}

impl Decoding {
    /// `labels_text`: the contents of labels-file, when set.
    pub fn new(s: &Settings, labels_text: Option<&str>) -> Result<Decoding, String> {
        let (labels, labels_locked) = match labels_text {
            Some(t) => (decode::parse_labels(t), true),
            None => (COCO80.iter().map(|s| s.to_string()).collect(), false),
        };
        let mut session = Decoding {
            input_name: s.input_name.clone().unwrap_or_else(|| "images".into()),
            input_fixed: s.input_name.is_some(),
            outputs_fixed: s.output_names.is_some(),
            decoder: match s.decoder {
                DecoderProp::Auto | DecoderProp::None | DecoderProp::Classify => None,
                DecoderProp::Yolov8 => Some(Decoder::Yolov8),
                DecoderProp::XyxyScoreClass => Some(Decoder::XyxyScoreClass),
                DecoderProp::EfficientNms => Some(Decoder::EfficientNms),
            },
            setting: s.decoder,
            labels,
            labels_locked,
            labels_seen: None,
            classes: s.classes.clone(),
            params: Params {
                conf_threshold: s.conf_threshold as f32,
                iou_threshold: s.iou_threshold as f32,
                max_detections: s.max_detections as usize,
                class_agnostic: s.class_agnostic_nms,
                classes: None,
            },
        };
        session.resolve_classes()?;
        Ok(session)
    }

    /// `conf-threshold` changed while running: the answers from now on use it.
    pub fn set_conf_threshold(&mut self, t: f64) {
        self.params.conf_threshold = t as f32;
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Thresholds and filters (NMS across regions uses them too).
    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn decoder(&self) -> Option<Decoder> {
        self.decoder
    }

    /// `decoder=classify`: answers are classes of objects, not detections.
    pub fn is_classify(&self) -> bool {
        self.setting == DecoderProp::Classify
    }

    /// `decoder=classify`: the best class of each of the `n` objects sent (in batch order), or
    /// `None` where it is under `conf-threshold`.
    pub fn classify(
        &mut self,
        out: &Answer,
        n: usize,
        model: &str,
    ) -> Result<Vec<Option<Attribute>>, String> {
        self.take_labels(out);
        let outs: Vec<decode::Output> = outputs(out)
            .into_iter()
            .filter(|o| o.name != decode::LABELS_OUTPUT)
            .collect();
        let classes = decode::classify::classify(&outs, n, self.params.conf_threshold)?;
        Ok(classes
            .into_iter()
            .map(|c| {
                c.map(|c| Attribute {
                    model: model.to_string(),
                    label: self
                        .labels
                        .get(c.class)
                        .cloned()
                        .unwrap_or_else(|| format!("class{}", c.class)),
                    class_id: c.class as i32,
                    confidence: c.confidence as f64,
                    cached: false,
                })
            })
            .collect())
    }

    /// Takes what the model says about itself: its input name, outputs, decoder and class
    /// names, each only where no property fixed it.
    pub fn apply(&mut self, d: ModelDesc) -> Applied {
        let mut applied = Applied::default();
        if !self.input_fixed
            && let Some(n) = d.input_name
        {
            self.input_name = n;
        }
        if !d.outputs.is_empty() {
            if !self.outputs_fixed {
                // Ask for exactly the model's outputs (the proxy's default is only 'output0').
                applied.outputs = Some(d.outputs.iter().map(|(n, _)| n.clone()).collect());
            }
            if self.decoder.is_none() && self.setting == DecoderProp::Auto {
                match decode::detect(&d.outputs) {
                    Ok(k) => self.decoder = Some(k),
                    Err(e) => applied.warning = Some(e),
                }
            }
        }
        if !self.labels_locked
            && let Some(names) = d.class_names.filter(|n| !n.is_empty())
        {
            self.labels = names;
            // A classes label the model lacks keeps the filter resolved at start.
            let _ = self.resolve_classes();
        }
        applied
    }

    /// Class names carried by the answer itself (the `class_names` output), unless labels-file
    /// fixed them.
    fn take_labels(&mut self, out: &Answer) {
        if self.labels_locked {
            return;
        }
        let Some(tensor) = out.outputs.iter().find(|o| {
            o.name == decode::LABELS_OUTPUT && matches!(o.dtype.as_str(), "BYTES" | "bytes")
        }) else {
            return;
        };
        // Every answer carries the same names: parse them only when the bytes change.
        if self.labels_seen.as_ref() == Some(&tensor.data) {
            return;
        }
        self.labels_seen = Some(tensor.data.clone());
        let Some(names) = decode::labels_from_tensor(&tensor.shape, &tensor.data) else {
            return;
        };
        if names != self.labels {
            self.labels = names;
            // A classes label the model lacks keeps the filter resolved before.
            let _ = self.resolve_classes();
        }
    }

    /// Class filter from the `classes` property (labels or ids), against the current labels.
    fn resolve_classes(&mut self) -> Result<(), String> {
        let Some(list) = self
            .classes
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        else {
            self.params.classes = None;
            return Ok(());
        };
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
        // Only separators ("," or " , "): no filter, rather than one that keeps nothing.
        self.params.classes = (!ids.is_empty()).then_some(ids);
        Ok(())
    }

    /// The model's raw detections (tensor pixels), choosing the decoder from this answer when
    /// nothing chose it before.
    pub fn decode(&mut self, out: &Answer) -> Result<Vec<decode::Det>, String> {
        self.take_labels(out);
        if self.setting == DecoderProp::None {
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
        decode::decode(decoder, &outputs(out), &self.params)
    }

    /// Detections in frame pixels with their labels; boxes that fall entirely into the padding
    /// (nothing left after clipping to the frame) are dropped.
    pub fn detections(&self, dets: Vec<decode::Det>, geometry: &Letterbox) -> Vec<Detection> {
        dets.into_iter()
            .filter_map(|d| {
                let bbox = geometry.box_to_frame(d.bbox.map(f64::from));
                if bbox[2] - bbox[0] <= 0.0 || bbox[3] - bbox[1] <= 0.0 {
                    return None;
                }
                Some(Detection {
                    label: self
                        .labels
                        .get(d.class)
                        .cloned()
                        .unwrap_or_else(|| format!("class{}", d.class)),
                    class_id: d.class as i32,
                    confidence: d.score as f64,
                    bbox,
                    track: None,
                })
            })
            .collect()
    }
}

/// The answer's output tensors as the decoders read them (borrowed, no copy).
fn outputs(out: &Answer) -> Vec<decode::Output<'_>> {
    out.outputs
        .iter()
        .map(|o| decode::Output {
            name: &o.name,
            dtype: &o.dtype,
            shape: &o.shape,
            data: &o.data,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use triton_client::OutTensor;

    fn settings() -> Settings {
        Settings::default()
    }

    fn det(bbox: [f32; 4], class: usize, score: f32) -> decode::Det {
        decode::Det { bbox, score, class }
    }

    /// One `[1,M,6]` output (x1, y1, x2, y2, score, class).
    fn xyxy_answer(rows: &[[f32; 6]]) -> Answer {
        xyxy_batch(&[rows.to_vec()])
    }

    /// One `[n,M,6]` output (x1, y1, x2, y2, score, class), `rows[i]` for item `i`.
    pub(crate) fn xyxy_batch(rows: &[Vec<[f32; 6]>]) -> Answer {
        let m = rows[0].len();
        let data: Vec<u8> = rows
            .iter()
            .flatten()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        Answer {
            model_version: "1".into(),
            outputs: vec![OutTensor {
                name: "output0".into(),
                dtype: "FP32".into(),
                shape: vec![rows.len() as i64, m as i64, 6],
                data: data.into(),
            }],
        }
    }

    #[test]
    fn defaults_are_coco_images_and_no_decoder_yet() {
        let s = Decoding::new(&settings(), None).unwrap();
        assert_eq!(s.labels().len(), 80);
        assert_eq!(s.labels()[1], "bicycle");
        assert_eq!(s.input_name, "images");
        assert_eq!(s.decoder(), None);
    }

    #[test]
    fn classes_resolve_by_label_or_id_and_name_the_property_when_unknown() {
        let mut st = settings();
        st.classes = Some(" person, 2 ,dog".into());
        let s = Decoding::new(&st, None).unwrap();
        assert_eq!(s.params.classes, Some(vec![0, 2, 16]));

        st.classes = Some("person,unicorn".into());
        let e = Decoding::new(&st, None).err().unwrap();
        assert!(
            e.starts_with("classes: 'unicorn' is neither a class id nor a known label (labels: person, bicycle"),
            "{e}"
        );

        st.classes = Some(" , ".into());
        assert_eq!(Decoding::new(&st, None).unwrap().params.classes, None);
    }

    #[test]
    fn a_labels_file_wins_over_the_model_names() {
        let mut st = settings();
        st.classes = Some("b".into());
        let mut s = Decoding::new(&st, Some("a\nb\n")).unwrap();
        assert_eq!(s.labels(), ["a", "b"]);
        assert_eq!(s.params.classes, Some(vec![1]));
        s.apply(ModelDesc {
            class_names: Some(vec!["x".into(), "y".into(), "b".into()]),
            ..Default::default()
        });
        assert_eq!(s.labels(), ["a", "b"]);
        assert_eq!(s.params.classes, Some(vec![1]));
    }

    #[test]
    fn the_model_description_sets_input_outputs_decoder_and_labels() {
        let mut st = settings();
        st.classes = Some("blue".into());
        // "blue" is no COCO label: fails until the model's names are known.
        assert!(Decoding::new(&st, None).is_err());
        st.classes = None;
        let mut s = Decoding::new(&st, None).unwrap();
        let applied = s.apply(ModelDesc {
            input_name: Some("pixels".into()),
            outputs: vec![("output0".into(), vec![1, 8, 8400])],
            class_names: Some(vec!["red".into(), "green".into(), "blue".into()]),
            ..Default::default()
        });
        assert_eq!(applied.outputs, Some(vec!["output0".to_string()]));
        assert_eq!(applied.warning, None);
        assert_eq!(s.input_name, "pixels");
        assert_eq!(s.decoder(), Some(Decoder::Yolov8));
        assert_eq!(s.labels(), ["red", "green", "blue"]);
    }

    #[test]
    fn properties_win_over_the_model_description() {
        let mut st = settings();
        st.input_name = Some("mine".into());
        st.output_names = Some("a,b".into());
        st.decoder = DecoderProp::EfficientNms;
        let mut s = Decoding::new(&st, None).unwrap();
        let applied = s.apply(ModelDesc {
            input_name: Some("theirs".into()),
            outputs: vec![("output0".into(), vec![1, 8, 8400])],
            ..Default::default()
        });
        assert_eq!(applied, Applied::default());
        assert_eq!(s.input_name, "mine");
        assert_eq!(s.decoder(), Some(Decoder::EfficientNms));
        assert_eq!(s.labels()[0], "person");
    }

    #[test]
    fn an_unknown_layout_is_a_warning_and_the_first_answer_decides() {
        let mut s = Decoding::new(&settings(), None).unwrap();
        let applied = s.apply(ModelDesc {
            outputs: vec![("weird".into(), vec![7])],
            ..Default::default()
        });
        assert!(applied.warning.is_some());
        assert_eq!(s.decoder(), None);
        let dets = s
            .decode(&xyxy_answer(&[[1.0, 2.0, 30.0, 40.0, 0.9, 3.0]]))
            .unwrap();
        assert_eq!(s.decoder(), Some(Decoder::XyxyScoreClass));
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, 3);
        assert_eq!(dets[0].bbox, [1.0, 2.0, 30.0, 40.0]);
    }

    #[test]
    fn decoder_none_decodes_nothing_and_thresholds_apply() {
        let mut st = settings();
        st.decoder = DecoderProp::None;
        let mut s = Decoding::new(&st, None).unwrap();
        let answer = xyxy_answer(&[[1.0, 2.0, 30.0, 40.0, 0.9, 0.0]]);
        assert!(s.decode(&answer).unwrap().is_empty());
        s.apply(ModelDesc {
            outputs: vec![("output0".into(), vec![1, 8, 8400])],
            ..Default::default()
        });
        assert_eq!(
            s.decoder(),
            None,
            "decoder=none: the model does not choose one"
        );
        assert!(s.decode(&answer).unwrap().is_empty());

        let mut st = settings();
        st.conf_threshold = 0.95;
        let mut s = Decoding::new(&st, None).unwrap();
        assert!(s.decode(&answer).unwrap().is_empty());
        st.conf_threshold = 0.85;
        let mut s = Decoding::new(&st, None).unwrap();
        assert_eq!(s.decode(&answer).unwrap().len(), 1);
        // Changed while running: the next answer is decoded with it.
        s.set_conf_threshold(0.95);
        assert!(s.decode(&answer).unwrap().is_empty());
        s.set_conf_threshold(0.85);
        assert_eq!(s.decode(&answer).unwrap().len(), 1);
    }

    #[test]
    fn an_answer_no_decoder_reads_is_an_error() {
        let mut s = Decoding::new(&settings(), None).unwrap();
        let e = s
            .decode(&Answer {
                model_version: String::new(),
                outputs: vec![OutTensor {
                    name: "x".into(),
                    dtype: "FP32".into(),
                    shape: vec![5],
                    data: vec![0; 20].into(),
                }],
            })
            .unwrap_err();
        assert!(!e.is_empty());
        assert_eq!(s.decoder(), None);
    }

    #[test]
    fn detections_map_back_to_frame_pixels_with_labels() {
        // 1280×720 into 640×640: r = 0.5, pad_y = 140.
        let g = Letterbox::new(1280, 720, 640, 640, true);
        let mut s = Decoding::new(&settings(), None).unwrap();
        s.apply(ModelDesc {
            class_names: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        });
        let out = s.detections(
            vec![
                det([10.0, 150.0, 110.0, 250.0], 1, 0.75),
                // Entirely in the top padding: nothing left after clipping.
                det([10.0, 0.0, 110.0, 100.0], 0, 0.9),
                // No width, and no height, inside the image.
                det([100.0, 150.0, 100.0, 250.0], 0, 0.9),
                det([10.0, 150.0, 110.0, 150.0], 0, 0.9),
                // A class the labels do not cover.
                det([0.0, 140.0, 640.0, 500.0], 7, 0.5),
            ],
            &g,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].label, "b");
        assert_eq!(out[0].class_id, 1);
        assert_eq!(out[0].confidence, 0.75);
        assert_eq!(out[0].bbox, [20.0, 20.0, 220.0, 220.0]);
        assert_eq!(out[1].label, "class7");
        assert_eq!(out[1].bbox, [0.0, 0.0, 1280.0, 720.0]);
    }
    /// Triton's BYTES encoding of `names` (one row).
    fn bytes_tensor(names: &[&str]) -> Vec<u8> {
        names
            .iter()
            .flat_map(|n| {
                let mut v = (n.len() as u32).to_le_bytes().to_vec();
                v.extend_from_slice(n.as_bytes());
                v
            })
            .collect()
    }

    #[test]
    fn labels_come_from_the_answer_unless_labels_file_fixed_them() {
        let mut answer = xyxy_answer(&[[1.0, 2.0, 3.0, 4.0, 0.9, 1.0]]);
        answer.outputs.push(OutTensor {
            name: "class_names".into(),
            dtype: "bytes".into(), // as the proxy names BYTES
            shape: vec![1, 2],
            data: bytes_tensor(&["Normal", "Fall"]).into(),
        });
        let mut s = Decoding::new(&settings(), None).unwrap();
        // Decoded despite the extra output (the decoder is chosen from the answer, too).
        let dets = s.decode(&answer).unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(s.labels(), ["Normal", "Fall"]);
        assert_eq!(s.decoder(), Some(Decoder::XyxyScoreClass));

        let mut locked = Decoding::new(&settings(), Some("x\ny\n")).unwrap();
        locked.decode(&answer).unwrap();
        assert_eq!(locked.labels(), ["x", "y"]);

        // Only a BYTES tensor of that name counts (the same bytes typed FP32 are not names).
        answer.outputs[1].dtype = "FP32".into();
        let mut s = Decoding::new(&settings(), None).unwrap();
        s.decode(&answer).unwrap();
        assert_eq!(s.labels()[1], "bicycle");
        answer.outputs[1].dtype = "BYTES".into();
        // A malformed tensor (length past the end) changes nothing.
        answer.outputs[1].data = vec![9, 0, 0, 0, b'a'].into();
        let mut s = Decoding::new(&settings(), None).unwrap();
        s.decode(&answer).unwrap();
        assert_eq!(s.labels()[1], "bicycle");
    }
}

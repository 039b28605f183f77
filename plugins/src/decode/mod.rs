//! Detection decoders for common Triton/YOLO output layouts, plus NMS. Pure functions, no
//! GStreamer types. Boxes come out in tensor pixels, `x1, y1, x2, y2`.
//!
//! Layouts:
//! * [`Decoder::Yolov8`]: raw head `[1, 4+nc, N]` or transposed `[1, N, 4+nc]` — `cx, cy, w, h`
//!   then one score per class; best class per anchor, threshold, then NMS.
//! * [`Decoder::XyxyScoreClass`]: `[1, M, 6]` rows `x1, y1, x2, y2, score, class` (already NMS-ed).
//! * [`Decoder::EfficientNms`]: four tensors `num_dets [1]`/`[1,1]`, `boxes [1,M,4]`,
//!   `scores [1,M]`, `classes [1,M]` (TensorRT EfficientNMS style).

pub mod classify;
mod labels;
pub use labels::{COCO80, LABELS_OUTPUT, labels_from_tensor, parse_labels};

/// One output tensor as received (datatype as Triton or numpy names it).
#[derive(Debug, Clone)]
pub struct Output<'a> {
    pub name: &'a str,
    pub dtype: &'a str,
    pub shape: &'a [i64],
    pub data: &'a [u8],
}

/// A decoded detection in tensor pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Det {
    pub bbox: [f32; 4],
    pub score: f32,
    pub class: usize,
}

/// Which layout to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Yolov8,
    XyxyScoreClass,
    EfficientNms,
}

/// Thresholds and filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub conf_threshold: f32,
    pub iou_threshold: f32,
    pub max_detections: usize,
    pub class_agnostic: bool,
    /// Keep only these class ids (`None` = all).
    pub classes: Option<Vec<usize>>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            conf_threshold: 0.25,
            iou_threshold: 0.45,
            max_detections: 300,
            class_agnostic: false,
            classes: None,
        }
    }
}

/// Describes outputs for error messages: `name dtype [shape]`.
pub fn outputs_text(outputs: &[(String, Vec<i64>)]) -> String {
    outputs
        .iter()
        .map(|(n, s)| format!("{n} {s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Chooses a decoder from output names and shapes (ModelMetadata or a first response).
pub fn detect(outputs: &[(String, Vec<i64>)]) -> Result<Decoder, String> {
    let outputs: Vec<&(String, Vec<i64>)> =
        outputs.iter().filter(|(n, _)| n != LABELS_OUTPUT).collect();
    let has = |k: &str| {
        outputs
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().contains(k))
    };
    if outputs.len() == 4 && has("num") && has("box") && has("score") && has("class") {
        return Ok(Decoder::EfficientNms);
    }
    if let [(_, shape)] = outputs[..]
        && shape.len() == 3
    {
        if shape[2] == 6 {
            return Ok(Decoder::XyxyScoreClass);
        }
        let (a, b) = (shape[1], shape[2]);
        if (a >= 5 && (b >= 5 || b == -1)) || (a == -1 && b >= 5) {
            return Ok(Decoder::Yolov8);
        }
    }
    Err(format!(
        "decoder=auto cannot tell the output layout from: {}; expected one [1,4+nc,N] or [1,N,4+nc] \
         tensor (yolov8), one [1,M,6] tensor (xyxy-score-class), or four tensors num/boxes/scores/classes \
         (efficient-nms); set the decoder property",
        outputs_text(&outputs.into_iter().cloned().collect::<Vec<_>>())
    ))
}

fn elem_count(shape: &[i64]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

/// Output values as f32, whatever their numeric dtype; FP32 data is borrowed when aligned.
pub fn as_f32<'a>(o: &Output<'a>) -> Result<std::borrow::Cow<'a, [f32]>, String> {
    if matches!(o.dtype, "FP32" | "float32") && cfg!(target_endian = "little") {
        let n = elem_count(o.shape)
            .ok_or_else(|| format!("output {}: bad shape {:?}", o.name, o.shape))?;
        if o.data.len() == n * 4 {
            // SAFETY: every bit pattern is a valid f32; align_to only hands out the aligned middle.
            let (head, mid, _) = unsafe { o.data.align_to::<f32>() };
            // The length is a multiple of 4: an aligned start leaves nothing over at the end.
            if head.is_empty() {
                return Ok(std::borrow::Cow::Borrowed(mid));
            }
        }
    }
    as_f32_owned(o).map(std::borrow::Cow::Owned)
}

fn as_f32_owned(o: &Output) -> Result<Vec<f32>, String> {
    let n =
        elem_count(o.shape).ok_or_else(|| format!("output {}: bad shape {:?}", o.name, o.shape))?;
    let d = o.data;
    let (size, conv): (usize, fn(&[u8]) -> f32) = match o.dtype {
        "FP32" | "float32" => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        "FP16" | "float16" => (2, |c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        "FP64" | "float64" => (8, |c| {
            f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32
        }),
        "INT32" | "int32" => (4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32),
        "INT64" | "int64" => (8, |c| {
            i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32
        }),
        "UINT8" | "uint8" => (1, |c| c[0] as f32),
        "INT8" | "int8" => (1, |c| c[0] as i8 as f32),
        other => return Err(format!("output {}: dtype {other} is not numeric", o.name)),
    };
    if d.len() != n * size {
        return Err(format!(
            "output {}: {} bytes for shape {:?} of {}; expected {}",
            o.name,
            d.len(),
            o.shape,
            o.dtype,
            n * size
        ));
    }
    Ok(d.chunks_exact(size).map(conv).collect())
}

/// Decodes `outputs` with `decoder`, applies thresholds, class filter, NMS (yolov8) and the
/// detection cap. Detections come out best first.
pub fn decode(decoder: Decoder, outputs: &[Output], p: &Params) -> Result<Vec<Det>, String> {
    // Only answers that carry the labels output pay for a filtered copy.
    let kept: Vec<Output>;
    let outputs = if outputs.iter().any(|o| o.name == LABELS_OUTPUT) {
        kept = outputs
            .iter()
            .filter(|o| o.name != LABELS_OUTPUT)
            .cloned()
            .collect();
        &kept[..]
    } else {
        outputs
    };
    let keep_class = |c: usize| p.classes.as_ref().is_none_or(|k| k.contains(&c));
    let mut dets = match decoder {
        Decoder::Yolov8 => {
            let o = single(outputs, "yolov8")?;
            if o.shape.len() != 3 || o.shape[0] != 1 {
                return Err(format!(
                    "yolov8: output {} has shape {:?}; expected [1,4+nc,N] or [1,N,4+nc]",
                    o.name, o.shape
                ));
            }
            let v = as_f32(o)?;
            let (a, b) = (o.shape[1] as usize, o.shape[2] as usize);
            // Channels-first when the channel axis is the shorter one (84 × 8400).
            // (channels, anchors, channel stride, anchor stride)
            let (ch, n, cs, is) = if a <= b { (a, b, b, 1) } else { (b, a, 1, b) };
            let at = |c: usize, i: usize| v[c * cs + i * is];
            if ch < 5 {
                return Err(format!(
                    "yolov8: output {} has {ch} channels; expected 4 box values plus at least one class",
                    o.name
                ));
            }
            // Best class per anchor, scanning one class row at a time (contiguous in the usual
            // channels-first layout).
            let mut best = vec![(0usize, f32::NEG_INFINITY); n];
            for c in 0..ch - 4 {
                for (i, b) in best.iter_mut().enumerate() {
                    let s = at(4 + c, i);
                    if s > b.1 {
                        *b = (c, s);
                    }
                }
            }
            let mut dets = Vec::new();
            for (i, &(class, score)) in best.iter().enumerate() {
                if score.is_nan() || score < p.conf_threshold || !keep_class(class) {
                    continue; // also drops NaN scores
                }
                let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
                let bbox = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
                if bbox.iter().all(|v| v.is_finite()) && w > 0.0 && h > 0.0 {
                    dets.push(Det { bbox, score, class });
                }
            }
            nms(dets, p.iou_threshold, p.class_agnostic, p.max_detections)
        }
        Decoder::XyxyScoreClass => {
            let o = single(outputs, "xyxy-score-class")?;
            if o.shape.len() != 3 || o.shape[2] != 6 {
                return Err(format!(
                    "xyxy-score-class: output {} has shape {:?}; expected [1,M,6]",
                    o.name, o.shape
                ));
            }
            let v = as_f32(o)?;
            v.chunks_exact(6)
                .filter(|r| r[4] >= p.conf_threshold && r[5] >= 0.0 && keep_class(r[5] as usize))
                .filter(|r| r[..4].iter().all(|x| x.is_finite()) && r[2] > r[0] && r[3] > r[1])
                .map(|r| Det {
                    bbox: [r[0], r[1], r[2], r[3]],
                    score: r[4],
                    class: r[5] as usize,
                })
                .collect()
        }
        Decoder::EfficientNms => {
            let find = |k: &str| {
                outputs
                    .iter()
                    .find(|o| o.name.to_ascii_lowercase().contains(k))
                    .ok_or_else(|| {
                        format!(
                            "efficient-nms: no output named like '{k}' among {}",
                            names(outputs)
                        )
                    })
            };
            let num = as_f32(find("num")?)?;
            let boxes = as_f32(find("box")?)?;
            let scores = as_f32(find("score")?)?;
            let classes = as_f32(find("class")?)?;
            let n = num.first().copied().unwrap_or(0.0).max(0.0) as usize;
            let n = n.min(scores.len()).min(classes.len()).min(boxes.len() / 4);
            (0..n)
                .filter(|&i| {
                    scores[i] >= p.conf_threshold
                        && classes[i] >= 0.0
                        && keep_class(classes[i] as usize)
                })
                .map(|i| Det {
                    bbox: [
                        boxes[4 * i],
                        boxes[4 * i + 1],
                        boxes[4 * i + 2],
                        boxes[4 * i + 3],
                    ],
                    score: scores[i],
                    class: classes[i] as usize,
                })
                .filter(|d| {
                    d.bbox.iter().all(|x| x.is_finite())
                        && d.bbox[2] > d.bbox[0]
                        && d.bbox[3] > d.bbox[1]
                })
                .collect()
        }
    };
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    dets.truncate(p.max_detections);
    Ok(dets)
}

fn names(outputs: &[Output]) -> String {
    outputs
        .iter()
        .map(|o| o.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn single<'a, 'b>(outputs: &'a [Output<'b>], what: &str) -> Result<&'a Output<'b>, String> {
    match outputs {
        [o] => Ok(o),
        _ => Err(format!(
            "{what}: expected exactly one output, got {} ({})",
            outputs.len(),
            names(outputs)
        )),
    }
}

/// Intersection over union.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Greedy NMS: best score first (ties: lower index first, so results are deterministic); a box is
/// dropped when its IoU with a kept box of the same class (any class when `agnostic`) exceeds
/// `iou_threshold`.
pub fn nms(dets: Vec<Det>, iou_threshold: f32, agnostic: bool, max: usize) -> Vec<Det> {
    nms_by(
        dets,
        |d| (d.score, d.class, d.bbox),
        iou_threshold,
        agnostic,
        max,
    )
}

/// [`nms`] over anything that has a score, a class and a box (`key`).
pub fn nms_by<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (f32, usize, [f32; 4]),
    iou_threshold: f32,
    agnostic: bool,
    max: usize,
) -> Vec<T> {
    // Stable sort keeps input order among equal scores.
    items.sort_by(|a, b| key(b).0.total_cmp(&key(a).0));
    let mut keep: Vec<T> = Vec::with_capacity(items.len().min(max));
    for d in items {
        if keep.len() >= max {
            break;
        }
        let (_, class, bbox) = key(&d);
        if keep.iter().all(|k| {
            let (_, kc, kb) = key(k);
            (!agnostic && kc != class) || iou(&kb, &bbox) <= iou_threshold
        }) {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod edge_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

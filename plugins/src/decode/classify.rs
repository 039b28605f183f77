//! `decoder=classify`: a classifier's answer for a batch of objects, one row of class scores per
//! object. Rows that are probabilities (every value in 0..1, summing to 1) are used as they are;
//! any other row is taken as logits and goes through a softmax first, so the confidence is always
//! a probability. The answer per object is its best class and that probability, or nothing when
//! the probability is under the threshold.

use super::{Output, as_f32};

/// One object's class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Class {
    pub class: usize,
    pub confidence: f32,
}

/// The best class of each of the `n` objects, from the model's only output (shape `[n, C]`, or
/// with trailing 1s such as `[n, C, 1, 1]`); `None` where the best is under `threshold`.
pub fn classify(
    outputs: &[Output],
    n: usize,
    threshold: f32,
) -> Result<Vec<Option<Class>>, String> {
    let o = match outputs {
        [o] => o,
        _ => {
            let names: Vec<&str> = outputs.iter().map(|o| o.name).collect();
            return Err(format!(
                "classify: the model answered {} outputs ({}); expected one of class scores, shape [batch, classes] (set output-names to pick one)",
                outputs.len(),
                names.join(", ")
            ));
        }
    };
    let mut core = o.shape.to_vec();
    while core.len() > 2 && core.last() == Some(&1) {
        core.pop();
    }
    let classes = match core.as_slice() {
        [b, c] if *b as usize == n && *c > 0 => *c as usize,
        _ => {
            return Err(format!(
                "classify: output {} has shape {:?}; expected [{n}, classes] for the {n} objects sent",
                o.name, o.shape
            ));
        }
    };
    let v = as_f32(o)?;
    Ok(v.chunks_exact(classes)
        .map(|row| {
            let probs = probabilities(row);
            let (class, &p) = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("at least one class");
            (p >= threshold).then_some(Class {
                class,
                confidence: p,
            })
        })
        .collect())
}

/// The row as probabilities: itself when it already is one, else its softmax.
fn probabilities(row: &[f32]) -> Vec<f32> {
    let sum: f32 = row.iter().sum();
    if row.iter().all(|v| (0.0..=1.0).contains(v)) && (sum - 1.0).abs() <= 1e-3 {
        return row.to_vec();
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = e.iter().sum();
    e.into_iter().map(|v| v / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|f| f.to_le_bytes()).collect()
    }

    fn out<'a>(shape: &'a [i64], data: &'a [u8]) -> Output<'a> {
        Output {
            name: "logits",
            dtype: "FP32",
            shape,
            data,
        }
    }

    #[test]
    fn logits_go_through_a_softmax_and_probabilities_do_not() {
        // Row 0: logits, best class 2 with e^2 / (e^0 + e^1 + e^2) = 0.6652.
        // Row 1: probabilities, best class 0 at 0.7 as given.
        let data = bytes(&[0.0, 1.0, 2.0, 0.7, 0.2, 0.1]);
        let got = classify(&[out(&[2, 3], &data)], 2, 0.0).unwrap();
        let c0 = got[0].unwrap();
        assert_eq!(c0.class, 2);
        assert!((c0.confidence - 0.665_240_9).abs() < 1e-5, "{c0:?}");
        assert_eq!(
            got[1],
            Some(Class {
                class: 0,
                confidence: 0.7
            })
        );
        // Under the threshold: no class.
        let got = classify(&[out(&[2, 3], &data)], 2, 0.68).unwrap();
        assert_eq!(got[0], None);
        assert_eq!(got[1].unwrap().class, 0);
    }

    #[test]
    fn trailing_ones_are_allowed_and_other_shapes_are_explained() {
        let data = bytes(&[5.0, -1.0]);
        let got = classify(&[out(&[1, 2, 1, 1], &data)], 1, 0.0).unwrap();
        assert_eq!(got[0].unwrap().class, 0);
        let e = classify(&[out(&[2, 1], &data)], 1, 0.0).unwrap_err();
        assert!(e.contains("expected [1, classes]"), "{e}");
        let e = classify(&[out(&[1, 2], &data), out(&[1, 2], &data)], 1, 0.0).unwrap_err();
        assert!(e.contains("answered 2 outputs"), "{e}");
    }
}

//! Reading a `detjsonsink` file back: one [`Frame`] per frame line (summary lines skipped), with
//! errors that name the line and the field. No GStreamer here.

use std::io::BufRead;

use crate::meta::Detection;

/// One recorded frame: what `detjsonreplay` attaches to the frame at the same position.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The line's `frame` field.
    pub frame: u64,
    /// The line's `pts_ns`, when it has one (finds the place again after a seek).
    pub pts_ns: Option<u64>,
    /// `status` as recorded ("ok", "skipped", "error", ...).
    pub status: String,
    pub model: String,
    /// The size of the frames the boxes are in (`width`, `height`; 0 when absent).
    pub width: u32,
    pub height: u32,
    /// The detector's detections: boxes a tracker predicted (`"predicted": true`) are left
    /// out, and track ids are dropped, so tracking runs again from the detector's output.
    pub detections: Vec<Detection>,
}

/// Reads every frame line. `Err` names the line (from 1) and the field.
pub fn read(r: impl BufRead) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("line {n}: not JSON ({e})"))?;
        if v.get("summary").is_some() {
            continue;
        }
        frames.push(frame(&v).map_err(|e| format!("line {n}: {e}"))?);
    }
    Ok(frames)
}

fn frame(v: &serde_json::Value) -> Result<Frame, String> {
    let obj = v
        .as_object()
        .ok_or("expected a JSON object, one per frame")?;
    let uint = |k: &str| -> Result<Option<u64>, String> {
        match obj.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("\"{k}\": expected a non-negative integer, got {x}")),
        }
    };
    let text = |k: &str| obj.get(k).and_then(|x| x.as_str()).unwrap_or_default();
    let frame = uint("frame")?.ok_or("\"frame\": missing (expected the frame number)")?;
    let size = |k: &str| -> Result<u32, String> {
        uint(k)?
            .unwrap_or(0)
            .try_into()
            .map_err(|_| format!("\"{k}\": too large"))
    };
    let dets = obj
        .get("detections")
        .and_then(|d| d.as_array())
        .ok_or(
            "\"detections\": missing (expected an array; was the file written with include-detections=false?)",
        )?;
    let mut detections = Vec::with_capacity(dets.len());
    for (j, d) in dets.iter().enumerate() {
        let d = detection(d).map_err(|e| format!("detections[{j}].{e}"))?;
        if let Some(d) = d {
            detections.push(d);
        }
    }
    Ok(Frame {
        frame,
        pts_ns: uint("pts_ns")?,
        status: match text("status") {
            "" => "ok".into(),
            s => s.into(),
        },
        model: text("model").into(),
        width: size("width")?,
        height: size("height")?,
        detections,
    })
}

/// One detection, or `None` for a tracker's predicted box.
fn detection(d: &serde_json::Value) -> Result<Option<Detection>, String> {
    if d.get("predicted").and_then(|p| p.as_bool()) == Some(true) {
        return Ok(None);
    }
    let b = d
        .get("box")
        .and_then(|b| b.as_array())
        .filter(|b| b.len() == 4)
        .and_then(|b| b.iter().map(|x| x.as_f64()).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| {
            format!(
                "box: expected [x1, y1, x2, y2] numbers, got {}",
                d.get("box").unwrap_or(&serde_json::Value::Null)
            )
        })?;
    if !(b[0] <= b[2] && b[1] <= b[3]) {
        return Err(format!("box: expected x1 <= x2 and y1 <= y2, got {b:?}"));
    }
    let class_id = match d.get("class_id") {
        None => -1,
        Some(c) => c
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .ok_or_else(|| format!("class_id: expected an integer, got {c}"))?,
    };
    let confidence = match d.get("confidence") {
        None => 1.0,
        Some(c) => c
            .as_f64()
            .filter(|c| (0.0..=1.0).contains(c))
            .ok_or_else(|| format!("confidence: expected a number from 0 to 1, got {c}"))?,
    };
    let label = match d.get("label") {
        None => String::new(),
        Some(l) => l
            .as_str()
            .ok_or_else(|| format!("label: expected a string, got {l}"))?
            .to_string(),
    };
    Ok(Some(Detection {
        label,
        class_id,
        confidence,
        bbox: [b[0], b[1], b[2], b[3]],
        track: None,
    }))
}

/// The index of the frame recorded at `pts_ns`, within half a frame (`tolerance_ns`).
pub fn find_pts(frames: &[Frame], pts_ns: u64, tolerance_ns: u64) -> Option<usize> {
    frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.pts_ns.map(|p| (i, p.abs_diff(pts_ns))))
        .filter(|(_, d)| *d <= tolerance_ns)
        .min_by_key(|(_, d)| *d)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Vec<Frame>, String> {
        read(line.as_bytes())
    }

    #[test]
    fn reads_what_detjsonsink_writes_without_tracker_output() {
        let text = r#"{"stream_id":"cam","frame":7,"pts_ns":233,"status":"ok","model":"m","width":640,"height":360,"counts":{"red":1},"detections":[{"label":"red","class_id":0,"confidence":0.9,"box":[1.5,2,30,40],"track_id":3},{"label":"red","class_id":0,"confidence":0.9,"box":[5,5,9,9],"track_id":4,"predicted":true}]}
{"stream_id":"cam","summary":{"frames":1}}

{"frame":8,"detections":[]}
"#;
        let f = read(text.as_bytes()).unwrap();
        assert_eq!(f.len(), 2, "the summary and the empty line are not frames");
        assert_eq!(
            f[0],
            Frame {
                frame: 7,
                pts_ns: Some(233),
                status: "ok".into(),
                model: "m".into(),
                width: 640,
                height: 360,
                detections: vec![Detection {
                    label: "red".into(),
                    class_id: 0,
                    confidence: 0.9,
                    bbox: [1.5, 2.0, 30.0, 40.0],
                    track: None,
                }],
            }
        );
        assert_eq!((f[1].frame, f[1].pts_ns, f[1].width), (8, None, 0));
        assert!(f[1].detections.is_empty());
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_field() {
        let cases = [
            ("not json", "line 1: not JSON"),
            ("[1]", "line 1: expected a JSON object"),
            (r#"{"detections":[]}"#, r#"line 1: "frame": missing"#),
            (
                r#"{"frame":-1,"detections":[]}"#,
                r#"line 1: "frame": expected a non-negative integer, got -1"#,
            ),
            (r#"{"frame":0,"counts":{}}"#, "include-detections=false"),
            (
                r#"{"frame":0,"detections":[{"box":[1,2,3]}]}"#,
                "line 1: detections[0].box: expected [x1, y1, x2, y2] numbers, got [1,2,3]",
            ),
            (
                r#"{"frame":0,"detections":[{"box":[5,2,3,4]}]}"#,
                "detections[0].box: expected x1 <= x2 and y1 <= y2",
            ),
            (
                r#"{"frame":0,"detections":[{"box":[1,2,3,4],"confidence":2}]}"#,
                "detections[0].confidence: expected a number from 0 to 1, got 2",
            ),
            (
                r#"{"frame":0,"detections":[{"box":[1,2,3,4],"class_id":"a"}]}"#,
                r#"detections[0].class_id: expected an integer, got "a""#,
            ),
            (
                r#"{"frame":0,"detections":[{"box":[1,2,3,4],"label":3}]}"#,
                "detections[0].label: expected a string, got 3",
            ),
        ];
        for (line, want) in cases {
            let e = one(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        let e = read("{\"frame\":0,\"detections\":[]}\n{\"frame\":1}\n".as_bytes()).unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
    }

    #[test]
    fn finds_a_frame_by_its_time_within_the_tolerance() {
        let f: Vec<Frame> = (0..5)
            .map(|i| Frame {
                frame: i,
                pts_ns: Some(i * 100),
                status: "ok".into(),
                model: String::new(),
                width: 0,
                height: 0,
                detections: vec![],
            })
            .collect();
        assert_eq!(find_pts(&f, 300, 50), Some(3));
        assert_eq!(find_pts(&f, 340, 50), Some(3));
        assert_eq!(find_pts(&f, 360, 50), Some(4));
        assert_eq!(find_pts(&f, 1000, 50), None);
    }
}

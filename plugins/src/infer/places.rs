//! [`Places`]: where the items of a request's batch came from in the frame (the whole frame, one
//! region, or one item per region of `tritonletterbox roi=a;b;...`), and how an answer becomes
//! the frame's detections: each item decoded on its own and mapped back through its geometry,
//! boxes a region cuts dropped when asked, duplicates where regions overlap removed.

use triton_client::Answer;

use super::decoding::Decoding;
use crate::decode;
use crate::letterbox::geometry::Letterbox;
use crate::meta::Detection;

/// Where a request's batch items came from in the frame: one geometry per item (one for a whole
/// frame or a single region), and whether boxes the region cuts are dropped (`roi-drop-cut`).
#[derive(Debug, Clone, PartialEq)]
pub struct Places {
    pub items: Vec<Letterbox>,
    pub drop_cut: bool,
}

impl Places {
    /// The frame's size, as the first item's geometry records it.
    pub fn frame_size(&self) -> (u32, u32) {
        self.items
            .first()
            .map_or((0, 0), |g| (g.frame_w, g.frame_h))
    }
}

impl Decoding {
    /// The answer's detections in frame pixels: each batch item decoded on its own and mapped
    /// through its geometry; boxes a region cuts dropped when asked; with several regions,
    /// duplicates where regions overlap removed (NMS at `iou-threshold` in frame pixels).
    pub fn frame_detections(
        &mut self,
        out: &Answer,
        places: &Places,
    ) -> Result<Vec<Detection>, String> {
        let mut all = Vec::new();
        let n = places.items.len();
        for (i, g) in places.items.iter().enumerate() {
            let raw = if n == 1 {
                self.decode(out)?
            } else {
                self.decode(&item(out, i, n)?)?
            };
            let dets = self.detections(raw, g);
            // A tensor pixel, in frame pixels: a box ending there reaches the region's edge.
            let tolerance = (1.0 / g.scale_x().min(g.scale_y())).max(1.0);
            all.extend(
                dets.into_iter()
                    .filter(|d| !(places.drop_cut && g.cuts(d.bbox, tolerance))),
            );
        }
        if n > 1 {
            all = decode::nms_by(
                all,
                |d| {
                    (
                        d.confidence as f32,
                        d.class_id as usize,
                        d.bbox.map(|v| v as f32),
                    )
                },
                self.params().iou_threshold,
                self.params().class_agnostic,
                self.params().max_detections,
            );
        }
        Ok(all)
    }
}

/// Batch item `i` of `n` of an answer: every output whose first dimension is `n` cut down to
/// its `i`th row (a batch of one); outputs without a batch dimension (class names) as they are.
fn item(out: &Answer, i: usize, n: usize) -> Result<Answer, String> {
    let mut one = out.clone();
    for o in &mut one.outputs {
        if o.name == decode::LABELS_OUTPUT && (o.shape.len() < 2 || o.shape[0] != n as i64) {
            continue;
        }
        if o.shape.first() != Some(&(n as i64)) || o.data.len() % n != 0 {
            return Err(format!(
                "output {} has shape {:?} ({} bytes); expected a batch of {n} (one item per region)",
                o.name,
                o.shape,
                o.data.len()
            ));
        }
        let size = o.data.len() / n;
        o.data = o.data.slice(i * size..(i + 1) * size);
        o.shape[0] = 1;
    }
    Ok(one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::decoding::tests::xyxy_batch;
    use crate::infer::settings::Settings;

    /// Two regions of a 1280×720 frame, each 320×320 into 640×640 (scale 2, no padding).
    fn two() -> Vec<Letterbox> {
        vec![
            Letterbox::new(320, 320, 640, 640, true).at(100, 200, 1280, 720),
            Letterbox::new(320, 320, 640, 640, true).at(960, 0, 1280, 720),
        ]
    }

    #[test]
    fn each_item_maps_back_through_its_own_region() {
        let mut d = Decoding::new(&Settings::default(), None).unwrap();
        let out = xyxy_batch(&[
            vec![[20.0, 40.0, 220.0, 240.0, 0.9, 0.0]],
            vec![[100.0, 100.0, 300.0, 200.0, 0.8, 2.0]],
        ]);
        let places = Places {
            items: two(),
            drop_cut: false,
        };
        let dets = d.frame_detections(&out, &places).unwrap();
        let boxes: Vec<([f64; 4], i32)> = dets.iter().map(|d| (d.bbox, d.class_id)).collect();
        assert_eq!(
            boxes,
            vec![
                ([110.0, 220.0, 210.0, 320.0], 0),
                ([1010.0, 50.0, 1110.0, 100.0], 2)
            ]
        );
        assert_eq!(places.frame_size(), (1280, 720));
    }

    #[test]
    fn boxes_a_region_cuts_are_dropped_only_when_asked() {
        let mut d = Decoding::new(&Settings::default(), None).unwrap();
        // Item 0: one box touching the region's left edge (x = 100 in the frame), one inside.
        // Item 1: a box at its top and right edges, which are the frame's.
        let out = xyxy_batch(&[
            vec![
                [0.0, 40.0, 100.0, 140.0, 0.9, 0.0],
                [200.0, 200.0, 300.0, 300.0, 0.9, 1.0],
            ],
            vec![
                [500.0, 0.0, 640.0, 100.0, 0.9, 3.0],
                [100.0, 300.0, 200.0, 400.0, 0.9, 1.0],
            ],
        ]);
        for (drop_cut, want) in [(false, 4), (true, 3)] {
            let places = Places {
                items: two(),
                drop_cut,
            };
            let dets = d.frame_detections(&out, &places).unwrap();
            assert_eq!(dets.len(), want, "drop_cut={drop_cut}: {dets:?}");
            // The box at item 0's left edge (inside the frame) goes; item 1's box at the top and
            // right of the frame is never cut.
            assert_eq!(dets.iter().any(|d| d.class_id == 0), !drop_cut, "{dets:?}");
            assert!(dets.iter().any(|d| d.class_id == 3), "{dets:?}");
        }
    }

    #[test]
    fn overlapping_regions_report_an_object_once() {
        let mut d = Decoding::new(&Settings::default(), None).unwrap();
        // Both regions are 0,0 320×320: the same object seen twice, a little apart.
        let same = Letterbox::new(320, 320, 640, 640, true).at(0, 0, 1280, 720);
        let out = xyxy_batch(&[
            vec![[20.0, 20.0, 220.0, 220.0, 0.7, 0.0]],
            vec![[22.0, 20.0, 222.0, 220.0, 0.9, 0.0]],
        ]);
        let places = Places {
            items: vec![same, same],
            drop_cut: false,
        };
        let dets = d.frame_detections(&out, &places).unwrap();
        assert_eq!(dets.len(), 1, "{dets:?}");
        assert_eq!(dets[0].confidence as f32, 0.9);
    }

    #[test]
    fn an_answer_that_is_not_a_batch_of_the_regions_is_an_error_naming_the_output() {
        let mut d = Decoding::new(&Settings::default(), None).unwrap();
        let out = xyxy_batch(&[vec![[0.0, 0.0, 10.0, 10.0, 0.9, 0.0]]]);
        let places = Places {
            items: two(),
            drop_cut: false,
        };
        let e = d.frame_detections(&out, &places).unwrap_err();
        assert!(
            e.contains("output output0 has shape [1, 1, 6]") && e.contains("expected a batch of 2"),
            "{e}"
        );
    }
}

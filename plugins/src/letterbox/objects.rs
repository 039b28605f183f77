//! `tritonletterbox objects=true`: which of a frame's detections become crops for a second model,
//! and the part of the frame each crop is made from.
//!
//! A detection is taken when its label is among `object-classes` (all when empty) and both sides
//! of its box are at least `object-min-size` pixels. Its box grows by `object-margin` (a fraction
//! of its width and height on each side), is rounded outwards to whole pixels and clipped to the
//! frame (for 4:2:0 frames, to whole chroma blocks). At most `max-objects` crops are made per frame
//! (the model's batch): the largest boxes first, the batch then in the frame's order.

use super::region::Region;
use crate::meta::Detection;
use crate::pixel::PixelFormat;

/// The object selection of one element.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Labels to crop (empty: every label).
    pub classes: Vec<String>,
    pub min_size: u32,
    pub margin: f64,
    pub max: usize,
}

impl Selection {
    /// `object-classes`: comma-separated labels.
    pub fn classes_from(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// The crops of a frame: (place of the detection among the frame's, region), and how many
    /// selected detections did not fit in the batch.
    pub fn pick(
        &self,
        dets: &[Detection],
        frame_w: u32,
        frame_h: u32,
        format: PixelFormat,
    ) -> (Vec<(u32, Region)>, usize) {
        let mut chosen: Vec<(u32, Region, f64)> = dets
            .iter()
            .enumerate()
            .filter(|(_, d)| self.classes.is_empty() || self.classes.contains(&d.label))
            .filter(|(_, d)| {
                let [x1, y1, x2, y2] = d.bbox;
                (x2 - x1).min(y2 - y1) >= self.min_size as f64
            })
            .filter_map(|(i, d)| {
                let r = self.region(d.bbox, frame_w, frame_h, format)?;
                let [x1, y1, x2, y2] = d.bbox;
                Some((i as u32, r, (x2 - x1) * (y2 - y1)))
            })
            .collect();
        let left_out = chosen.len().saturating_sub(self.max);
        if left_out > 0 {
            chosen.sort_by(|a, b| b.2.total_cmp(&a.2));
            chosen.truncate(self.max);
            chosen.sort_by_key(|c| c.0);
        }
        (
            chosen.into_iter().map(|(i, r, _)| (i, r)).collect(),
            left_out,
        )
    }

    /// The part of the frame a box's crop is made from, `None` when nothing of it is inside.
    fn region(&self, b: [f64; 4], fw: u32, fh: u32, format: PixelFormat) -> Option<Region> {
        let (mx, my) = (self.margin * (b[2] - b[0]), self.margin * (b[3] - b[1]));
        let x0 = (b[0] - mx).floor().clamp(0.0, fw as f64) as u32;
        let y0 = (b[1] - my).floor().clamp(0.0, fh as f64) as u32;
        let x1 = (b[2] + mx).ceil().clamp(0.0, fw as f64) as u32;
        let y1 = (b[3] + my).ceil().clamp(0.0, fh as f64) as u32;
        Region::snapped([x0, y0, x1, y1], fw, fh, format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &str, bbox: [f64; 4]) -> Detection {
        Detection {
            label: label.into(),
            class_id: 0,
            confidence: 0.9,
            bbox,
            track: None,
        }
    }

    fn sel(classes: &str, min_size: u32, margin: f64, max: usize) -> Selection {
        Selection {
            classes: Selection::classes_from(classes),
            min_size,
            margin,
            max,
        }
    }

    #[test]
    fn classes_and_size_filter_and_the_margin_grows_the_box_outwards_to_whole_pixels() {
        let dets = [
            det("red", [10.5, 20.2, 50.5, 60.7]),
            det("blue", [100.0, 100.0, 140.0, 110.0]),
            det("green", [200.0, 10.0, 260.0, 70.0]),
        ];
        let (got, left) = sel("red, green", 0, 0.0, 8).pick(&dets, 320, 240, PixelFormat::Rgb);
        assert_eq!(left, 0);
        assert_eq!(
            got,
            vec![
                (
                    0,
                    Region {
                        x: 10,
                        y: 20,
                        width: 41,
                        height: 41
                    }
                ),
                (
                    2,
                    Region {
                        x: 200,
                        y: 10,
                        width: 60,
                        height: 60
                    }
                ),
            ]
        );
        // Too small on one side: blue is 10 px high.
        let (got, _) = sel("", 20, 0.0, 8).pick(&dets, 320, 240, PixelFormat::Rgb);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![0, 2]);
        // A 10 % margin, clipped at the frame's edge.
        let (got, _) = sel("green", 0, 0.1, 8).pick(&dets, 262, 240, PixelFormat::Rgb);
        assert_eq!(
            got,
            vec![(
                2,
                Region {
                    x: 194,
                    y: 4,
                    width: 68,
                    height: 72
                }
            )]
        );
        // 4:2:0: whole chroma blocks.
        let (got, _) = sel("red", 0, 0.0, 8).pick(&dets, 320, 240, PixelFormat::I420);
        assert_eq!(
            got,
            vec![(
                0,
                Region {
                    x: 10,
                    y: 20,
                    width: 42,
                    height: 42
                }
            )]
        );
    }

    #[test]
    fn a_full_batch_keeps_the_largest_in_frame_order_and_says_how_many_were_left_out() {
        let dets = [
            det("a", [0.0, 0.0, 10.0, 10.0]),
            det("b", [0.0, 0.0, 50.0, 50.0]),
            det("c", [0.0, 0.0, 5.0, 5.0]),
            det("d", [0.0, 0.0, 30.0, 30.0]),
        ];
        let (got, left) = sel("", 0, 0.0, 2).pick(&dets, 100, 100, PixelFormat::Rgb);
        assert_eq!(left, 2);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 3]);
        // Outside the frame entirely: no crop.
        let (got, _) = sel("", 0, 0.0, 8).pick(
            &[det("x", [120.0, 0.0, 130.0, 10.0])],
            100,
            100,
            PixelFormat::Rgb,
        );
        assert!(got.is_empty());
    }
}

//! `tritonletterbox objects=true`: which of a frame's detections become crops for a second model,
//! and the part of the frame each crop is made from.
//!
//! A detection is taken when its label is among `object-classes` (all when empty) and both sides
//! of its box are at least `object-min-size` pixels. Its box grows by `object-margin` (a fraction
//! of its width and height on each side), is rounded outwards to whole pixels and clipped to the
//! frame (for 4:2:0 frames, to whole chroma blocks). At most `max-objects` crops are made per frame
//! (by default the model's `max_batch_size`, see [`limit`]): the largest boxes first, the batch
//! then in the frame's order.

use std::collections::HashMap;

use super::region::Region;
use crate::meta::Detection;
use crate::pixel::PixelFormat;

/// `max-objects` when nothing downstream knows the model's batch limit.
pub const DEFAULT_MAX: u32 = 8;

/// The most crops per frame: `max-objects` (`set`; 0 means the model's `max_batch_size`, or
/// [`DEFAULT_MAX`] when nothing downstream says it), never more than the model takes in one
/// request, since Triton refuses a larger batch. The warning says when `set` was lowered.
pub fn limit(set: u32, model: Option<u32>) -> (usize, Option<String>) {
    match (set, model) {
        (0, Some(m)) => (m as usize, None),
        (0, None) => (DEFAULT_MAX as usize, None),
        (s, Some(m)) if s > m => (
            m as usize,
            Some(format!(
                "max-objects={s}: the model takes at most {m} objects per request (its max_batch_size); making at most {m} crops per frame"
            )),
        ),
        (s, _) => (s as usize, None),
    }
}

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
    /// Only detections `due` says yes to are considered (see [`Schedule`]).
    pub fn pick(
        &self,
        dets: &[Detection],
        frame_w: u32,
        frame_h: u32,
        format: PixelFormat,
        due: impl Fn(&Detection) -> bool,
    ) -> (Vec<(u32, Region)>, usize) {
        let mut chosen: Vec<(u32, Region, f64)> = dets
            .iter()
            .enumerate()
            .filter(|(_, d)| self.classes.is_empty() || self.classes.contains(&d.label))
            .filter(|(_, d)| due(d))
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

/// `reclassify-interval=N`: a tracked object (one `dettrack` gave an id) is cropped when its
/// track was never sent, or was last sent N or more frames ago; untracked objects, and every
/// object with N = 0, on every frame. Tracks not seen for a long while are forgotten.
#[derive(Debug, Default)]
pub struct Schedule {
    interval: u64,
    /// Track id → the frame it was last sent on.
    last: HashMap<u64, u64>,
}

impl Schedule {
    /// Tracks not sent for this many intervals are forgotten (long gone; ids are not reused).
    const FORGET_AFTER: u64 = 8;

    pub fn new(interval: u32) -> Schedule {
        Schedule {
            interval: interval.into(),
            last: HashMap::new(),
        }
    }

    /// Whether `d` is to be sent on `frame`.
    pub fn due(&self, d: &Detection, frame: u64) -> bool {
        match (self.interval, d.track) {
            (0, _) | (_, None) => true,
            (n, Some(t)) => self
                .last
                .get(&t.id)
                .is_none_or(|&at| frame.saturating_sub(at) >= n),
        }
    }

    /// Records the tracked objects sent on `frame`.
    pub fn sent<'a>(&mut self, sent: impl IntoIterator<Item = &'a Detection>, frame: u64) {
        if self.interval == 0 {
            return;
        }
        for t in sent.into_iter().filter_map(|d| d.track) {
            self.last.insert(t.id, frame);
        }
        let keep = self.interval * Self::FORGET_AFTER;
        self.last.retain(|_, at| frame.saturating_sub(*at) < keep);
    }

    /// Forgets every track (frame numbers start again after a flush).
    pub fn clear(&mut self) {
        self.last.clear();
    }

    /// How many tracks are remembered.
    #[cfg(test)]
    pub fn tracks(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crops_per_frame_follow_the_models_batch_limit() {
        // By default, the model's limit; 8 when nothing says it.
        assert_eq!(limit(0, Some(3)), (3, None));
        assert_eq!(limit(0, Some(32)), (32, None));
        assert_eq!(limit(0, None), (8, None));
        // A setting at or under the model's limit stands; above it, lowered with a warning.
        assert_eq!(limit(2, Some(3)), (2, None));
        assert_eq!(limit(3, Some(3)), (3, None));
        assert_eq!(limit(20, None), (20, None));
        let (n, w) = limit(6, Some(3));
        assert_eq!(n, 3);
        let w = w.expect("a warning");
        assert!(
            w.contains("max-objects=6") && w.contains("max_batch_size"),
            "{w}"
        );
    }

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
        let (got, left) =
            sel("red, green", 0, 0.0, 8).pick(&dets, 320, 240, PixelFormat::Rgb, |_| true);
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
        let (got, _) = sel("", 20, 0.0, 8).pick(&dets, 320, 240, PixelFormat::Rgb, |_| true);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![0, 2]);
        // A 10 % margin, clipped at the frame's edge.
        let (got, _) = sel("green", 0, 0.1, 8).pick(&dets, 262, 240, PixelFormat::Rgb, |_| true);
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
        let (got, _) = sel("red", 0, 0.0, 8).pick(&dets, 320, 240, PixelFormat::I420, |_| true);
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
        let (got, left) = sel("", 0, 0.0, 2).pick(&dets, 100, 100, PixelFormat::Rgb, |_| true);
        assert_eq!(left, 2);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 3]);
        // Outside the frame entirely: no crop.
        let (got, _) = sel("", 0, 0.0, 8).pick(
            &[det("x", [120.0, 0.0, 130.0, 10.0])],
            100,
            100,
            PixelFormat::Rgb,
            |_| true,
        );
        assert!(got.is_empty());
    }

    fn tracked(id: u64) -> Detection {
        Detection {
            track: Some(crate::meta::TrackTag {
                id,
                predicted: false,
            }),
            ..det("red", [0.0, 0.0, 10.0, 10.0])
        }
    }

    #[test]
    fn a_track_is_sent_once_per_interval_and_untracked_objects_always() {
        let mut s = Schedule::new(3);
        let (a, b, loose) = (tracked(1), tracked(2), det("red", [0.0, 0.0, 10.0, 10.0]));
        let mut sent = vec![];
        for frame in 0..7u64 {
            // Track 2 appears from frame 2 on.
            let on: Vec<&Detection> = if frame < 2 {
                vec![&a, &loose]
            } else {
                vec![&a, &b, &loose]
            };
            let due: Vec<&Detection> = on.into_iter().filter(|d| s.due(d, frame)).collect();
            sent.push(
                due.iter()
                    .map(|d| d.track.map(|t| t.id))
                    .collect::<Vec<_>>(),
            );
            s.sent(due, frame);
        }
        assert_eq!(
            sent,
            vec![
                vec![Some(1), None],
                vec![None],
                vec![Some(2), None],
                vec![Some(1), None],
                vec![None],
                vec![Some(2), None],
                vec![Some(1), None],
            ]
        );
        // Only what is due is picked: on frame 8 track 2 (sent on 5), not track 1 (sent on 6).
        let (got, _) =
            sel("", 0, 0.0, 8).pick(&[a.clone(), b.clone()], 100, 100, PixelFormat::Rgb, |d| {
                s.due(d, 8)
            });
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1u32]);
        // Interval 0: every object on every frame.
        let mut every = Schedule::new(0);
        every.sent([&a], 0);
        assert!(every.due(&a, 0) && every.due(&a, 1));
    }

    #[test]
    fn tracks_gone_for_long_are_forgotten() {
        let mut s = Schedule::new(2);
        s.sent([&tracked(1), &tracked(2)], 0);
        assert_eq!(s.tracks(), 2);
        s.sent([&tracked(2)], 15);
        assert_eq!(s.tracks(), 2);
        // 16 frames (8 intervals) after track 1 was last sent: forgotten, and due again.
        s.sent([&tracked(2)], 16);
        assert_eq!(s.tracks(), 1);
        assert!(s.due(&tracked(1), 16) && !s.due(&tracked(2), 17));
    }
}

//! ByteTrack (Zhang et al., 2022): every detection box is used, the low-score ones too. Per frame:
//!
//! 1. tracks (tracked and recently lost) are predicted one frame ahead by their Kalman filter;
//! 2. high-score detections are matched to them by IoU (optimal assignment, cost `1 − IoU` under
//!    `match-cost`); a lost track that matches is found again;
//! 3. low-score detections are matched to the tracked tracks left (under `low-match-cost`): an
//!    occluded or blurred object keeps its id; tracked tracks still unmatched become lost;
//! 4. tracks born on the last frame (unconfirmed) are matched to the high-score detections left
//!    (under `unconfirmed-cost`); unmatched ones are dropped;
//! 5. high-score detections still unmatched with a score of at least `new-track` start tracks
//!    (confirmed at once on the first frame, otherwise when they match again);
//! 6. lost tracks are forgotten after `buffer` frames (30 at 30 f/s, scaled by the frame rate).
//!
//! With `per_class` a track only ever matches detections of its class.

use super::assign::{Edge, assign_sparse};
use super::kalman::{Kalman, measure};

/// The tracker's settings, with the reference's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Detections at or above this score are "high".
    pub high: f32,
    /// Detections below this score are ignored; between `low` and `high`, "low".
    pub low: f32,
    /// A high detection left unmatched starts a track when its score is at least this.
    pub new_track: f32,
    /// Largest `1 − IoU` of a match in the first stage (high detections).
    pub match_cost: f32,
    /// Largest `1 − IoU` in the second stage (low detections).
    pub low_match_cost: f32,
    /// Largest `1 − IoU` between an unconfirmed track and a detection.
    pub unconfirmed_cost: f32,
    /// Frames a lost track is kept, at 30 f/s (scaled by `frame_rate / 30`).
    pub buffer: u32,
    pub frame_rate: f64,
    /// Tracks match detections of their own class only.
    pub per_class: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            high: 0.5,
            low: 0.1,
            new_track: 0.6,
            match_cost: 0.8,
            low_match_cost: 0.5,
            unconfirmed_cost: 0.7,
            buffer: 30,
            frame_rate: 30.0,
            per_class: true,
        }
    }
}

impl Params {
    /// Frames a lost track is kept at this frame rate.
    pub fn max_lost(&self) -> u64 {
        (self.frame_rate / 30.0 * f64::from(self.buffer))
            .round()
            .max(1.0) as u64
    }
}

/// One detection given to the tracker, in any pixel space (the same every frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `x1, y1, x2, y2`.
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Born on the last frame and not matched since: no id shown yet.
    Unconfirmed,
    Tracked,
    Lost,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    kalman: Kalman,
    class_id: i32,
    score: f32,
    state: State,
    first_seen: u64,
    last_seen: u64,
}

/// A track as the frame sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackView {
    pub id: u64,
    /// The filter's box (after the update on a matched frame; the prediction otherwise).
    pub bbox: [f32; 4],
    pub class_id: i32,
    pub score: f32,
    pub state: State,
    pub first_seen: u64,
    pub last_seen: u64,
}

/// What one frame did: the track id of each detection given (`None`: no track took it), and
/// every confirmed track, tracked or lost.
#[derive(Debug, Default, PartialEq)]
pub struct Frame {
    pub ids: Vec<Option<u64>>,
    pub tracks: Vec<TrackView>,
}

/// IoU of two `x1, y1, x2, y2` boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// The tracker of one stream.
#[derive(Debug, Default)]
pub struct Tracker {
    params: Params,
    /// Frames seen (the first is 1).
    frame: u64,
    next_id: u64,
    tracks: Vec<Track>,
    /// The frame after the last [`Tracker::reset`]: like the first, it confirms new tracks at
    /// once.
    restart: u64,
}

impl Tracker {
    pub fn new(params: Params) -> Tracker {
        Tracker {
            params,
            ..Default::default()
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// One frame with its detections.
    pub fn update(&mut self, dets: &[Detection]) -> Frame {
        self.frame += 1;
        let p = self.params.clone();
        for t in &mut self.tracks {
            t.kalman.predict(t.state == State::Lost);
        }
        let mut ids = vec![None; dets.len()];
        let high: Vec<usize> = (0..dets.len())
            .filter(|&i| dets[i].score >= p.high)
            .collect();
        let low: Vec<usize> = (0..dets.len())
            .filter(|&i| dets[i].score >= p.low && dets[i].score < p.high)
            .collect();
        let pool: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| self.tracks[t].state != State::Unconfirmed)
            .collect();
        let unconfirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| self.tracks[t].state == State::Unconfirmed)
            .collect();

        // Stage 1: tracked and lost tracks against the high detections.
        let (m1, left_tracks, left_high) = self.associate(&pool, dets, &high, p.match_cost);
        for (t, d) in m1 {
            self.take(t, &dets[d]);
            ids[d] = Some(self.tracks[t].id);
        }
        // Stage 2: the tracked tracks left against the low detections.
        let tracked_left: Vec<usize> = left_tracks
            .iter()
            .copied()
            .filter(|&t| self.tracks[t].state == State::Tracked)
            .collect();
        let (m2, still, _) = self.associate(&tracked_left, dets, &low, p.low_match_cost);
        for (t, d) in m2 {
            self.take(t, &dets[d]);
            ids[d] = Some(self.tracks[t].id);
        }
        for t in still {
            self.tracks[t].state = State::Lost;
        }
        // Stage 3: unconfirmed tracks against the high detections left.
        let (m3, dropped, new_high) =
            self.associate(&unconfirmed, dets, &left_high, p.unconfirmed_cost);
        for (t, d) in m3 {
            self.take(t, &dets[d]);
            ids[d] = Some(self.tracks[t].id);
        }
        let mut gone = vec![false; self.tracks.len()];
        for t in dropped {
            gone[t] = true;
        }
        // Lost for too long: forgotten.
        let max_lost = p.max_lost();
        for (t, g) in self.tracks.iter().zip(gone.iter_mut()) {
            if t.state == State::Lost && self.frame - t.last_seen > max_lost {
                *g = true;
            }
        }
        let mut i = 0;
        self.tracks.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        // Stage 4: new tracks.
        for d in new_high {
            if dets[d].score < p.new_track {
                continue;
            }
            self.next_id += 1;
            let first = self.frame == 1 || self.frame == self.restart;
            self.tracks.push(Track {
                id: self.next_id,
                kalman: Kalman::new(measure(dets[d].bbox)),
                class_id: dets[d].class_id,
                score: dets[d].score,
                state: if first {
                    State::Tracked
                } else {
                    State::Unconfirmed
                },
                first_seen: self.frame,
                last_seen: self.frame,
            });
            if first {
                ids[d] = Some(self.next_id);
            }
        }
        self.drop_duplicates(&mut ids);
        Frame {
            ids,
            tracks: self.views(),
        }
    }

    /// Forgets every track (after a seek the objects are elsewhere); ids keep counting up, so
    /// that an id never names two objects of one stream.
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.restart = self.frame + 1;
    }

    /// A frame without detections because nothing was asked for it (`interval`): every track
    /// moves to its prediction and nothing is lost or forgotten.
    pub fn predict(&mut self) -> Vec<TrackView> {
        self.frame += 1;
        for t in &mut self.tracks {
            t.kalman.predict(t.state == State::Lost);
            if t.state == State::Tracked {
                t.last_seen = self.frame;
            }
        }
        self.views()
    }

    fn views(&self) -> Vec<TrackView> {
        self.tracks
            .iter()
            .filter(|t| t.state != State::Unconfirmed)
            .map(|t| TrackView {
                id: t.id,
                bbox: t.kalman.bbox(),
                class_id: t.class_id,
                score: t.score,
                state: t.state,
                first_seen: t.first_seen,
                last_seen: t.last_seen,
            })
            .collect()
    }

    fn take(&mut self, t: usize, d: &Detection) {
        let frame = self.frame;
        let tr = &mut self.tracks[t];
        tr.kalman.update(measure(d.bbox));
        tr.score = d.score;
        tr.state = State::Tracked;
        tr.last_seen = frame;
    }

    /// Optimal matching of `tracks` to `dets` (indices) under `limit`; returns the matched
    /// `(track, detection)` pairs and the tracks and detections left, as indices.
    #[allow(clippy::type_complexity)]
    fn associate(
        &self,
        tracks: &[usize],
        dets: &[Detection],
        which: &[usize],
        limit: f32,
    ) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
        let (n, m) = (tracks.len(), which.len());
        let mut edges: Vec<Edge> = Vec::new();
        // Only boxes that overlap have an IoU: the detections sorted by left edge, each track
        // looks at those starting less than the widest detection before its own left edge and
        // before its right edge (a frame of many objects is then far from n × m IoUs).
        let mut by_x: Vec<(f32, usize)> = which
            .iter()
            .enumerate()
            .map(|(c, &d)| (dets[d].bbox[0], c))
            .collect();
        by_x.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let widest = which
            .iter()
            .map(|&d| dets[d].bbox[2] - dets[d].bbox[0])
            .fold(0.0f32, f32::max);
        for (r, &t) in tracks.iter().enumerate() {
            let tr = &self.tracks[t];
            let b = tr.kalman.bbox();
            let from = by_x.partition_point(|&(x1, _)| x1 < b[0] - widest);
            for &(x1, c) in &by_x[from..] {
                if x1 >= b[2] {
                    break;
                }
                let d = which[c];
                if !self.params.per_class || dets[d].class_id == tr.class_id {
                    let cost = 1.0 - iou(b, dets[d].bbox);
                    if cost < limit {
                        edges.push((r, c, cost));
                    }
                }
            }
        }
        let a = assign_sparse(&edges, n, m, limit);
        (
            a.matches
                .iter()
                .map(|&(r, c)| (tracks[r], which[c]))
                .collect(),
            a.rows.iter().map(|&r| tracks[r]).collect(),
            a.cols.iter().map(|&c| which[c]).collect(),
        )
    }

    /// A lost track that overlaps a tracked one by IoU > 0.85 is the same object twice: the
    /// younger of the two is dropped (as the reference does; a detection it took this frame is
    /// left without an id).
    fn drop_duplicates(&mut self, ids: &mut [Option<u64>]) {
        let lost: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| self.tracks[t].state == State::Lost)
            .collect();
        if lost.is_empty() {
            return;
        }
        let mut gone = vec![false; self.tracks.len()];
        for a in 0..self.tracks.len() {
            for &b in &lost {
                let (ta, tb) = (&self.tracks[a], &self.tracks[b]);
                if ta.state != State::Tracked || gone[a] || gone[b] {
                    continue;
                }
                if iou(ta.kalman.bbox(), tb.kalman.bbox()) > 0.85 {
                    let age = |t: &Track| t.last_seen - t.first_seen;
                    let drop = if age(ta) >= age(tb) { b } else { a };
                    gone[drop] = true;
                    let old = self.tracks[drop].id;
                    for id in ids.iter_mut().filter(|i| **i == Some(old)) {
                        *id = None;
                    }
                }
            }
        }
        let mut i = 0;
        self.tracks.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
    }
}

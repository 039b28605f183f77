//! Multi-object tracking scores against a ground truth, as the MOT Challenge defines them:
//! CLEAR MOT (MOTA: misses, false positives and id switches over the truth's objects, matching at
//! IoU ≥ 0.5 and keeping last frame's correspondences where they still hold) and the
//! identity scores (IDF1: one global truth-id ↔ track-id assignment maximising the frames they
//! share). `scripts/track_reference.py` computes the same with `motmetrics`, and the tracking
//! test checks that both agree.

use gsttriton::track::assign::assign;

/// One box of one frame: the truth's object id or the tracker's track id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obj {
    pub id: u64,
    pub bbox: [f64; 4],
}

/// The scores of one tracker's output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    /// Objects in the truth, over all frames.
    pub objects: usize,
    pub matches: usize,
    pub misses: usize,
    pub false_positives: usize,
    /// A truth object matched to another track than the last time it was matched.
    pub id_switches: usize,
    /// The truth id of each switch, in order.
    pub switched: Vec<u64>,
    pub mota: f64,
    pub idf1: f64,
    /// Distinct track ids the tracker gave.
    pub tracks: usize,
}

/// The lowest IoU of a match.
pub const IOU_MIN: f64 = 0.5;

fn iou64(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - w * h;
    if union > 0.0 { w * h / union } else { 0.0 }
}

/// Scores `tracks` (one list per frame) against `truth` (the same frames).
pub fn score(truth: &[Vec<Obj>], tracks: &[Vec<Obj>]) -> Scores {
    assert_eq!(
        truth.len(),
        tracks.len(),
        "as many frames of tracks as of truth"
    );
    let mut s = Scores::default();
    let mut last: std::collections::HashMap<u64, u64> = Default::default();
    for (gt, hy) in truth.iter().zip(tracks) {
        s.objects += gt.len();
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        // Last frame's correspondences that still overlap enough are kept.
        for (g, o) in gt.iter().enumerate() {
            if let Some(&h) = last.get(&o.id)
                && let Some(k) = hy.iter().position(|t| t.id == h)
                && iou64(&o.bbox, &hy[k].bbox) >= IOU_MIN
                && !pairs.iter().any(|p| p.1 == k)
            {
                pairs.push((g, k));
            }
        }
        let free_g: Vec<usize> = (0..gt.len())
            .filter(|g| !pairs.iter().any(|p| p.0 == *g))
            .collect();
        let free_h: Vec<usize> = (0..hy.len())
            .filter(|h| !pairs.iter().any(|p| p.1 == *h))
            .collect();
        let cost: Vec<f32> = free_g
            .iter()
            .flat_map(|&g| free_h.iter().map(move |&h| (g, h)))
            .map(|(g, h)| {
                let v = iou64(&gt[g].bbox, &hy[h].bbox);
                if v >= IOU_MIN { (1.0 - v) as f32 } else { 2.0 }
            })
            .collect();
        let a = assign(
            &cost,
            free_g.len(),
            free_h.len(),
            (1.0 - IOU_MIN) as f32 + 1e-6,
        );
        for (r, c) in a.matches {
            let (g, h) = (free_g[r], free_h[c]);
            if last.get(&gt[g].id).is_some_and(|&prev| prev != hy[h].id) {
                s.id_switches += 1;
                s.switched.push(gt[g].id);
            }
            pairs.push((g, h));
        }
        for &(g, h) in &pairs {
            last.insert(gt[g].id, hy[h].id);
        }
        s.matches += pairs.len();
        s.misses += gt.len() - pairs.len();
        s.false_positives += hy.len() - pairs.len();
    }
    s.mota = 1.0 - (s.misses + s.false_positives + s.id_switches) as f64 / s.objects.max(1) as f64;
    s.idf1 = idf1(truth, tracks);
    s.tracks = tracks
        .iter()
        .flatten()
        .map(|t| t.id)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    s
}

/// IDF1: 2·IDTP / (truth boxes + track boxes), IDTP the frames (IoU ≥ 0.5) that truth ids share
/// with the track id each is assigned to, under the assignment that makes it largest.
fn idf1(truth: &[Vec<Obj>], tracks: &[Vec<Obj>]) -> f64 {
    let ids = |v: &[Vec<Obj>]| -> Vec<u64> {
        let set: std::collections::BTreeSet<u64> = v.iter().flatten().map(|o| o.id).collect();
        set.into_iter().collect()
    };
    let (gi, hi) = (ids(truth), ids(tracks));
    let mut shared = vec![0f32; gi.len() * hi.len()];
    for (gt, hy) in truth.iter().zip(tracks) {
        for o in gt {
            let g = gi.binary_search(&o.id).unwrap();
            for t in hy {
                if iou64(&o.bbox, &t.bbox) >= IOU_MIN {
                    let h = hi.binary_search(&t.id).unwrap();
                    shared[g * hi.len() + h] += 1.0;
                }
            }
        }
    }
    let cost: Vec<f32> = shared.iter().map(|n| -n).collect();
    let a = assign(&cost, gi.len(), hi.len(), 0.0);
    let idtp: f32 = a
        .matches
        .iter()
        .map(|&(g, h)| shared[g * hi.len() + h])
        .sum();
    let boxes: usize = truth.iter().chain(tracks).map(Vec::len).sum();
    if boxes == 0 {
        return 1.0;
    }
    2.0 * f64::from(idtp) / boxes as f64
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect()
}

fn bbox(v: &serde_json::Value) -> [f64; 4] {
    let b: Vec<f64> = v
        .as_array()
        .unwrap_or_else(|| panic!("box: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    [b[0], b[1], b[2], b[3]]
}

/// A truth file of `make-demo-clip` (`objects` with `id` and `box`), one list per frame.
pub fn read_truth(path: &std::path::Path) -> Vec<Vec<Obj>> {
    lines(path)
        .iter()
        .map(|l| {
            l["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| Obj {
                    id: o["id"].as_u64().unwrap(),
                    bbox: bbox(&o["box"]),
                })
                .collect()
        })
        .collect()
}

/// The tracks of a `detjsonsink` file (detections with a `track_id`; others are not a tracker's
/// output), one list per frame line.
pub fn read_tracks(path: &std::path::Path) -> Vec<Vec<Obj>> {
    lines(path)
        .iter()
        .map(|l| {
            l["detections"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no detections: {l}", path.display()))
                .iter()
                .filter_map(|d| {
                    Some(Obj {
                        id: d.get("track_id")?.as_u64()?,
                        bbox: bbox(&d["box"]),
                    })
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(id: u64, x: f64) -> Obj {
        Obj {
            id,
            bbox: [x, 0.0, x + 10.0, 10.0],
        }
    }

    #[test]
    fn perfect_tracks_score_one() {
        let truth: Vec<Vec<Obj>> = (0..5).map(|i| vec![o(1, i as f64), o(2, 50.0)]).collect();
        let tracks: Vec<Vec<Obj>> = (0..5).map(|i| vec![o(7, i as f64), o(9, 50.0)]).collect();
        let s = score(&truth, &tracks);
        assert_eq!((s.mota, s.idf1, s.id_switches, s.tracks), (1.0, 1.0, 0, 2));
    }

    #[test]
    fn a_switch_a_miss_and_a_false_positive_count_once_each() {
        // Object 1 is tracked as 7, then as 8 (a switch); frame 2 misses object 2 and has a
        // stray box far from everything.
        let truth = vec![
            vec![o(1, 0.0), o(2, 50.0)],
            vec![o(1, 1.0), o(2, 50.0)],
            vec![o(1, 2.0), o(2, 50.0)],
            vec![o(1, 3.0), o(2, 50.0)],
        ];
        let tracks = vec![
            vec![o(7, 0.0), o(9, 50.0)],
            vec![o(7, 1.0), o(9, 50.0)],
            vec![o(8, 2.0), o(5, 200.0)],
            vec![o(8, 3.0), o(9, 50.0)],
        ];
        let s = score(&truth, &tracks);
        assert_eq!(
            (
                s.objects,
                s.matches,
                s.misses,
                s.false_positives,
                s.id_switches
            ),
            (8, 7, 1, 1, 1)
        );
        assert!((s.mota - (1.0 - 3.0 / 8.0)).abs() < 1e-12, "{s:?}");
        // IDTP: 1↔7 two frames (or 1↔8 two frames), 2↔9 three frames: 5 of (8 + 8) boxes.
        assert!((s.idf1 - 10.0 / 16.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn a_kept_correspondence_wins_over_a_closer_newcomer() {
        // Track 7 follows object 1; track 8 appears exactly on it. Keeping 7 is no switch.
        let truth = vec![vec![o(1, 0.0)], vec![o(1, 2.0)]];
        let tracks = vec![vec![o(7, 0.0)], vec![o(7, 0.0), o(8, 2.0)]];
        let s = score(&truth, &tracks);
        assert_eq!((s.id_switches, s.false_positives), (0, 1), "{s:?}");
    }
}

//! `detjsonsink`'s lines for `detcount`'s results, and the `report-interval` summary lines.

use std::collections::{BTreeMap, BTreeSet};

use crate::count::Totals;
use crate::meta::{self, Detection};

/// `detcount`'s results: `events` of this frame, `zones` (objects in each zone now) and `lines`
/// (crossings so far per line, direction and class).
pub fn add_counts(obj: &mut serde_json::Value, c: &meta::Counts) {
    use crate::count::Event;
    obj["events"] = c
        .frame
        .events
        .iter()
        .map(|e| match e {
            Event::Crossed {
                line,
                direction,
                track_id,
                label,
            } => serde_json::json!({
                "event": "crossed", "line": line, "direction": direction.as_str(),
                "track_id": track_id, "label": label,
            }),
            Event::Entered {
                zone,
                track_id,
                label,
            }
            | Event::Left {
                zone,
                track_id,
                label,
            } => serde_json::json!({
                "event": e.kind(), "zone": zone, "track_id": track_id, "label": label,
            }),
        })
        .collect::<Vec<_>>()
        .into();
    obj["zones"] = c
        .frame
        .occupancy
        .iter()
        .map(|(z, n)| (z.clone(), serde_json::Value::from(*n)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    obj["lines"] = c
        .totals
        .iter()
        .map(|(line, dirs)| {
            let d: serde_json::Map<_, _> = dirs
                .iter()
                .map(|(d, labels)| (d.as_str().to_string(), serde_json::json!(labels)))
                .collect();
            (line.clone(), serde_json::Value::from(d))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
}

/// What one `report-interval` holds so far.
#[derive(Debug)]
pub struct Summary {
    stream_id: String,
    every_ns: u64,
    /// Start of the interval being summed (stream time of its first frame, rounded down to a
    /// multiple of the interval).
    from: Option<u64>,
    frames: u64,
    tracks: BTreeSet<u64>,
    /// Largest number of detections of each label on one frame.
    counts_max: BTreeMap<String, u64>,
    /// Crossings so far at the start of the interval, and now.
    base: Totals,
    now: Totals,
    zones_peak: BTreeMap<String, u32>,
}

impl Summary {
    pub fn new(stream_id: &str, every_ns: u64) -> Summary {
        Summary {
            stream_id: stream_id.into(),
            every_ns: every_ns.max(1),
            from: None,
            frames: 0,
            tracks: BTreeSet::new(),
            counts_max: BTreeMap::new(),
            base: Totals::new(),
            now: Totals::new(),
            zones_peak: BTreeMap::new(),
        }
    }

    /// Adds a frame (frames without a timestamp are not summed). Returns the summary of the
    /// interval this frame closed, if it closed one.
    pub fn observe(
        &mut self,
        pts: Option<u64>,
        dets: &[Detection],
        counts: Option<meta::Counts>,
    ) -> Option<serde_json::Value> {
        let pts = pts?;
        let start = pts - pts % self.every_ns;
        let closed = match self.from {
            Some(from) if start > from => self.close(false),
            _ => None,
        };
        if self.from.is_none() || closed.is_some() {
            self.from = Some(start);
        }
        self.frames += 1;
        let mut per_label: BTreeMap<&str, u64> = BTreeMap::new();
        for d in dets {
            *per_label.entry(d.label.as_str()).or_default() += 1;
            if let Some(t) = d.track {
                self.tracks.insert(t.id);
            }
        }
        for (label, n) in per_label {
            let m = self.counts_max.entry(label.to_string()).or_default();
            *m = (*m).max(n);
        }
        if let Some(c) = counts {
            for (zone, n) in c.frame.occupancy {
                let p = self.zones_peak.entry(zone).or_default();
                *p = (*p).max(n);
            }
            self.now = c.totals;
        }
        closed
    }

    /// The summary of the interval the stream ended in (marked `partial`), if it had frames.
    pub fn finish(&mut self) -> Option<serde_json::Value> {
        self.close(true)
    }

    fn close(&mut self, partial: bool) -> Option<serde_json::Value> {
        let from = self.from?;
        if self.frames == 0 {
            return None;
        }
        let mut crossings = serde_json::Map::new();
        for (line, dirs) in &self.now {
            let mut d = serde_json::Map::new();
            for (dir, labels) in dirs {
                let mut l = serde_json::Map::new();
                for (label, n) in labels {
                    let before = self
                        .base
                        .get(line)
                        .and_then(|x| x.get(dir))
                        .and_then(|x| x.get(label))
                        .copied()
                        .unwrap_or(0);
                    l.insert(label.clone(), (n - before).into());
                }
                d.insert(dir.as_str().into(), l.into());
            }
            crossings.insert(line.clone(), d.into());
        }
        let mut s = serde_json::json!({
            "from_pts_ns": from,
            "to_pts_ns": from + self.every_ns,
            "frames": self.frames,
            "tracks": self.tracks.len(),
            "counts_max": self.counts_max,
            "crossings": crossings,
            "zones_peak": self.zones_peak,
        });
        if partial {
            s["partial"] = true.into();
        }
        self.frames = 0;
        self.tracks.clear();
        self.counts_max.clear();
        self.zones_peak.clear();
        self.base = self.now.clone();
        self.from = None;
        Some(serde_json::json!({"stream_id": self.stream_id, "summary": s}))
    }
}

//! Counting on tracks, without GStreamer: named directed lines (crossings, in and out) and named
//! polygon zones (occupancy, enter and leave), on each object's anchor point — the bottom centre
//! of its box, as nvdsanalytics does. [`rules`] reads and checks the geometry; [`Counter`] follows
//! the anchors of the tracks frame by frame.

pub mod rules;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

pub use rules::{Line, Rules, Zone};

/// A point in frame pixels.
pub type Point = [f64; 2];

/// The anchor of a box `x1, y1, x2, y2`: its bottom centre.
pub fn anchor(b: [f64; 4]) -> Point {
    [(b[0] + b[2]) / 2.0, b[3]]
}

/// Which side of the directed line `a → b` the point is on, in image coordinates (y down): < 0
/// on its left as seen on the screen walking from `a` to `b`, > 0 on its right.
fn side(a: Point, b: Point, p: Point) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// Whether the move `p → q` crosses segment `a → b`. A point exactly on the line counts as on
/// its right, so a move that stops on the line and goes on crosses once, not twice or never.
pub fn crosses(a: Point, b: Point, p: Point, q: Point) -> bool {
    let (sp, sq) = (side(a, b, p) < 0.0, side(a, b, q) < 0.0);
    let (sa, sb) = (side(p, q, a), side(p, q, b));
    sp != sq && sa * sb <= 0.0 && !(sa == 0.0 && sb == 0.0)
}

/// Point in polygon (even-odd rule).
pub fn inside(poly: &[Point], p: Point) -> bool {
    let mut c = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + n - 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            c = !c;
        }
    }
    c
}

/// Direction of a crossing: `in` is from the line's left to its right (a line drawn left to
/// right on the screen: downwards), `out` the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One object of a frame, as the counter needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub track_id: u64,
    pub label: String,
    pub bbox: [f64; 4],
}

/// Something that happened on a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Crossed {
        line: String,
        direction: Direction,
        track_id: u64,
        label: String,
    },
    Entered {
        zone: String,
        track_id: u64,
        label: String,
    },
    Left {
        zone: String,
        track_id: u64,
        label: String,
    },
}

impl Event {
    /// `crossed`, `entered` or `left`: the event's name in metas, messages and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Crossed { .. } => "crossed",
            Event::Entered { .. } => "entered",
            Event::Left { .. } => "left",
        }
    }
}

/// What one frame did: its events and each zone's occupancy.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FrameCounts {
    pub events: Vec<Event>,
    /// Objects in each zone now (every zone, in the rules' order).
    pub occupancy: Vec<(String, u32)>,
}

/// Cumulative crossings: line → direction → label → n.
pub type Totals = BTreeMap<String, BTreeMap<Direction, BTreeMap<String, u64>>>;

/// Frames after which a track not seen again is forgotten (30 s at 30 f/s; the tracker forgets
/// lost tracks long before).
pub const FORGET_AFTER: u64 = 900;

/// Follows the anchors of the tracks over frames.
#[derive(Debug, Default)]
pub struct Counter {
    rules: Rules,
    frame: u64,
    /// Each track's anchor on the frame it was last seen, and that frame.
    last: HashMap<u64, (Point, u64)>,
    /// The zones each track is in (by zone index).
    in_zone: HashMap<u64, Vec<bool>>,
    totals: Totals,
}

impl Counter {
    /// Rules already in frame pixels (see [`Rules::to_pixels`]).
    pub fn new(rules: Rules) -> Counter {
        Counter {
            rules,
            ..Default::default()
        }
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// New rules on a running count (already in pixels): a line keeps its totals and a zone
    /// knows who is inside while their name stays; a line or zone that left the rules is
    /// forgotten, a new one starts at zero (and its first frame says who entered it).
    pub fn replace_rules(&mut self, rules: Rules) {
        self.totals
            .retain(|name, _| rules.lines.iter().any(|l| &l.name == name));
        let old: Vec<String> = self.rules.zones.iter().map(|z| z.name.clone()).collect();
        for was in self.in_zone.values_mut() {
            *was = rules
                .zones
                .iter()
                .map(|z| {
                    old.iter()
                        .position(|n| *n == z.name)
                        .is_some_and(|i| was.get(i).copied().unwrap_or(false))
                })
                .collect();
        }
        self.rules = rules;
    }

    /// Forgets where the tracks were (after a seek); the totals stay.
    pub fn reset(&mut self) {
        self.last.clear();
        self.in_zone.clear();
    }

    /// One frame's tracked objects. A track not on this frame keeps its last anchor (it may be
    /// occluded); a line is crossed by the move from that anchor to the new one.
    pub fn frame(&mut self, objects: &[Object]) -> FrameCounts {
        self.frame += 1;
        let mut out = FrameCounts::default();
        let mut occupancy = vec![0u32; self.rules.zones.len()];
        for o in objects {
            let p = anchor(o.bbox);
            if let Some((prev, _)) = self.last.insert(o.track_id, (p, self.frame)) {
                for l in &self.rules.lines {
                    if !l.counts(&o.label) || !crosses(l.from, l.to, prev, p) {
                        continue;
                    }
                    let direction = if side(l.from, l.to, prev) < 0.0 {
                        Direction::In
                    } else {
                        Direction::Out
                    };
                    *self
                        .totals
                        .entry(l.name.clone())
                        .or_default()
                        .entry(direction)
                        .or_default()
                        .entry(o.label.clone())
                        .or_default() += 1;
                    out.events.push(Event::Crossed {
                        line: l.name.clone(),
                        direction,
                        track_id: o.track_id,
                        label: o.label.clone(),
                    });
                }
            }
            let was = self
                .in_zone
                .entry(o.track_id)
                .or_insert_with(|| vec![false; self.rules.zones.len()]);
            for (i, z) in self.rules.zones.iter().enumerate() {
                let now = z.counts(&o.label) && inside(&z.points, p);
                if now {
                    occupancy[i] += 1;
                }
                if now != was[i] {
                    let (zone, track_id, label) = (z.name.clone(), o.track_id, o.label.clone());
                    out.events.push(if now {
                        Event::Entered {
                            zone,
                            track_id,
                            label,
                        }
                    } else {
                        Event::Left {
                            zone,
                            track_id,
                            label,
                        }
                    });
                    was[i] = now;
                }
            }
        }
        let frame = self.frame;
        self.last
            .retain(|_, (_, seen)| frame - *seen <= FORGET_AFTER);
        let last = &self.last;
        self.in_zone.retain(|id, _| last.contains_key(id));
        out.occupancy = self
            .rules
            .zones
            .iter()
            .zip(occupancy)
            .map(|(z, n)| (z.name.clone(), n))
            .collect();
        out
    }
}

//! `TritonCountMeta`, added by `detcount` to every frame: what the counting rules saw.
//!
//! Fields: `events` (array of structures named `crossed`, `entered` or `left`, with `line` or
//! `zone`, `direction` ("in" | "out", crossings only), `track-id` (uint64) and `label`),
//! `zones` (a structure `zones, <zone>=(uint)n, ...`: objects in each zone on this frame) and
//! `lines` (a structure `lines, <line>=(structure)[in|out, <label>=(uint64)n, ...]`: crossings so
//! far, per line, direction and class).

use gst::meta::CustomMeta;

use super::{COUNT_META, register};
use crate::count::{Direction, Event, FrameCounts, Totals};

/// What a frame's count meta holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub frame: FrameCounts,
    pub totals: Totals,
}

/// One event as a structure named after it (`crossed`, `entered`, `left`) with `line` or
/// `zone`, `direction` (crossings), `track-id` and `label`; more fields may be added.
pub fn event_structure(e: &Event) -> gst::structure::Builder {
    match e {
        Event::Crossed {
            line,
            direction,
            track_id,
            label,
        } => gst::Structure::builder("crossed")
            .field("line", line)
            .field("direction", direction.as_str())
            .field("track-id", track_id)
            .field("label", label),
        Event::Entered {
            zone,
            track_id,
            label,
        }
        | Event::Left {
            zone,
            track_id,
            label,
        } => gst::Structure::builder(e.kind())
            .field("zone", zone)
            .field("track-id", track_id)
            .field("label", label),
    }
}

/// Attaches the frame's counts.
pub fn add_count_meta(buffer: &mut gst::BufferRef, c: &FrameCounts, totals: &Totals) {
    register();
    let mut meta = CustomMeta::add(buffer, COUNT_META).expect("TritonCountMeta is registered");
    let s = meta.mut_structure();
    s.set(
        "events",
        gst::Array::new(c.events.iter().map(|e| event_structure(e).build())),
    );
    let mut zones = gst::Structure::new_empty("zones");
    for (z, n) in &c.occupancy {
        zones.set(z.as_str(), n);
    }
    s.set("zones", zones);
    let mut lines = gst::Structure::new_empty("lines");
    for (line, dirs) in totals {
        let mut by_dir = gst::Structure::new_empty("directions");
        for (d, labels) in dirs {
            let mut l = gst::Structure::new_empty("labels");
            for (label, n) in labels {
                l.set(label.as_str(), n);
            }
            by_dir.set(d.as_str(), l);
        }
        lines.set(line.as_str(), by_dir);
    }
    s.set("lines", lines);
}

/// Reads the count meta.
pub fn count_meta(buffer: &gst::BufferRef) -> Option<Counts> {
    let meta = CustomMeta::from_buffer(buffer, COUNT_META).ok()?;
    let s = meta.structure();
    let text = |e: &gst::StructureRef, f: &str| e.get::<String>(f).unwrap_or_default();
    let events = s
        .get::<gst::Array>("events")
        .ok()?
        .iter()
        .filter_map(|v| v.get::<gst::Structure>().ok())
        .filter_map(|e| {
            let (track_id, label) = (e.get::<u64>("track-id").ok()?, text(&e, "label"));
            Some(match e.name().as_str() {
                "crossed" => Event::Crossed {
                    line: text(&e, "line"),
                    direction: if text(&e, "direction") == "in" {
                        Direction::In
                    } else {
                        Direction::Out
                    },
                    track_id,
                    label,
                },
                "entered" => Event::Entered {
                    zone: text(&e, "zone"),
                    track_id,
                    label,
                },
                _ => Event::Left {
                    zone: text(&e, "zone"),
                    track_id,
                    label,
                },
            })
        })
        .collect();
    let occupancy = s
        .get::<gst::Structure>("zones")
        .map(|z| {
            z.iter()
                .map(|(k, v)| (k.to_string(), v.get::<u32>().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let mut totals = Totals::new();
    if let Ok(lines) = s.get::<gst::Structure>("lines") {
        for (line, v) in lines.iter() {
            let Ok(dirs) = v.get::<gst::Structure>() else {
                continue;
            };
            let entry = totals.entry(line.to_string()).or_default();
            for (d, v) in dirs.iter() {
                let dir = if d.as_str() == "in" {
                    Direction::In
                } else {
                    Direction::Out
                };
                let Ok(labels) = v.get::<gst::Structure>() else {
                    continue;
                };
                let by = entry.entry(dir).or_default();
                for (label, n) in labels.iter() {
                    by.insert(label.to_string(), n.get::<u64>().unwrap_or(0));
                }
            }
        }
    }
    Some(Counts {
        frame: FrameCounts { events, occupancy },
        totals,
    })
}

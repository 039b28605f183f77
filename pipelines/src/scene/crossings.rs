//! The tracking scene: objects whose ids must survive what trackers find hard, with the truth
//! (`id`, visible box) per frame. At 640×360 (everything scales with the frame):
//!
//! * three red walkers (one class, so `per-class` does not keep them apart), each in its own band,
//!   going back and forth across the frame and so across the vertical centre line both ways;
//! * a white pillar in front of the middle band: the walker there passes behind it, shrinking
//!   to a sliver, gone for a few frames, then growing out of the other side;
//! * a white wall in front of the bottom band, as high as 60 % of a walker: the walker there
//!   passes behind it with only its top showing;
//! * a blue crosser going up and down through all three bands, drawn over the walkers (a box
//!   crossing another box; the walkers' boxes stay whole around it).
//!
//! The truth box of an object is the bounding box of its visible pixels; an object with none
//! visible is absent from that frame's truth.

/// RGB of the pillar and the wall: white, a background to the `shapes_*` models.
pub const OCCLUDER_RGB: [u8; 3] = [255, 255, 255];

/// One object of the scene: id, class, size and motion in 640×360 units.
struct Mover {
    id: u32,
    class: usize,
    w: f64,
    h: f64,
    /// Start of the top-left corner.
    x: f64,
    y: f64,
    /// Speed in pixels per frame; the object turns back at the frame's edges.
    vx: f64,
    vy: f64,
}

const MOVERS: [Mover; 4] = [
    Mover {
        id: 1,
        class: 0,
        w: 40.0,
        h: 60.0,
        x: 20.0,
        y: 30.0,
        vx: 4.0,
        vy: 0.0,
    },
    Mover {
        id: 2,
        class: 0,
        w: 40.0,
        h: 60.0,
        x: 560.0,
        y: 150.0,
        vx: -5.0,
        vy: 0.0,
    },
    Mover {
        id: 3,
        class: 0,
        w: 40.0,
        h: 60.0,
        x: 300.0,
        y: 270.0,
        vx: 3.0,
        vy: 0.0,
    },
    Mover {
        id: 4,
        class: 2,
        w: 24.0,
        h: 36.0,
        x: 280.0,
        y: 300.0,
        vx: 0.0,
        vy: 6.0,
    },
];

/// The pillar (wider than a walker, over the middle band only) and the wall (over the lower 60 %
/// of the bottom band), `x1, y1, x2, y2` in 640×360 units.
const OCCLUDERS: [[f64; 4]; 2] = [[400.0, 130.0, 464.0, 230.0], [120.0, 294.0, 220.0, 340.0]];

/// Position along one axis at frame `i`, turning back at `0` and `span`.
fn bounce(start: f64, v: f64, span: f64, i: u32) -> f64 {
    if v == 0.0 || span <= 0.0 {
        return start;
    }
    let period = 2.0 * span;
    let t = (start + v * f64::from(i)).rem_euclid(period);
    if t <= span { t } else { period - t }
}

/// One object's full box (before occlusion) in frame `i` of a `w×h` clip, even pixel edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub id: u32,
    pub class: usize,
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

fn sx(w: u32, v: f64) -> u32 {
    ((v * f64::from(w) / 640.0).round() as u32) & !1
}

fn sy(h: u32, v: f64) -> u32 {
    ((v * f64::from(h) / 360.0).round() as u32) & !1
}

/// The objects in drawing order (later ones in front).
pub fn placed(w: u32, h: u32, i: u32) -> Vec<Placed> {
    MOVERS
        .iter()
        .map(|m| {
            let (ow, oh) = (sx(w, m.w), sy(h, m.h));
            let x = sx(w, bounce(m.x, m.vx, 640.0 - m.w, i));
            let y = sy(h, bounce(m.y, m.vy, 360.0 - m.h, i));
            Placed {
                id: m.id,
                class: m.class,
                x1: x,
                y1: y,
                x2: (x + ow).min(w),
                y2: (y + oh).min(h),
            }
        })
        .collect()
}

/// The pillar and the wall in a `w×h` clip.
pub fn occluders(w: u32, h: u32) -> [[u32; 4]; 2] {
    OCCLUDERS.map(|o| [sx(w, o[0]), sy(h, o[1]), sx(w, o[2]), sy(h, o[3])])
}

/// Which object (index into [`placed`]) each pixel shows, `None` for background and occluders.
fn owners(w: u32, h: u32, objs: &[Placed]) -> Vec<Option<u8>> {
    let mut own = vec![None; (w * h) as usize];
    for (k, o) in objs.iter().enumerate() {
        for y in o.y1..o.y2 {
            for x in o.x1..o.x2 {
                own[(y * w + x) as usize] = Some(k as u8);
            }
        }
    }
    for [px1, py1, px2, py2] in occluders(w, h) {
        for y in py1..py2 {
            for x in px1..px2 {
                own[(y * w + x) as usize] = None;
            }
        }
    }
    own
}

/// One visible object of the truth: its id, class and the box of its visible pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visible {
    pub id: u32,
    pub class: usize,
    pub bbox: [u32; 4],
    /// Visible pixels over the whole box's.
    pub visible: f64,
}

/// The truth of frame `i`: every object with a visible pixel.
pub fn truth(w: u32, h: u32, i: u32) -> Vec<Visible> {
    let objs = placed(w, h, i);
    let own = owners(w, h, &objs);
    objs.iter()
        .enumerate()
        .filter_map(|(k, o)| {
            let (mut x1, mut y1, mut x2, mut y2, mut n) = (u32::MAX, u32::MAX, 0, 0, 0u64);
            for y in o.y1..o.y2 {
                for x in o.x1..o.x2 {
                    if own[(y * w + x) as usize] == Some(k as u8) {
                        (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1));
                        n += 1;
                    }
                }
            }
            let area = u64::from(o.x2 - o.x1) * u64::from(o.y2 - o.y1);
            (n > 0).then(|| Visible {
                id: o.id,
                class: o.class,
                bbox: [x1, y1, x2, y2],
                visible: n as f64 / area as f64,
            })
        })
        .collect()
}

/// Draws frame `i` as tightly packed RGB (the demo scene's background and colours).
pub fn draw(w: u32, h: u32, i: u32) -> Vec<u8> {
    let objs = placed(w, h, i);
    let own = owners(w, h, &objs);
    let mut f = super::background(w, h);
    let occ = occluders(w, h);
    for y in 0..h {
        for x in 0..w {
            let p = &mut f[((y * w + x) * 3) as usize..][..3];
            if let Some(k) = own[(y * w + x) as usize] {
                p.copy_from_slice(&super::COLOURS[objs[k as usize].class]);
            } else if occ
                .iter()
                .any(|o| (o[0]..o[2]).contains(&x) && (o[1]..o[3]).contains(&y))
            {
                p.copy_from_slice(&OCCLUDER_RGB);
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scene_has_what_it_claims() {
        let (w, h, frames) = (640, 360, 300);
        let mut hidden = 0;
        let mut slivers = 0;
        let mut walled = 0;
        let mut sides = std::collections::BTreeSet::new();
        for i in 0..frames {
            let t = truth(w, h, i);
            let walker2 = t.iter().find(|v| v.id == 2);
            match walker2 {
                None => hidden += 1,
                Some(v) if v.visible < 0.5 => slivers += 1,
                _ => {}
            }
            let walker3 = t
                .iter()
                .find(|v| v.id == 3)
                .expect("the wall never hides walker 3");
            if walker3.visible < 0.5 {
                assert!(walker3.visible >= 0.4, "frame {i}: {walker3:?}");
                walled += 1;
            }
            for v in &t {
                if v.class == 0 {
                    sides.insert((v.id, (v.bbox[0] + v.bbox[2]) / 2 > w / 2));
                }
            }
            // The crosser never cuts a walker's box: walkers are whole unless the pillar is over them.
            for v in t.iter().filter(|v| v.id == 1) {
                let p = placed(w, h, i).into_iter().find(|p| p.id == v.id).unwrap();
                assert_eq!(v.bbox, [p.x1, p.y1, p.x2, p.y2], "frame {i}");
            }
        }
        assert!(
            hidden >= 3,
            "walker 2 is wholly behind the pillar for a few frames: {hidden}"
        );
        assert!(slivers >= 6, "and partly behind it: {slivers}");
        assert!(
            walled >= 10,
            "walker 3 shows only its top behind the wall: {walled}"
        );
        assert_eq!(
            sides.len(),
            6,
            "every walker on both sides of the centre: {sides:?}"
        );
        // The crosser passes over each walker at least once.
        for id in [1, 2, 3] {
            let over = (0..frames).any(|i| {
                let p = placed(w, h, i);
                let (a, b) = (p.iter().find(|o| o.id == id).unwrap(), p[3]);
                a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2
            });
            assert!(over, "the crosser passes over walker {id}");
        }
    }
}

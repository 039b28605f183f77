//! The demo scene: four solid rectangles in the `shapes_*` models' colours, each moving back and
//! forth in its own horizontal lane (so they never overlap) over a grey gradient; and the tracking
//! scene ([`crossings`]), where objects pass behind a pillar and over each other.

pub mod crossings;

/// RGB of class ids 0..4 (red, green, blue, yellow), as the `shapes_*` models detect them.
pub const COLOURS: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
/// Class names, in class-id order.
pub const LABELS: [&str; 4] = ["red", "green", "blue", "yellow"];

/// One object in one frame: `x1, y1, x2, y2` (exclusive ends) and its class id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
    pub class: usize,
}

/// The objects of frame `i` for a `w×h` clip (even coordinates and sizes).
pub fn objects(w: u32, h: u32, i: u32) -> Vec<Object> {
    let lanes = 4u32;
    let lane_h = h / lanes;
    (0..4usize)
        .map(|k| {
            let ow = ((w / 8) + 24 * k as u32) & !1;
            let oh = ((lane_h * 6 / 10).max(8)) & !1;
            let speed = 4 + 3 * k as u32;
            let span = w - ow;
            let t = (i * speed + 97 * k as u32) % (2 * span.max(1));
            let x = if t < span { t } else { 2 * span - t } & !1;
            let y = (k as u32 * lane_h + (lane_h - oh) / 2) & !1;
            Object {
                x1: x,
                y1: y,
                x2: x + ow,
                y2: y + oh,
                class: k,
            }
        })
        .collect()
}

/// The grey gradient behind the objects, tightly packed RGB.
pub fn background(w: u32, h: u32) -> Vec<u8> {
    let (wu, hu) = (w as usize, h as usize);
    let mut f = vec![0u8; wu * hu * 3];
    for y in 0..hu {
        for x in 0..wu {
            let g = (50 + x * 60 / wu + y * 30 / hu) as u8;
            f[(y * wu + x) * 3..][..3].copy_from_slice(&[g, g, g]);
        }
    }
    f
}

/// Draws frame `i` as tightly packed RGB.
pub fn draw(w: u32, h: u32, i: u32) -> Vec<u8> {
    let wu = w as usize;
    let mut f = background(w, h);
    for o in objects(w, h, i) {
        for y in o.y1..o.y2 {
            for x in o.x1..o.x2 {
                f[(y as usize * wu + x as usize) * 3..][..3].copy_from_slice(&COLOURS[o.class]);
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_stay_inside_and_never_overlap() {
        for (w, h) in [(1280, 720), (640, 480), (320, 240)] {
            for i in 0..500 {
                let obs = objects(w, h, i);
                for o in &obs {
                    assert!(
                        o.x2 <= w && o.y2 <= h && o.x1 < o.x2 && o.y1 < o.y2,
                        "{o:?}"
                    );
                }
                for a in 0..obs.len() {
                    for b in a + 1..obs.len() {
                        assert!(
                            obs[a].y2 <= obs[b].y1 || obs[b].y2 <= obs[a].y1,
                            "lanes overlap"
                        );
                    }
                }
            }
        }
    }
}

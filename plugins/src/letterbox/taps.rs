//! Planning the taps: for every output column and row, the source pixels it samples and the
//! weight of the second (OpenCV's `INTER_LINEAR` with half-pixel centres), and whether the
//! column taps are regular enough to read in fixed steps. Computed once per geometry.

/// One output column/row tap: source index and weight of the next source pixel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tap {
    pub(super) i0: usize,
    pub(super) i1: usize,
    pub(super) f: f32,
}

pub(super) fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let s = (o as f64 + 0.5) * scale - 0.5;
            let mut i0 = s.floor();
            let mut f = s - i0;
            if i0 < 0.0 {
                i0 = 0.0;
                f = 0.0;
            }
            let mut i0 = i0 as usize;
            if i0 >= src - 1 {
                i0 = src - 1;
                f = 0.0;
            }
            Tap {
                i0,
                i1: (i0 + 1).min(src - 1),
                f: f as f32,
            }
        })
        .collect()
}

/// See `Plan::regular` (resize.rs): the step is at least 2, so both taps lie inside one chunk.
pub(super) fn regular(xs: &[Tap], src_w: usize) -> Option<(usize, usize, f32)> {
    let (t0, t1) = (xs.first()?, xs.get(1)?);
    let step = t1.i0.checked_sub(t0.i0)?;
    let ok = step >= 2
        && xs.last()?.i1 < src_w
        && xs.iter().enumerate().all(|(x, t)| {
            t.i0 == t0.i0 + step * x && t.i1 == t.i0 + 1 && t.f.to_bits() == t0.f.to_bits()
        });
    ok.then_some((step, t0.i0, t0.f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_taps_are_recognised_only_where_every_column_follows() {
        // 2×: column x reads 2x and 2x+1 with f ½; 3×: 3x+1 (f 0); 6×: 6x+2 (f ½).
        assert_eq!(regular(&taps(1280, 640), 1280), Some((2, 0, 0.5)));
        assert_eq!(regular(&taps(1920, 640), 1920), Some((3, 1, 0.0)));
        assert_eq!(regular(&taps(3840, 640), 3840), Some((6, 2, 0.5)));
        // Not an integer ratio, an upscale, equal sizes, too few columns: no.
        assert_eq!(regular(&taps(1000, 640), 1000), None);
        assert_eq!(regular(&taps(320, 640), 320), None);
        assert_eq!(regular(&taps(640, 640), 640), None);
        assert_eq!(regular(&taps(2, 1), 2), None);
        // Hand-made lists: each condition on its own.
        let t = |i0, i1, f| Tap { i0, i1, f };
        let even = [t(0, 1, 0.5), t(2, 3, 0.5), t(4, 5, 0.5)];
        assert_eq!(regular(&even, 6), Some((2, 0, 0.5)));
        assert_eq!(
            regular(&even, 5),
            None,
            "the last second tap outside the row"
        );
        let uneven = [t(0, 1, 0.5), t(2, 3, 0.5), t(5, 6, 0.5)];
        assert_eq!(regular(&uneven, 7), None, "first taps not evenly spaced");
        let clamped = [t(0, 1, 0.5), t(2, 3, 0.5), t(4, 4, 0.5)];
        assert_eq!(
            regular(&clamped, 5),
            None,
            "a second tap that is not the next pixel"
        );
        let weights = [t(0, 1, 0.5), t(2, 3, 0.5), t(4, 5, 0.25)];
        assert_eq!(regular(&weights, 6), None, "weights differ");
    }
}

//! The rule of `ptsrepair`, without GStreamer types: timestamps in nanoseconds.

/// One frame interval when neither the buffer nor the caps say (30 frames per second).
pub const DEFAULT_STEP_NS: u64 = 1_000_000_000 / 30;

/// Keeps the last PTS handed out and repairs the ones that would not come after it.
#[derive(Debug, Default, Clone)]
pub struct Retimer {
    last: Option<u64>,
    /// The frame interval of the caps (`framerate`), when they give one.
    caps_step: Option<u64>,
    repaired: u64,
}

impl Retimer {
    /// Forgets the last PTS (a flush or a new segment): the next frame's PTS is taken as it is.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The frame interval from the caps' frame rate `num/den`; `0/1` (variable) gives none.
    pub fn set_framerate(&mut self, num: i32, den: i32) {
        self.caps_step = (num > 0 && den > 0)
            .then(|| (den as u64).saturating_mul(1_000_000_000) / num as u64)
            .filter(|s| *s > 0);
    }

    /// How many frames got a PTS of this element's.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// The PTS a frame leaves with: `pts` when it is later than the last one, else the last one
    /// plus one frame interval (`duration`, the caps' or 1/30 s). `None` for the very first
    /// frame without a PTS: `start` (the segment's start) stands in.
    pub fn retime(&mut self, pts: Option<u64>, duration: Option<u64>, start: u64) -> u64 {
        let step = duration
            .filter(|d| *d > 0)
            .or(self.caps_step)
            .unwrap_or(DEFAULT_STEP_NS);
        let out = match (pts, self.last) {
            (Some(p), Some(last)) if p > last => p,
            (Some(p), None) => p,
            (_, Some(last)) => {
                self.repaired += 1;
                last.saturating_add(step)
            }
            (None, None) => {
                self.repaired += 1;
                start
            }
        };
        self.last = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 41_708_375; // 23.976 f/s, as in OpenCV's Megamind.avi

    #[test]
    fn good_timestamps_pass_unchanged() {
        let mut r = Retimer::default();
        for i in 0..10 {
            assert_eq!(r.retime(Some(1000 + i * F), Some(F), 0), 1000 + i * F);
        }
        assert_eq!(r.repaired(), 0);
    }

    #[test]
    fn duplicates_missing_and_backward_steps_are_placed_one_interval_later() {
        let mut r = Retimer::default();
        // The decoded PTS of Megamind.avi's first frames: the 5th repeats the 4th.
        let got: Vec<u64> = [0, 1, 2, 3, 3, 5, 6, 6, 8]
            .iter()
            .map(|i| r.retime(Some(i * F), Some(F), 0))
            .collect();
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 8].map(|i| i * F));
        assert_eq!(r.repaired(), 2);
        // Missing: the buffer's duration, then the caps' rate, then 1/30 s.
        assert_eq!(r.retime(None, Some(F), 0), 9 * F);
        r.set_framerate(25, 1);
        assert_eq!(r.retime(None, None, 0), 9 * F + 40_000_000);
        r.set_framerate(0, 1);
        assert_eq!(
            r.retime(None, None, 0),
            9 * F + 40_000_000 + DEFAULT_STEP_NS
        );
        // Backwards: after the last one, and the stream's own PTS again once it is later.
        let last = 9 * F + 40_000_000 + DEFAULT_STEP_NS;
        assert_eq!(r.retime(Some(F), Some(F), 0), last + F);
        assert_eq!(r.retime(Some(last + 5 * F), Some(F), 0), last + 5 * F);
        assert_eq!(r.repaired(), 6);
    }

    #[test]
    fn the_first_frame_without_pts_starts_the_segment_and_reset_forgets() {
        let mut r = Retimer::default();
        assert_eq!(r.retime(None, None, 7), 7);
        assert_eq!(r.retime(None, None, 7), 7 + DEFAULT_STEP_NS);
        r.reset();
        assert_eq!(r.retime(Some(3), None, 0), 3);
        assert_eq!(r.repaired(), 2);
    }

    #[test]
    fn every_output_is_later_than_the_one_before() {
        // Any sequence of inputs, missing ones included, leaves strictly increasing.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut r = Retimer::default();
        let mut prev = None;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pts = (!x.is_multiple_of(5)).then_some(x % 1_000_000_000);
            let out = r.retime(pts, (!x.is_multiple_of(3)).then_some(x % 50_000_000), 0);
            if let Some(p) = prev {
                assert!(out > p, "{out} after {p}");
            }
            prev = Some(out);
        }
    }
}

//! [`TrackAnswers`]: `reclassify-interval` on the classifier's side. `tritonletterbox` sends a
//! tracked object only every N frames; on the frames between, the object carries the last answer
//! its track got, marked cached. No GStreamer here.

use std::collections::HashMap;

use crate::meta::Attribute;

/// The last answer of each track, and the frame the track was last seen on.
#[derive(Debug, Default)]
pub struct TrackAnswers {
    map: HashMap<u64, (Attribute, u64)>,
}

impl TrackAnswers {
    /// Tracks not seen for this many frames are forgotten (long gone; ids are not reused).
    pub const FORGET_AFTER: u64 = 1000;

    /// Takes a frame's fresh answers: `tracks[i]` is the track of the frame's `i`-th object,
    /// `sent` the places of the objects sent, `fresh` their answers (place, answer). A tracked
    /// object sent without an answer (under the threshold) forgets its track's old one.
    pub fn remember(
        &mut self,
        tracks: &[Option<u64>],
        sent: &[u32],
        fresh: &[(usize, Attribute)],
        frame: u64,
    ) {
        for &i in sent {
            let Some(Some(id)) = tracks.get(i as usize) else {
                continue;
            };
            match fresh.iter().find(|(k, _)| *k == i as usize) {
                Some((_, a)) => {
                    self.map.insert(*id, (a.clone(), frame));
                }
                None => {
                    self.map.remove(id);
                }
            }
        }
    }

    /// The kept answers for the frame's tracked objects that were not sent, marked cached; then
    /// forgets tracks gone for [`Self::FORGET_AFTER`] frames.
    pub fn cached(
        &mut self,
        tracks: &[Option<u64>],
        sent: &[u32],
        frame: u64,
    ) -> Vec<(usize, Attribute)> {
        let mut out = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            let Some(id) = t else { continue };
            let Some((a, seen)) = self.map.get_mut(id) else {
                continue;
            };
            *seen = frame;
            if !sent.contains(&(i as u32)) {
                out.push((
                    i,
                    Attribute {
                        cached: true,
                        ..a.clone()
                    },
                ));
            }
        }
        self.map
            .retain(|_, (_, seen)| frame.saturating_sub(*seen) < Self::FORGET_AFTER);
        out
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(label: &str) -> Attribute {
        Attribute {
            model: "shapes_color".into(),
            label: label.into(),
            class_id: 0,
            confidence: 0.9,
            cached: false,
        }
    }

    #[test]
    fn unsent_tracked_objects_get_their_tracks_last_answer_marked_cached() {
        let mut t = TrackAnswers::default();
        // Frame 0: objects 0 (track 7) and 1 (untracked) sent; both answered.
        let tracks = [Some(7), None];
        t.remember(
            &tracks,
            &[0, 1],
            &[(0, answer("red")), (1, answer("blue"))],
            0,
        );
        assert!(t.cached(&tracks, &[0, 1], 0).is_empty());
        // Frame 1: track 7 now third, nothing sent: its answer, cached; the others nothing.
        let tracks = [None, Some(9), Some(7)];
        let got = t.cached(&tracks, &[], 1);
        assert_eq!(
            got,
            vec![(
                2,
                Attribute {
                    cached: true,
                    ..answer("red")
                }
            )]
        );
        // Frame 2: track 7 sent again, now green: the new answer is kept.
        t.remember(&tracks, &[2], &[(2, answer("green"))], 2);
        assert_eq!(t.cached(&tracks, &[], 3)[0].1.label, "green");
        // Frame 4: sent, no answer over the threshold: the old one is forgotten.
        t.remember(&tracks, &[2], &[], 4);
        assert!(t.cached(&tracks, &[], 5).is_empty());
    }

    #[test]
    fn tracks_not_seen_for_long_are_forgotten() {
        let mut t = TrackAnswers::default();
        t.remember(
            &[Some(1), Some(2)],
            &[0, 1],
            &[(0, answer("a")), (1, answer("b"))],
            0,
        );
        // Track 2 stays in view; track 1 is gone.
        for f in 1..TrackAnswers::FORGET_AFTER {
            t.cached(&[Some(2)], &[], f);
        }
        assert_eq!(t.len(), 2);
        t.cached(&[Some(2)], &[], TrackAnswers::FORGET_AFTER);
        assert_eq!(t.len(), 1);
        assert!(
            t.cached(&[Some(1)], &[], TrackAnswers::FORGET_AFTER + 1)
                .is_empty()
        );
    }
}

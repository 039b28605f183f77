//! The constant-velocity Kalman filter of SORT, DeepSORT and ByteTrack, on a box's centre,
//! aspect ratio and height: state `(cx, cy, a, h, vcx, vcy, va, vh)`, measurement `(cx, cy, a, h)`.
//! Noise scales with the box height; the published weights are 1/20 for positions and 1/160
//! for velocities.

// Matrix arithmetic reads best with indices.
#![allow(clippy::needless_range_loop)]

const WP: f64 = 1.0 / 20.0;
const WV: f64 = 1.0 / 160.0;

type M8 = [[f64; 8]; 8];
type M4 = [[f64; 4]; 4];

/// One track's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Kalman {
    pub x: [f64; 8],
    p: M8,
}

/// A box `x1, y1, x2, y2` as the filter's measurement `cx, cy, a (w/h), h`.
pub fn measure(b: [f32; 4]) -> [f64; 4] {
    let [x1, y1, x2, y2] = b.map(f64::from);
    let h = (y2 - y1).max(1e-6);
    [(x1 + x2) / 2.0, (y1 + y2) / 2.0, (x2 - x1) / h, h]
}

fn diag8(d: [f64; 8]) -> M8 {
    let mut m = [[0.0; 8]; 8];
    for i in 0..8 {
        m[i][i] = d[i];
    }
    m
}

impl Kalman {
    /// A new track at measurement `z`, with an unknown velocity.
    pub fn new(z: [f64; 4]) -> Kalman {
        let h = z[3];
        let std = [
            2.0 * WP * h,
            2.0 * WP * h,
            1e-2,
            2.0 * WP * h,
            10.0 * WV * h,
            10.0 * WV * h,
            1e-5,
            10.0 * WV * h,
        ];
        Kalman {
            x: [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0],
            p: diag8(std.map(|s| s * s)),
        }
    }

    /// The box `x1, y1, x2, y2` of the current state.
    pub fn bbox(&self) -> [f32; 4] {
        let [cx, cy, a, h] = [self.x[0], self.x[1], self.x[2], self.x[3]];
        let w = a * h;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0].map(|v| v as f32)
    }

    /// One frame ahead. A lost track's height velocity is zeroed first (it would otherwise shrink
    /// or grow the box without evidence), as the reference does.
    pub fn predict(&mut self, lost: bool) {
        if lost {
            self.x[7] = 0.0;
        }
        for i in 0..4 {
            self.x[i] += self.x[i + 4];
        }
        // P = F P Fᵀ + Q, F = [[I, I], [0, I]].
        let p = self.p;
        let mut fp = p;
        for i in 0..4 {
            for j in 0..8 {
                fp[i][j] = p[i][j] + p[i + 4][j];
            }
        }
        let mut n = fp;
        for i in 0..8 {
            for j in 0..4 {
                n[i][j] = fp[i][j] + fp[i][j + 4];
            }
        }
        let h = self.x[3];
        let q = [WP * h, WP * h, 1e-2, WP * h, WV * h, WV * h, 1e-5, WV * h];
        for i in 0..8 {
            n[i][i] += q[i] * q[i];
        }
        self.p = n;
    }

    /// Corrects the state with measurement `z`.
    pub fn update(&mut self, z: [f64; 4]) {
        let h = self.x[3];
        let r = [WP * h, WP * h, 1e-1, WP * h];
        // S = H P Hᵀ + R: the top-left 4×4 block of P.
        let mut s: M4 = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.p[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let Some(si) = invert4(s) else { return };
        // K = P Hᵀ S⁻¹ (8×4); P Hᵀ is the first four columns of P.
        let mut k = [[0.0; 4]; 8];
        for i in 0..8 {
            for j in 0..4 {
                let mut acc = 0.0;
                for l in 0..4 {
                    acc += self.p[i][l] * si[l][j];
                }
                k[i][j] = acc;
            }
        }
        let y: [f64; 4] = std::array::from_fn(|i| z[i] - self.x[i]);
        for i in 0..8 {
            self.x[i] += k[i][0] * y[0] + k[i][1] * y[1] + k[i][2] * y[2] + k[i][3] * y[3];
        }
        // P = P − K H P (H P: the first four rows of P). P stays symmetric: the upper triangle
        // is computed and mirrored.
        let hp = [self.p[0], self.p[1], self.p[2], self.p[3]];
        for i in 0..8 {
            for j in i..8 {
                let mut acc = 0.0;
                for l in 0..4 {
                    acc += k[i][l] * hp[l][j];
                }
                let v = self.p[i][j] - acc;
                self.p[i][j] = v;
                self.p[j][i] = v;
            }
        }
    }
}

/// The inverse of a 4×4 matrix by Gauss–Jordan with partial pivoting; `None` when singular.
fn invert4(mut a: M4) -> Option<M4> {
    let mut inv: M4 = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(u8::from(i == j))));
    for c in 0..4 {
        let piv = (c..4).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))?;
        if a[piv][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, piv);
        inv.swap(c, piv);
        let d = a[c][c];
        for j in 0..4 {
            a[c][j] /= d;
            inv[c][j] /= d;
        }
        for r in 0..4 {
            if r != c {
                let f = a[r][c];
                for j in 0..4 {
                    a[r][j] -= f * a[c][j];
                    inv[r][j] -= f * inv[c][j];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_round_trips_through_the_state() {
        let b = [10.0, 20.0, 50.0, 100.0];
        let k = Kalman::new(measure(b));
        for (got, want) in k.bbox().iter().zip(b) {
            assert!((got - want).abs() < 1e-4, "{:?}", k.bbox());
        }
    }

    #[test]
    fn a_box_moving_steadily_is_followed_and_predicted() {
        // 4 px per frame to the right: after some frames the filter knows the velocity and
        // predicts the next position within a pixel.
        let at = |t: f32| [100.0 + 4.0 * t, 50.0, 140.0 + 4.0 * t, 130.0];
        let mut k = Kalman::new(measure(at(0.0)));
        for t in 1..30 {
            k.predict(false);
            k.update(measure(at(t as f32)));
        }
        k.predict(false);
        let p = k.bbox();
        assert!((p[0] - at(30.0)[0]).abs() < 1.0, "{p:?} vs {:?}", at(30.0));
        assert!((k.x[4] - 4.0).abs() < 0.2, "velocity {}", k.x[4]);
    }

    #[test]
    fn the_inverse_is_the_inverse() {
        let a = [
            [4.0, 1.0, 0.0, 0.5],
            [1.0, 3.0, 0.2, 0.0],
            [0.0, 0.2, 2.0, 0.1],
            [0.5, 0.0, 0.1, 1.0],
        ];
        let i = invert4(a).unwrap();
        for r in 0..4 {
            for c in 0..4 {
                let v: f64 = (0..4).map(|l| a[r][l] * i[l][c]).sum();
                assert!((v - f64::from(u8::from(r == c))).abs() < 1e-9);
            }
        }
        assert!(invert4([[0.0; 4]; 4]).is_none());
    }
}

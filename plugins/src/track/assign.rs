//! Optimal assignment with a cost limit: which rows (tracks) go with which columns (detections)
//! so that the matched costs plus a penalty of half the limit for every row and column left alone
//! is least. A pair is only ever matched when its cost is below the limit (the formulation of
//! `lap.lapjv(extend_cost=True, cost_limit=…)` that the ByteTrack reference uses).
//!
//! Solved as a rectangular assignment on `min(cost − limit, 0)` with the Hungarian method
//! (shortest augmenting paths with potentials, O(n²·m)): leaving a row and a column unmatched
//! costs the same as matching them at exactly the limit, so a pair below the limit is worth
//! matching and a pair above it never is.
//!
//! Pairs at or above the limit gain nothing, so the problem splits into the connected components
//! of the pairs below it, each solved on its own with the same optimum: a frame of many objects
//! far apart is many 1 × 1 problems, not one n × m.

/// Matched `(row, column)` pairs, and the rows and columns left unmatched, each in ascending order.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
}

/// A pair below the limit: row, column, cost.
pub type Edge = (usize, usize, f32);

/// Assigns the `n × m` matrix `cost` (row-major) under `limit`.
pub fn assign(cost: &[f32], n: usize, m: usize, limit: f32) -> Assignment {
    assert_eq!(cost.len(), n * m, "cost is n × m");
    let edges: Vec<Edge> = (0..n)
        .flat_map(|r| (0..m).map(move |c| (r, c)))
        .filter_map(|(r, c)| {
            let x = cost[r * m + c];
            (x < limit).then_some((r, c, x))
        })
        .collect();
    assign_sparse(&edges, n, m, limit)
}

/// [`assign`] given only the pairs below `limit` (every pair not listed is at or above it): what
/// a frame of many objects needs, where most pairs do not overlap at all.
pub fn assign_sparse(edges: &[Edge], n: usize, m: usize, limit: f32) -> Assignment {
    let (mut matches, groups) = components(edges, n, m, limit);
    for g in groups {
        let (k, l) = (g.rows.len(), g.cols.len());
        // The group's gains, 0 where a pair is at or above the limit.
        let mut gain = vec![0.0f64; k * l];
        let local = |x: usize, among: &[usize]| among.binary_search(&x).unwrap();
        for &e in &g.edges {
            let (r, c, x) = edges[e];
            gain[local(r, &g.rows) * l + local(c, &g.cols)] = f64::from(x) - f64::from(limit);
        }
        let sub = |i: usize, j: usize| gain[i * l + j];
        // The method wants rows ≤ columns: solve the transpose otherwise.
        let found: Vec<(usize, usize)> = if k <= l {
            hungarian(k, l, sub)
        } else {
            hungarian(l, k, |j, i| sub(i, j))
                .into_iter()
                .map(|(j, i)| (i, j))
                .collect()
        };
        // A pair the method had to fill in at no gain is no match.
        matches.extend(
            found
                .into_iter()
                .filter(|&(i, j)| gain[i * l + j] < 0.0)
                .map(|(i, j)| (g.rows[i], g.cols[j])),
        );
    }
    matches.sort_unstable();
    let mut row_used = vec![false; n];
    let mut col_used = vec![false; m];
    for &(r, c) in &matches {
        row_used[r] = true;
        col_used[c] = true;
    }
    Assignment {
        matches,
        rows: (0..n).filter(|&r| !row_used[r]).collect(),
        cols: (0..m).filter(|&c| !col_used[c]).collect(),
    }
}

/// A connected component of more than one pair: its rows and columns (ascending) and edges.
struct Group {
    rows: Vec<usize>,
    cols: Vec<usize>,
    edges: Vec<usize>,
}

/// The connected components of the pairs below `limit`: those of a single pair (matched as they
/// are) and the larger ones (a row or a column alone is left out: nothing to match).
fn components(edges: &[Edge], n: usize, m: usize, limit: f32) -> (Vec<(usize, usize)>, Vec<Group>) {
    // Union-find over rows 0..n and columns n..n+m.
    let mut parent: Vec<usize> = (0..n + m).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut linked = vec![false; n + m];
    for &(r, c, x) in edges {
        debug_assert!(
            x < limit && r < n && c < m,
            "an edge is a pair below the limit"
        );
        let (a, b) = (root(&mut parent, r), root(&mut parent, n + c));
        parent[a] = b;
        linked[r] = true;
        linked[n + c] = true;
    }
    // Rows, columns and edges per component (by root).
    let mut size = vec![(0u32, 0u32); n + m];
    for x in (0..n + m).filter(|&x| linked[x]) {
        let rt = root(&mut parent, x);
        if x < n {
            size[rt].0 += 1;
        } else {
            size[rt].1 += 1;
        }
    }
    let mut singles = Vec::new();
    // The group of each root, by index (none yet: usize::MAX).
    let mut index = vec![usize::MAX; n + m];
    let mut groups: Vec<Group> = Vec::new();
    for (e, &(r, c, _)) in edges.iter().enumerate() {
        let rt = root(&mut parent, r);
        if size[rt] == (1, 1) {
            // A row and a column linked only to each other, by this one edge.
            singles.push((r, c));
            continue;
        }
        if index[rt] == usize::MAX {
            index[rt] = groups.len();
            groups.push(Group {
                rows: Vec::new(),
                cols: Vec::new(),
                edges: Vec::new(),
            });
        }
        let g = &mut groups[index[rt]];
        g.edges.push(e);
        g.rows.push(r);
        g.cols.push(c);
    }
    for g in &mut groups {
        g.rows.sort_unstable();
        g.rows.dedup();
        g.cols.sort_unstable();
        g.cols.dedup();
    }
    (singles, groups)
}

/// Least-cost assignment of every one of `n` rows to a distinct one of `m ≥ n` columns.
fn hungarian(n: usize, m: usize, a: impl Fn(usize, usize) -> f64) -> Vec<(usize, usize)> {
    if n == 0 {
        return Vec::new();
    }
    // 1-based potentials u (rows), v (columns); p[j]: the row matched to column j (0: none).
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; m + 1]);
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The objective: matched costs plus half the limit per unmatched row and column.
    fn objective(cost: &[f32], m: usize, limit: f32, a: &Assignment) -> f64 {
        let matched: f64 = a
            .matches
            .iter()
            .map(|&(r, c)| f64::from(cost[r * m + c]))
            .sum();
        matched + (a.rows.len() + a.cols.len()) as f64 * f64::from(limit) / 2.0
    }

    /// Every partial matching whose pairs are under the limit, by brute force.
    fn best_by_search(cost: &[f32], n: usize, m: usize, limit: f32) -> f64 {
        fn go(
            r: usize,
            n: usize,
            m: usize,
            used: &mut Vec<bool>,
            f: &dyn Fn(usize, usize) -> f64,
        ) -> f64 {
            if r == n {
                return 0.0;
            }
            // Row r unmatched, or matched to a free column.
            let mut best = go(r + 1, n, m, used, f);
            for c in 0..m {
                if !used[c] {
                    used[c] = true;
                    best = best.min(f(r, c) + go(r + 1, n, m, used, f));
                    used[c] = false;
                }
            }
            best
        }
        let half = f64::from(limit) / 2.0;
        // A matched pair saves a row's and a column's penalty: (c − limit) relative to both alone.
        let f = |r: usize, c: usize| {
            let x = f64::from(cost[r * m + c]);
            if x < f64::from(limit) {
                x - 2.0 * half
            } else {
                0.0
            }
        };
        go(0, n, m, &mut vec![false; m], &f) + (n + m) as f64 * half
    }

    #[test]
    fn the_cheapest_pairs_under_the_limit_are_matched() {
        // Row 0 fits column 1 best, row 1 column 0; row 2 fits nothing under the limit.
        let cost = [0.9, 0.1, 0.5, 0.2, 0.95, 0.9, 0.99, 0.85, 0.97];
        let a = assign(&cost, 3, 3, 0.8);
        assert_eq!(a.matches, [(0, 1), (1, 0)]);
        assert_eq!(a.rows, [2]);
        assert_eq!(a.cols, [2]);
    }

    #[test]
    fn empty_sides_leave_everything_unmatched() {
        assert_eq!(
            assign(&[], 0, 3, 0.8),
            Assignment {
                matches: vec![],
                rows: vec![],
                cols: vec![0, 1, 2]
            }
        );
        assert_eq!(assign(&[], 2, 0, 0.8).rows, [0, 1]);
    }

    #[test]
    fn a_pair_is_given_up_when_two_others_gain_more() {
        // Greedy would take (0,0) at 0.1 and leave row 1 and column 1 over the limit; the optimum
        // takes (0,1) and (1,0): 0.3 + 0.3 < 0.1 + two penalties of 0.4.
        let cost = [0.1, 0.3, 0.3, 0.9];
        assert_eq!(assign(&cost, 2, 2, 0.8).matches, [(0, 1), (1, 0)]);
    }

    proptest! {
        #[test]
        fn the_assignment_is_optimal(
            n in 0usize..5,
            m in 0usize..5,
            seed in proptest::collection::vec(0.0f32..1.0, 25),
            limit in 0.05f32..1.0,
        ) {
            let cost: Vec<f32> = seed[..n * m].to_vec();
            let a = assign(&cost, n, m, limit);
            for &(r, c) in &a.matches {
                prop_assert!(cost[r * m + c] < limit);
            }
            prop_assert_eq!(a.matches.len() + a.rows.len(), n);
            prop_assert_eq!(a.matches.len() + a.cols.len(), m);
            let got = objective(&cost, m, limit, &a);
            let best = best_by_search(&cost, n, m, limit);
            prop_assert!((got - best).abs() < 1e-5, "got {} best {}", got, best);
        }
    }
}

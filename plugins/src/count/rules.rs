//! Counting rules: their text form, and the checks that turn bad geometry into an error naming
//! the rule and what is wrong.
//!
//! One rule per entry (`;` between entries in a property, one per line in a file, `#` comments):
//!
//! ```text
//! line door 100,400 540,400 classes=person      # a directed line: from, to
//! zone queue 0,0 200,0 200,300 0,300            # a polygon: three or more corners
//! ```
//!
//! Coordinates are frame pixels, or fractions of the frame's width and height (0–1) with
//! `normalized`. `classes=` (labels, comma-separated) limits a rule to those classes; without it
//! every class counts.

use super::{Point, crosses};

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub from: Point,
    pub to: Point,
    /// Labels that count (empty: all).
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub points: Vec<Point>,
    pub classes: Vec<String>,
}

fn counts(classes: &[String], label: &str) -> bool {
    classes.is_empty() || classes.iter().any(|c| c == label)
}

impl Line {
    pub fn counts(&self, label: &str) -> bool {
        counts(&self.classes, label)
    }
}

impl Zone {
    pub fn counts(&self, label: &str) -> bool {
        counts(&self.classes, label)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub lines: Vec<Line>,
    pub zones: Vec<Zone>,
    /// Coordinates are fractions of the frame (until [`Rules::to_pixels`]).
    pub normalized: bool,
}

fn point(text: &str, rule: &str) -> Result<Point, String> {
    let bad = || format!("{rule}: '{text}' is not a point (expected x,y with two numbers)");
    let (x, y) = text.split_once(',').ok_or_else(bad)?;
    let (x, y) = (
        x.trim().parse::<f64>().map_err(|_| bad())?,
        y.trim().parse::<f64>().map_err(|_| bad())?,
    );
    if !x.is_finite() || !y.is_finite() {
        return Err(bad());
    }
    Ok([x, y])
}

impl Rules {
    /// Adds the rules of `text`; `what` names where they come from in errors (a property, a
    /// file). `kind`: `Some("line")`/`Some("zone")` when every entry is of that kind (the
    /// `lines` and `zones` properties, entries without the keyword), `None` when each entry
    /// starts with its kind (a rules file).
    pub fn add(&mut self, text: &str, what: &str, kind: Option<&str>) -> Result<(), String> {
        let sep = if kind.is_some() { ';' } else { '\n' };
        for (n, entry) in text.split(sep).enumerate() {
            let entry = entry.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let mut words: Vec<&str> = entry.split_whitespace().collect();
            let kind = match kind {
                Some(k) => k,
                None => words.remove(0),
            };
            let at = if sep == '\n' {
                format!("{what} line {}", n + 1)
            } else {
                what.to_string()
            };
            let Some(&name) = words.first() else {
                return Err(format!("{at}: a {kind} needs a name"));
            };
            let rule = format!("{at}: {kind} '{name}'");
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                || name.contains(',')
            {
                return Err(format!(
                    "{rule}: a name is letters, digits, '_' and '-' (then the points)"
                ));
            }
            if self.lines.iter().any(|l| l.name == name)
                || self.zones.iter().any(|z| z.name == name)
            {
                return Err(format!("{rule}: the name is used twice"));
            }
            let mut classes = Vec::new();
            let mut points = Vec::new();
            for w in &words[1..] {
                if let Some(c) = w.strip_prefix("classes=") {
                    classes = c
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .collect();
                } else {
                    points.push(point(w, &rule)?);
                }
            }
            match kind {
                "line" => {
                    let [from, to] = points[..] else {
                        return Err(format!(
                            "{rule}: a line has two points (from, to), found {}",
                            points.len()
                        ));
                    };
                    if from == to {
                        return Err(format!("{rule}: zero length (both ends at {from:?})"));
                    }
                    self.lines.push(Line {
                        name: name.into(),
                        from,
                        to,
                        classes,
                    });
                }
                "zone" => {
                    check_polygon(&points, &rule)?;
                    self.zones.push(Zone {
                        name: name.into(),
                        points,
                        classes,
                    });
                }
                other => {
                    return Err(format!(
                        "{at}: '{other}' is not a rule (expected 'line' or 'zone')"
                    ));
                }
            }
        }
        if self.normalized {
            self.check_inside(1.0, 1.0, "the frame (normalized: 0 to 1)")?;
        }
        Ok(())
    }

    fn check_inside(&self, w: f64, h: f64, frame: &str) -> Result<(), String> {
        let named = self
            .lines
            .iter()
            .map(|l| (format!("line '{}'", l.name), vec![l.from, l.to]))
            .chain(
                self.zones
                    .iter()
                    .map(|z| (format!("zone '{}'", z.name), z.points.clone())),
            );
        for (rule, points) in named {
            if let Some(p) = points
                .iter()
                .find(|p| !(0.0..=w).contains(&p[0]) || !(0.0..=h).contains(&p[1]))
            {
                return Err(format!(
                    "{rule}: point {},{} is outside {frame}",
                    p[0], p[1]
                ));
            }
        }
        Ok(())
    }

    /// The rules in pixels of a `w`×`h` frame; pixel coordinates outside it are an error.
    pub fn to_pixels(&self, w: u32, h: u32) -> Result<Rules, String> {
        let (fw, fh) = (f64::from(w), f64::from(h));
        if !self.normalized {
            self.check_inside(fw, fh, &format!("the {w}x{h} frame"))?;
            return Ok(self.clone());
        }
        let scale = |p: &Point| [p[0] * fw, p[1] * fh];
        Ok(Rules {
            lines: self
                .lines
                .iter()
                .map(|l| Line {
                    from: scale(&l.from),
                    to: scale(&l.to),
                    ..l.clone()
                })
                .collect(),
            zones: self
                .zones
                .iter()
                .map(|z| Zone {
                    points: z.points.iter().map(scale).collect(),
                    ..z.clone()
                })
                .collect(),
            normalized: false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.zones.is_empty()
    }
}

/// Three or more corners, no edge of zero length, no two edges crossing, some area.
fn check_polygon(points: &[Point], rule: &str) -> Result<(), String> {
    let n = points.len();
    if n < 3 {
        return Err(format!(
            "{rule}: a zone has three or more corners, found {n}"
        ));
    }
    for i in 0..n {
        if points[i] == points[(i + 1) % n] {
            return Err(format!(
                "{rule}: corners {} and {} are the same point",
                i + 1,
                (i + 1) % n + 1
            ));
        }
    }
    for i in 0..n {
        for j in i + 1..n {
            // Edges that share a corner do not count.
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue;
            }
            let (a, b) = (points[i], points[(i + 1) % n]);
            let (c, d) = (points[j], points[(j + 1) % n]);
            if crosses(a, b, c, d) || crosses(c, d, a, b) {
                return Err(format!(
                    "{rule}: self-intersecting (edge {}–{} crosses edge {}–{})",
                    i + 1,
                    (i + 1) % n + 1,
                    j + 1,
                    (j + 1) % n + 1
                ));
            }
        }
    }
    let area: f64 = (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    if area.abs() < 1e-12 {
        return Err(format!("{rule}: the corners enclose no area"));
    }
    Ok(())
}

use proptest::prelude::*;

use super::*;

fn obj(id: u64, label: &str, cx: f64, bottom: f64) -> Object {
    Object {
        track_id: id,
        label: label.into(),
        bbox: [cx - 10.0, bottom - 40.0, cx + 10.0, bottom],
    }
}

fn rules(text: &str) -> Rules {
    let mut r = Rules::default();
    r.add(text, "rules", None).unwrap();
    r
}

/// A line drawn left to right: walking down the screen across it is "in", up is "out"; counted
/// per line, direction and class.
#[test]
fn crossings_have_a_direction_and_add_up_per_class() {
    let mut c = Counter::new(rules("line door 0,100 200,100"));
    let walk = |c: &mut Counter, id, label: &str, ys: &[f64]| {
        ys.iter()
            .flat_map(|&y| c.frame(&[obj(id, label, 50.0, y)]).events)
            .collect::<Vec<_>>()
    };
    let e = walk(&mut c, 1, "person", &[80.0, 95.0, 110.0]);
    assert_eq!(
        e,
        vec![Event::Crossed {
            line: "door".into(),
            direction: Direction::In,
            track_id: 1,
            label: "person".into()
        }]
    );
    walk(&mut c, 2, "person", &[130.0, 90.0]);
    walk(&mut c, 3, "car", &[130.0, 70.0]);
    let t = c.totals();
    assert_eq!(t["door"][&Direction::In]["person"], 1);
    assert_eq!(t["door"][&Direction::Out]["person"], 1);
    assert_eq!(t["door"][&Direction::Out]["car"], 1);
}

/// Rules replaced on a running count: the kept line keeps its totals, the kept zone knows who is
/// in it (no second "entered"), the new zone's first frame says who entered it, and what left
/// the rules is gone.
#[test]
fn replaced_rules_keep_what_kept_its_name() {
    let mut c = Counter::new(rules(
        "line door 0,100 200,100\nline gate 0,300 200,300\nzone hall 0,0 200,0 200,200 0,200",
    ));
    let first = c.frame(&[obj(1, "p", 50.0, 90.0), obj(2, "p", 150.0, 290.0)]);
    assert_eq!(first.events.len(), 1, "1 entered the hall: {first:?}");
    let e = c.frame(&[obj(1, "p", 50.0, 110.0), obj(2, "p", 150.0, 310.0)]);
    assert_eq!(e.events.len(), 2, "1 crossed door, 2 gate: {e:?}");
    assert_eq!(c.totals()["door"][&Direction::In]["p"], 1);
    assert_eq!(c.totals()["gate"][&Direction::In]["p"], 1);
    c.replace_rules(rules(
        "zone yard 0,0 200,0 200,200 0,200\nline door 0,100 200,100\nzone hall 0,0 200,0 200,200 0,200",
    ));
    let f = c.frame(&[obj(1, "p", 50.0, 120.0)]);
    assert_eq!(
        f.events,
        vec![Event::Entered {
            zone: "yard".into(),
            track_id: 1,
            label: "p".into()
        }],
        "only the new zone is entered"
    );
    assert_eq!(f.occupancy, vec![("yard".into(), 1), ("hall".into(), 1)]);
    assert_eq!(c.totals()["door"][&Direction::In]["p"], 1, "door kept");
    assert!(!c.totals().contains_key("gate"), "gate left the rules");
    // The kept line goes on counting.
    c.frame(&[obj(1, "p", 50.0, 90.0)]);
    assert_eq!(c.totals()["door"][&Direction::Out]["p"], 1);
}

#[test]
fn stopping_on_the_line_and_going_on_counts_once() {
    for ys in [[90.0, 100.0, 110.0], [110.0, 100.0, 90.0]] {
        let mut c = Counter::new(rules("line l 0,100 200,100"));
        let n: usize = ys
            .iter()
            .map(|&y| c.frame(&[obj(1, "p", 50.0, y)]).events.len())
            .sum();
        assert_eq!(n, 1, "{ys:?}");
    }
}

#[test]
fn passing_beside_a_line_or_in_another_class_is_not_a_crossing() {
    let mut c = Counter::new(rules("line l 0,100 200,100 classes=person"));
    for y in [80.0, 120.0] {
        assert!(c.frame(&[obj(1, "person", 250.0, y)]).events.is_empty());
        assert!(c.frame(&[obj(2, "dog", 50.0, y)]).events.is_empty());
    }
}

/// An object hidden for some frames that reappears on the other side has crossed.
#[test]
fn a_track_hidden_while_it_crossed_counts_when_it_reappears() {
    let mut c = Counter::new(rules("line l 0,100 200,100"));
    c.frame(&[obj(1, "p", 50.0, 80.0)]);
    for _ in 0..5 {
        assert!(c.frame(&[]).events.is_empty());
    }
    assert_eq!(c.frame(&[obj(1, "p", 50.0, 130.0)]).events.len(), 1);
}

#[test]
fn zones_count_who_is_inside_and_say_who_entered_and_left() {
    let mut c = Counter::new(rules(
        "zone queue 0,0 100,0 100,100 0,100\nzone cars 0,0 100,0 100,100 0,100 classes=car",
    ));
    let f = c.frame(&[obj(1, "p", 50.0, 50.0), obj(2, "p", 150.0, 50.0)]);
    assert_eq!(f.occupancy, vec![("queue".into(), 1), ("cars".into(), 0)]);
    assert_eq!(
        f.events,
        vec![Event::Entered {
            zone: "queue".into(),
            track_id: 1,
            label: "p".into()
        }]
    );
    let f = c.frame(&[obj(1, "p", 150.0, 50.0), obj(2, "p", 60.0, 90.0)]);
    assert_eq!(f.occupancy[0], ("queue".into(), 1));
    assert_eq!(f.events.len(), 2);
    assert!(matches!(&f.events[0], Event::Left { track_id: 1, .. }));
    assert!(matches!(&f.events[1], Event::Entered { track_id: 2, .. }));
    // Nobody on the frame: nobody inside.
    assert_eq!(c.frame(&[]).occupancy[0], ("queue".into(), 0));
}

#[test]
fn the_anchor_is_the_bottom_centre() {
    assert_eq!(anchor([10.0, 20.0, 30.0, 60.0]), [20.0, 60.0]);
    // The box's top is in the zone, its bottom centre is not: outside.
    let mut c = Counter::new(rules("zone z 0,0 100,0 100,50 0,50"));
    let f = c.frame(&[Object {
        track_id: 1,
        label: "p".into(),
        bbox: [40.0, 20.0, 60.0, 80.0],
    }]);
    assert_eq!(f.occupancy[0].1, 0);
}

#[test]
fn a_reset_forgets_positions_but_keeps_the_totals() {
    let mut c = Counter::new(rules("line l 0,100 200,100"));
    c.frame(&[obj(1, "p", 50.0, 80.0)]);
    c.frame(&[obj(1, "p", 50.0, 120.0)]);
    c.reset();
    // After a seek the object is elsewhere: no crossing from where it was.
    assert!(c.frame(&[obj(1, "p", 50.0, 80.0)]).events.is_empty());
    assert_eq!(c.totals()["l"][&Direction::In]["p"], 1);
}

#[test]
fn bad_rules_are_refused_naming_the_rule_and_the_fault() {
    let err = |text: &str, kind: Option<&str>| {
        let mut r = Rules::default();
        r.add(text, "lines", kind).unwrap_err()
    };
    let cases = [
        ("door 10,10 10,10", Some("line"), "line 'door': zero length"),
        ("door 10,10", Some("line"), "two points"),
        ("door 10,10 x,3", Some("line"), "'x,3' is not a point"),
        (
            "q 0,0 10,10 10,0 0,10",
            Some("zone"),
            "zone 'q': self-intersecting",
        ),
        ("q 0,0 10,10", Some("zone"), "three or more corners"),
        ("q 0,0 10,10 20,20", Some("zone"), "no area"),
        ("a 0,0 1,1; a 0,1 1,0", Some("line"), "used twice"),
        ("circle c 1,1", None, "'circle' is not a rule"),
        ("a/b 0,0 1,1", Some("line"), "a name is"),
    ];
    for (text, kind, want) in cases {
        let e = err(text, kind);
        assert!(e.starts_with("lines"), "{e}");
        assert!(e.contains(want), "{text}: {e}");
    }
    // Outside the frame: pixels when the size is known, fractions at once.
    let r = rules("line l 0,0 700,10");
    let e = r.to_pixels(640, 360).unwrap_err();
    assert!(
        e.contains("line 'l'") && e.contains("700,10") && e.contains("640x360"),
        "{e}"
    );
    let mut n = Rules {
        normalized: true,
        ..Default::default()
    };
    let e = n.add("z 0,0 1.5,0 1,1", "zones", Some("zone")).unwrap_err();
    assert!(e.contains("zone 'z'") && e.contains("1.5,0"), "{e}");
}

#[test]
fn normalized_rules_scale_to_the_frame() {
    let mut r = Rules {
        normalized: true,
        ..Default::default()
    };
    r.add("mid 0,0.5 1,0.5", "lines", Some("line")).unwrap();
    let p = r.to_pixels(640, 360).unwrap();
    assert_eq!(
        (p.lines[0].from, p.lines[0].to),
        ([0.0, 180.0], [640.0, 180.0])
    );
}

proptest! {
    /// Over any walk, a line that spans the whole walk area is crossed in and out alternately,
    /// and in − out is where the walk ended relative to where it started.
    #[test]
    fn crossings_alternate_and_add_up_to_the_change_of_side(
        ys in proptest::collection::vec(0.0f64..200.0, 2..60),
        xs in proptest::collection::vec(10.0f64..190.0, 60),
    ) {
        let mut c = Counter::new(rules("line l 0,100 200,100"));
        let mut dirs = Vec::new();
        for (y, x) in ys.iter().zip(&xs) {
            for e in c.frame(&[obj(1, "p", *x, *y)]).events {
                if let Event::Crossed { direction, .. } = e {
                    dirs.push(direction);
                }
            }
        }
        for w in dirs.windows(2) {
            prop_assert_ne!(w[0], w[1]);
        }
        let below = |y: f64| i64::from(y >= 100.0);
        let (ins, outs) = (
            dirs.iter().filter(|d| **d == Direction::In).count() as i64,
            dirs.iter().filter(|d| **d == Direction::Out).count() as i64,
        );
        prop_assert_eq!(ins - outs, below(*ys.last().unwrap()) - below(ys[0]));
    }
}

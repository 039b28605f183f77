//! docs/elements.md lists exactly the properties each element has, with the right defaults.

mod common;

use gst::prelude::*;

fn table(doc: &str, element: &str) -> Vec<(String, String)> {
    let section = doc
        .split(&format!("## {element}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section for {element}"));
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .skip_while(|l| !l.starts_with("| property"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                c[1].trim_matches('`').to_string(),
                c[3].trim_matches('`').to_string(),
            )
        })
        .collect()
}

fn default_string(p: &gst::glib::ParamSpec) -> String {
    let v = p.default_value();
    if let Ok(s) = v.get::<Option<String>>() {
        return s.unwrap_or_else(|| "(none)".into());
    }
    if let Ok(b) = v.get::<bool>() {
        return b.to_string();
    }
    if let Ok(u) = v.get::<u32>() {
        return u.to_string();
    }
    if let Ok(u) = v.get::<u64>() {
        return u.to_string();
    }
    if let Ok(f) = v.get::<f32>() {
        return format!("{f}");
    }
    if let Ok(d) = v.get::<f64>() {
        return format!("{d}");
    }
    if let Some(e) = gst::glib::EnumValue::from_value(v) {
        return e.1.nick().to_string();
    }
    panic!("{}: unhandled type {:?}", p.name(), v.type_())
}

#[test]
fn element_property_tables_match_the_code() {
    common::init();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/elements.md"))
        .unwrap();
    for name in [
        "tritonletterbox",
        "tritoninfer",
        "detoverlay",
        "detjsonsink",
        "dettrack",
        "detcount",
        "detjsonreplay",
        "tritoncamerasrc",
        "ptsrepair",
    ] {
        let e = gst::ElementFactory::make(name).build().unwrap();
        let rows = table(&doc, name);
        let own: Vec<gst::glib::ParamSpec> = e
            .list_properties()
            .into_iter()
            .filter(|p| p.owner_type() == e.type_())
            .collect();
        let mut names: Vec<String> = own.iter().map(|p| p.name().to_string()).collect();
        names.sort();
        let mut documented: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        documented.sort();
        assert_eq!(documented, names, "{name}: docs table vs code");
        for p in own {
            let want = &rows.iter().find(|r| r.0 == p.name()).unwrap().1;
            let got = default_string(&p);
            let same = got == *want
                || (got
                    .parse::<f64>()
                    .ok()
                    .zip(want.parse::<f64>().ok())
                    .is_some_and(|(a, b)| (a - b).abs() < 1e-6))
                || (want == "\"\"" && got.is_empty());
            assert!(
                same,
                "{name}.{}: code default {got:?}, docs say {want:?}",
                p.name()
            );
        }
    }
}

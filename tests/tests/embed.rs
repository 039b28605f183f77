//! The embedding examples (Rust: plugins/examples/embed.rs; Python: examples/embed.py) run against
//! the real Triton and print per-frame counts that match what was drawn.

use std::path::PathBuf;
use std::process::Command;

use gst_triton_tests::artifacts;
use gst_triton_tests::triton::{repo_root, shared_url};

fn clip() -> PathBuf {
    artifacts::demo_clip("embed", 8, 320, 240)
}

fn check(out: std::process::Output, what: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("frame ")).collect();
    assert_eq!(lines.len(), 8, "{what}: {text}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            *l,
            format!("frame {i} ok blue=1 green=1 red=1 yellow=1"),
            "{what}"
        );
    }
}

#[test]
fn rust_embedding_example() {
    let out = Command::new(artifacts::example("embed"))
        .args([
            clip().to_str().unwrap(),
            &shared_url(),
            "shapes_nms",
            "triton",
        ])
        .output()
        .expect("run the embed example");
    check(out, "embed.rs");
}

#[test]
fn python_embedding_example() {
    let out = Command::new("/usr/bin/python3")
        .arg(repo_root().join("examples/embed.py"))
        .args([
            clip().to_str().unwrap(),
            &shared_url(),
            "shapes_nms",
            "triton",
        ])
        .env("GST_PLUGIN_PATH", artifacts::plugin_dir())
        .output()
        .unwrap();
    check(out, "embed.py");
}

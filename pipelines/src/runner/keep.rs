//! A camera whose pipeline starts again within a run (after a failure, an edit or an API `PUT`
//! that needs a restart, a removal and a return) would write its files afresh over the earlier
//! pipeline's. Before it starts, those files are set aside under the first number free for all of
//! them: `frame_counts.jsonl` → `frame_counts.1.jsonl`, `annotated.ts` → `annotated.1.ts`, so
//! that each pair keeps one picture per JSON line and nothing is lost. The newest files always
//! have the plain names. A run's first start of a camera overwrites, as a single run does.

use std::io;
use std::path::{Path, PathBuf};

/// `name` with `.n` before its extension (`frame_counts.jsonl`, 2 → `frame_counts.2.jsonl`).
fn numbered(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{n}.{ext}"),
        None => format!("{name}.{n}"),
    }
}

/// Moves the files `names` of `dir` that exist and hold anything to their numbered names, the
/// same number for all, the first one none of them has yet. Returns the new paths.
pub fn set_aside(dir: &Path, names: &[&str]) -> io::Result<Vec<PathBuf>> {
    let present: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| std::fs::metadata(dir.join(n)).is_ok_and(|m| m.is_file() && m.len() > 0))
        .collect();
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let n = (1..)
        .find(|&n| {
            names
                .iter()
                .all(|name| !dir.join(numbered(name, n)).exists())
        })
        .expect("a free number");
    present
        .into_iter()
        .map(|name| {
            let to = dir.join(numbered(name, n));
            std::fs::rename(dir.join(name), &to).map(|()| to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_files_get_the_first_number_free_for_all_and_empty_ones_stay() {
        let dir = std::env::temp_dir().join(format!("keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let names = ["frame_counts.jsonl", "annotated.ts"];
        // Nothing there: nothing moved.
        assert!(set_aside(&dir, &names).unwrap().is_empty());
        std::fs::write(dir.join("frame_counts.jsonl"), "first\n").unwrap();
        std::fs::write(dir.join("annotated.ts"), "ts1").unwrap();
        let moved = set_aside(&dir, &names).unwrap();
        assert_eq!(
            moved,
            [dir.join("frame_counts.1.jsonl"), dir.join("annotated.1.ts")]
        );
        assert!(!dir.join("frame_counts.jsonl").exists());
        // The second time: number 2, even when only one of them has a 1 (an earlier pipeline
        // without a recording).
        std::fs::remove_file(dir.join("annotated.1.ts")).unwrap();
        std::fs::write(dir.join("frame_counts.jsonl"), "second\n").unwrap();
        std::fs::write(dir.join("annotated.ts"), "").unwrap();
        let moved = set_aside(&dir, &names).unwrap();
        assert_eq!(
            moved,
            [dir.join("frame_counts.2.jsonl")],
            "empty files stay"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("frame_counts.1.jsonl")).unwrap(),
            "first\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("frame_counts.2.jsonl")).unwrap(),
            "second\n"
        );
        assert_eq!(numbered("plain", 3), "plain.3");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

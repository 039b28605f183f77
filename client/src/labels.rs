//! Class names from text: a labels file, or a model's `class_names` parameter.

/// Parses class names: one per line, or a JSON list, or comma-separated on one line.
pub fn parse(text: &str) -> Vec<String> {
    let t = text.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return v;
    }
    if !t.contains('\n') && t.contains(',') {
        return t.split(',').map(|s| s.trim().to_string()).collect();
    }
    t.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

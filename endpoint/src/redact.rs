//! Credentials inside URIs (`rtsp://user:password@cam`, `https://host/x?token=…`), kept out of
//! everything a program shows.
//!
//! * [`redacted`]: a URI as it may be shown: the user-info becomes `***@`, the value of any query
//!   parameter that looks like a credential becomes `***`.
//! * [`remember`] / [`remember_in`]: the credentials of a URI (or of every URI in a text, such as
//!   a configuration file) are kept for [`scrub`], for the lifetime of the process.
//! * [`scrub`]: any text (an error from GStreamer that quotes the URI, a parser error that quotes
//!   a line of a file) with every remembered credential replaced by `***`.
//!
//! Credentials shorter than [`MIN_SCRUBBED`] characters are redacted where a URI is shown but
//! not scrubbed from free text: a two-letter password would otherwise turn every occurrence of
//! those letters in a message into `***`.

use std::sync::Mutex;

/// Query parameter names that carry credentials: a parameter whose name contains one of these
/// (without case) has its value hidden.
const CREDENTIAL_PARAMETERS: &[&str] = &[
    "user",
    "login",
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "sig",
    "credential",
    "session",
];

/// The shortest credential [`scrub`] looks for in free text.
pub const MIN_SCRUBBED: usize = 3;

/// What replaces a credential.
const HIDDEN: &str = "***";

/// The parts of a URI: `scheme://` `user-info@`? `host…` `?query`? `#fragment`?
struct Parts<'a> {
    /// Up to and including `://`.
    scheme: &'a str,
    user_info: Option<&'a str>,
    /// Host, port and path.
    location: &'a str,
    query: Option<&'a str>,
    /// From `#` on, or empty.
    fragment: &'a str,
}

fn parts(uri: &str) -> Option<Parts<'_>> {
    let scheme_end = uri.find("://")? + 3;
    let (scheme, rest) = uri.split_at(scheme_end);
    let (rest, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (user_info, location) = match rest[..authority_end].rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    Some(Parts {
        scheme,
        user_info,
        location,
        query,
        fragment,
    })
}

fn is_credential(parameter: &str) -> bool {
    let name = percent_decoded(parameter).to_ascii_lowercase();
    CREDENTIAL_PARAMETERS.iter().any(|c| name.contains(c))
}

/// The `name=value` pairs of a query whose value is a credential.
fn credential_values(query: &str) -> impl Iterator<Item = &str> {
    query
        .split(['&', ';'])
        .filter_map(|p| p.split_once('='))
        .filter(|(name, _)| is_credential(name))
        .map(|(_, value)| value)
}

/// `uri` as it may be shown: `scheme://***@host/path?user=***&x=1`. Text that is not a URI
/// (a file path) is returned as it is.
pub fn redacted(uri: &str) -> String {
    let Some(p) = parts(uri) else {
        return uri.to_string();
    };
    let mut out = String::with_capacity(uri.len());
    out.push_str(p.scheme);
    if p.user_info.is_some() {
        out.push_str(HIDDEN);
        out.push('@');
    }
    out.push_str(p.location);
    if let Some(q) = p.query {
        out.push('?');
        let shown: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_credential(name) => format!("{name}={HIDDEN}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&shown.join("&"));
    }
    out.push_str(p.fragment);
    out
}

/// `%XX` sequences decoded (invalid ones kept as they are; invalid UTF-8 replaced).
fn percent_decoded(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        let hex = |i: usize| tail.get(i).and_then(|d| (*d as char).to_digit(16));
        match (c, hex(0), hex(1)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                rest = &tail[2..];
            }
            _ => {
                out.push(c);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The credentials in `uri`: the password (or the whole user-info when it has no `:`, a token
/// given as the user name), the user-info as a whole, and credential query values, each as
/// written and percent-decoded.
pub fn credentials(uri: &str) -> Vec<String> {
    let Some(p) = parts(uri) else {
        return Vec::new();
    };
    let mut found: Vec<&str> = Vec::new();
    if let Some(info) = p.user_info {
        found.push(info);
        if let Some((_, password)) = info.split_once(':') {
            found.push(password);
        }
    }
    if let Some(q) = p.query {
        found.extend(credential_values(q));
    }
    let mut out: Vec<String> = Vec::new();
    for f in found {
        for s in [f.to_string(), percent_decoded(f)] {
            if !s.is_empty() && !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

static REMEMBERED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps the credentials of `uri` for [`scrub`].
pub fn remember(uri: &str) {
    let mut kept = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    for c in credentials(uri) {
        if c.chars().count() >= MIN_SCRUBBED && !kept.contains(&c) {
            kept.push(c);
        }
    }
    // Longest first: a password inside a remembered user-info is replaced with it.
    kept.sort_by_key(|c| std::cmp::Reverse(c.len()));
}

/// Keeps the credentials of every URI in `text` (a configuration file before it is parsed, so
/// that a parser's error quoting a line can be scrubbed).
pub fn remember_in(text: &str) {
    for uri in uris_in(text) {
        remember(uri);
    }
}

/// The URIs in free text: from a scheme (or a bare `://`) to the first space, quote or bracket.
fn uris_in(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("://").map(move |(at, _)| {
        let start = text[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = text[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(text.len(), |i| at + i);
        &text[start..end]
    })
}

/// `text` with every remembered credential (see [`remember`]) replaced by `***`, and every URI
/// in it redacted.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for uri in uris_in(text) {
        let shown = redacted(uri);
        if shown != uri {
            out = out.replace(uri, &shown);
        }
    }
    let kept = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    for c in kept.iter() {
        if out.contains(c.as_str()) {
            out = out.replace(c.as_str(), HIDDEN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_never_survives() {
        assert_eq!(
            redacted("rtsp://admin:s3cret@10.0.0.5:554/stream1"),
            "rtsp://***@10.0.0.5:554/stream1"
        );
        assert_eq!(redacted("rtsp://user@cam/a@b"), "rtsp://***@cam/a@b");
        assert_eq!(redacted("rtsp://p:a@ss@cam"), "rtsp://***@cam");
        assert_eq!(redacted("rtsp://cam:554/x"), "rtsp://cam:554/x");
        assert_eq!(redacted("/v/in.mp4"), "/v/in.mp4");
        assert_eq!(redacted("rtsp://u:p@cam?x=1#f@g"), "rtsp://***@cam?x=1#f@g");
    }

    #[test]
    fn credential_query_values_never_survive() {
        assert_eq!(
            redacted("rtsp://cam/s?user=admin&password=s3cret&channel=1"),
            "rtsp://cam/s?user=***&password=***&channel=1"
        );
        assert_eq!(
            redacted("https://h/c.mp4?X-Amz-Signature=abc&X-Amz-Credential=k&t=2#x"),
            "https://h/c.mp4?X-Amz-Signature=***&X-Amz-Credential=***&t=2#x"
        );
        assert_eq!(
            redacted("http://h/x?access_token=t0k&api%5Fkey=k3y&flag"),
            "http://h/x?access_token=***&api%5Fkey=***&flag"
        );
        assert_eq!(redacted("http://h/x?channel=1"), "http://h/x?channel=1");
    }

    #[test]
    fn credentials_as_written_and_decoded() {
        assert_eq!(
            credentials("rtsp://adm:p%40ss@cam/s?token=t%2Bk&ch=1"),
            ["adm:p%40ss", "adm:p@ss", "p%40ss", "p@ss", "t%2Bk", "t+k"]
        );
        assert_eq!(credentials("https://T0KEN@host/x"), ["T0KEN"]);
        assert!(credentials("rtsp://cam/s?ch=1").is_empty());
        assert!(credentials("/v/in.mp4").is_empty());
    }

    #[test]
    fn scrub_removes_remembered_credentials_from_any_text() {
        remember("rtsp://viewer:Scrub-Me-1@cam.example/live?session=Sess-77");
        remember_in("[[camera]]\nuri = \"rtsp://cfg:From-File-9@cam2/x\" # a line\n");
        let text = "Could not open: rtsp://viewer:Scrub-Me-1@cam.example/live (auth Scrub-Me-1), \
                    line 2: uri = \"rtsp://cfg:From-File-9@cam2/x\", decoded Sess-77, and From-File-9";
        let s = scrub(text);
        for secret in ["Scrub-Me-1", "From-File-9", "Sess-77", "viewer:", "cfg:"] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert!(s.contains("rtsp://***@cam.example/live"), "{s}");
        // A URI never remembered is still redacted where it appears whole.
        assert_eq!(
            scrub("at rtsp://x:Unseen-2@h/p now"),
            "at rtsp://***@h/p now"
        );
        // Text without credentials is left alone.
        assert_eq!(
            scrub("no secrets: file:///v/in.mp4"),
            "no secrets: file:///v/in.mp4"
        );
    }

    #[test]
    fn short_credentials_are_not_scrubbed_from_free_text() {
        remember("rtsp://u:ab@cam/x");
        assert_eq!(scrub("a table of labels"), "a table of labels");
        assert_eq!(redacted("rtsp://u:ab@cam/x"), "rtsp://***@cam/x");
    }

    #[test]
    fn uris_are_found_in_text() {
        let t = "a rtsp://u:p@h/x, 'http://h/y?token=1' <srt://h:9>";
        let found: Vec<&str> = uris_in(t).collect();
        assert_eq!(
            found,
            ["rtsp://u:p@h/x,", "http://h/y?token=1", "srt://h:9"]
        );
    }
}

//! Camera URIs as they may be shown: without the credentials they often carry.

/// `uri` with any `user:password@` replaced by `***@` (logs, messages and metas never show
/// credentials).
pub fn redacted(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_string();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &uri[..scheme_end], &rest[at + 1..]),
        None => uri.to_string(),
    }
}

/// Whether `uri` names a live source (a camera or a network stream) rather than a file: these
/// get `tritoncamerasrc`, files get plain decoding that ends at their end.
pub fn is_live(uri: &str) -> bool {
    let scheme = uri.split("://").next().unwrap_or("").to_ascii_lowercase();
    matches!(
        scheme.as_str(),
        "rtsp" | "rtsps" | "rtspt" | "rtspu" | "srt" | "udp" | "rtmp" | "rtp"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive() {
        assert_eq!(
            redacted("rtsp://admin:s3cret@10.0.0.5:554/stream1"),
            "rtsp://***@10.0.0.5:554/stream1"
        );
        assert_eq!(redacted("rtsp://user@cam/a@b"), "rtsp://***@cam/a@b");
        assert_eq!(redacted("rtsp://p:a@ss@cam"), "rtsp://***@cam");
        assert_eq!(redacted("rtsp://cam:554/x"), "rtsp://cam:554/x");
        assert_eq!(redacted("/v/in.mp4"), "/v/in.mp4");
    }

    #[test]
    fn live_schemes() {
        assert!(is_live("rtsp://cam/1"));
        assert!(is_live("RTSPS://cam/1"));
        assert!(is_live("srt://cam:9000"));
        assert!(!is_live("http://host/clip.mp4"));
        assert!(!is_live("file:///v/in.mp4"));
        assert!(!is_live("/v/in.mp4"));
    }
}

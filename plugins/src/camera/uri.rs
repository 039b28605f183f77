//! Camera URIs: which are live, and how they may be shown (without the credentials they often
//! carry: [`triton_endpoint::redact`]).

pub use triton_endpoint::redact::redacted;

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
    fn live_schemes() {
        assert!(is_live("rtsp://cam/1"));
        assert!(is_live("RTSPS://cam/1"));
        assert!(is_live("srt://cam:9000"));
        assert!(!is_live("http://host/clip.mp4"));
        assert!(!is_live("file:///v/in.mp4"));
        assert!(!is_live("/v/in.mp4"));
    }
}

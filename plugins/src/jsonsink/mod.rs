//! `detjsonsink`: one JSON object per frame, one line each (detections, counts per label, status).

pub mod counts;
mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct DetJsonSink(ObjectSubclass<imp::DetJsonSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// `t` as an RFC 3339 UTC timestamp with milliseconds (the JSON lines' `timestamp`; the
/// runner's API uses it too).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let now = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_millis()
    )
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "detjsonsink",
        gst::Rank::NONE,
        DetJsonSink::static_type(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(super::rfc3339(t(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(t(1_796_601_600 + 3661, 7)),
            "2026-12-07T01:01:01.007Z"
        );
        assert_eq!(
            super::rfc3339(t(951_782_400, 999)),
            "2000-02-29T00:00:00.999Z"
        );
    }
}

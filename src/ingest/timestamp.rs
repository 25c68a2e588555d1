//! Timestamps as the sources write them, to UTC nanoseconds.

use chrono::{DateTime, NaiveDateTime};

/// A timestamp that parsed, with a warning when it needed an assumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTime {
    pub nanos: i64,
    pub assumed_utc: bool,
}

/// Parses RFC 3339 (any offset, 0–9 fraction digits). A time with no zone, or with a space
/// instead of `T`, is read as UTC and flagged. Times outside what nanoseconds since 1970 can
/// hold (about 1677–2262) are errors, never clamped.
pub fn parse_time(text: &str) -> Result<ParsedTime, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return to_nanos(t.to_utc().naive_utc(), false);
    }
    // RFC 3339 allows a space between date and time; so do some exporters.
    if text.len() > 10 && text.as_bytes()[10] == b' ' {
        let with_t = format!("{}T{}", &text[..10], &text[11..]);
        if let Ok(t) = DateTime::parse_from_rfc3339(&with_t) {
            return to_nanos(t.to_utc().naive_utc(), false);
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return to_nanos(t, true);
        }
    }
    Err(format!("not an RFC 3339 timestamp: {}", shorten(text)))
}

fn to_nanos(t: NaiveDateTime, assumed_utc: bool) -> Result<ParsedTime, String> {
    match t.and_utc().timestamp_nanos_opt() {
        Some(nanos) => Ok(ParsedTime { nanos, assumed_utc }),
        None => Err(format!(
            "timestamp out of range (1677-09-21 to 2262-04-11): {t}"
        )),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_precision() {
        let z = parse_time("2026-03-02T10:00:00Z").unwrap();
        assert_eq!(parse_time("2026-03-02T15:30:00+05:30").unwrap(), z);
        let ns = parse_time("2026-03-02T10:00:00.123456789Z").unwrap();
        assert_eq!(ns.nanos - z.nanos, 123_456_789);
        assert!(!ns.assumed_utc);
    }

    #[test]
    fn no_zone_is_read_as_utc_and_flagged() {
        let t = parse_time("2026-03-02 10:00:00.000000000").unwrap();
        assert!(t.assumed_utc);
        assert_eq!(t.nanos, parse_time("2026-03-02T10:00:00Z").unwrap().nanos);
    }

    #[test]
    fn out_of_range_and_garbage_are_errors() {
        assert!(parse_time("1600-01-01T00:00:00Z")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_time("2300-01-01T00:00:00Z").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn leap_second_does_not_panic() {
        assert!(parse_time("2016-12-31T23:59:60Z").is_ok());
    }

    #[test]
    fn formats_as_rfc3339_utc() {
        let t = parse_time("2026-03-02T10:00:00.5Z").unwrap().nanos;
        assert_eq!(crate::timerange::rfc3339(t), "2026-03-02T10:00:00.500Z");
    }
}

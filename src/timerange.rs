//! Time arguments shared by reports, detection and backtests (the same for every command): `--from T --to T`
//! (half-open), or `--since D` meaning `--from (now − D)`; `--at T` fixes "now".

use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A half-open range of instants, in nanoseconds since the epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: i64,
    pub to: i64,
}

/// Parses `30s`, `15m`, `24h`, `7d`, `2w` (one number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}' has no unit (use s, m, h, d or w, e.g. 24h)"))?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 24h or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("'{text}': unit must be s, m, h, d or w")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Parses RFC 3339 or a date (midnight UTC) into nanoseconds.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let dt = if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
    } else {
        DateTime::parse_from_rfc3339(t)
            .map_err(|_| format!("'{text}' is not RFC 3339 (2026-03-06T14:05:00Z) or a date"))?
            .with_timezone(&Utc)
    };
    dt.timestamp_nanos_opt()
        .ok_or_else(|| format!("'{text}' is out of range"))
}

/// Nanoseconds in a second, a minute, an hour and a day (UTC days: no leap seconds in Unix
/// time).
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
pub const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
pub const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;

pub fn rfc3339(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Resolves the CLI's time arguments. `default_since` applies when none is given.
pub fn resolve(
    since: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now: i64,
    default_since: Duration,
) -> Result<TimeRange, String> {
    let to = match to {
        Some(t) => parse_instant(t).map_err(|e| format!("--to: {e}"))?,
        None => now,
    };
    let from = match (since, from) {
        (Some(_), Some(_)) => return Err("give --since or --from, not both".into()),
        (Some(d), None) => {
            let d = parse_duration(d).map_err(|e| format!("--since: {e}"))?;
            to - i64::try_from(d.as_nanos())
                .unwrap_or(i64::MAX)
                .min(to - i64::MIN / 2)
        }
        (None, Some(f)) => parse_instant(f).map_err(|e| format!("--from: {e}"))?,
        (None, None) => to - i64::try_from(default_since.as_nanos()).unwrap_or(i64::MAX),
    };
    if from >= to {
        return Err(format!(
            "the range is empty: from {} is not before to {}",
            rfc3339(from),
            rfc3339(to)
        ));
    }
    Ok(TimeRange { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let now = parse_instant("2026-03-07T00:00:00Z").unwrap();
        let r = resolve(Some("24h"), None, None, now, Duration::from_secs(1)).unwrap();
        assert_eq!(rfc3339(r.from), "2026-03-06T00:00:00Z");
        assert_eq!(r.to, now);
        let r = resolve(
            None,
            Some("2026-03-01"),
            Some("2026-03-02T12:00:00+01:00"),
            now,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(rfc3339(r.to), "2026-03-02T11:00:00Z");
        assert!(resolve(Some("1d"), Some("2026-03-01"), None, now, Duration::ZERO).is_err());
        assert!(resolve(None, Some("2026-03-08"), None, now, Duration::ZERO)
            .unwrap_err()
            .contains("empty"));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7y").is_err());
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 1_209_600);
    }
}

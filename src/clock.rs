//! The one place that reads the wall clock, so tests and the demo can fix "now".

/// Environment variable that fixes "now" (RFC 3339 or a date).
pub const NOW_ENV: &str = "VIGIL_NOW";

/// Current time in nanoseconds since the epoch: `VIGIL_NOW` when set, else the system clock.
pub fn now_nanos() -> Result<i64, String> {
    match std::env::var(NOW_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            crate::timerange::parse_instant(&text).map_err(|e| format!("{NOW_ENV}: {e}"))
        }
        _ => Ok(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)),
    }
}

/// The system clock, whatever `VIGIL_NOW` says: for comparing with file-system times (whether
/// a file is still being written), which a fixed "now" does not move.
pub fn wall_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

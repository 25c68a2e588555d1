//! Fault injection for the crash-safety tests, compiled only with the `fault-injection` feature.
//!
//! `VIGIL_FAULT=<point>` makes the process fail at that point: `after_data_rename`,
//! `before_commit` and `after_findings_commit` abort the process (a crash), `fsync_error` makes fsync fail with EIO, and
//! `enospc` makes writes fail with "no space left on device". With `VIGIL_FAULT_WHILE=<path>`
//! the fault holds only while that file exists: a disk that fills and then has room again.
//! Without the feature every check compiles to nothing.

use std::io;

/// Crash points: the process aborts there when `VIGIL_FAULT` names them.
#[inline]
pub fn crash_point(point: &str) {
    if armed(point) {
        eprintln!("fault injection: crashing at {point}");
        std::process::abort();
    }
}

/// Errors an fsync would return.
#[inline]
pub fn fsync_result() -> io::Result<()> {
    if armed("fsync_error") {
        return Err(io::Error::from_raw_os_error(5));
    }
    Ok(())
}

/// Errors a write would return.
#[inline]
pub fn write_result() -> io::Result<()> {
    if armed("enospc") {
        return Err(io::Error::from_raw_os_error(28));
    }
    Ok(())
}

#[cfg(feature = "fault-injection")]
fn armed(point: &str) -> bool {
    std::env::var("VIGIL_FAULT").is_ok_and(|v| v == point)
        && std::env::var_os("VIGIL_FAULT_WHILE").is_none_or(|p| std::path::Path::new(&p).exists())
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
fn armed(_point: &str) -> bool {
    false
}

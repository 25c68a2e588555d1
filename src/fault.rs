//! Fault injection for the crash-safety tests, compiled only with the `fault-injection` feature.
//!
//! `VIGIL_FAULT=<point>` makes the process fail at that point: `after_data_rename`,
//! `before_commit` and `after_findings_commit` abort the process (a crash), `fsync_error` makes fsync fail with EIO, and
//! `enospc` makes writes fail with "no space left on device". With `VIGIL_FAULT_WHILE=<path>`
//! the fault holds only while that file exists: a disk that fills and then has room again.
//! `hold_before_commit` (with `VIGIL_FAULT_WHILE`) pauses a writer before it creates its
//! commit on object storage; `orphans_at_grace` is a test switch (see [`switch`]).
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

/// Hold points: when `VIGIL_FAULT` names one, the process waits there for as long as the file
/// `VIGIL_FAULT_WHILE` names exists, after creating `<that file>.reached` (how a test makes two
/// writers race: one held just before its commit while the other commits).
#[inline]
pub fn hold_point(point: &str) {
    if armed(point) {
        if let Some(path) = std::env::var_os("VIGIL_FAULT_WHILE") {
            let mut reached = path.clone();
            reached.push(".reached");
            let _ = std::fs::write(&reached, point);
            while std::path::Path::new(&path).exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Test switches: behaviour a test needs and no user should, on when `VIGIL_FAULT` names it
/// (`orphans_at_grace`: compaction on object storage sets aside objects no commit lists at its
/// grace, below the floor that protects a writer still uploading).
#[inline]
pub fn switch(point: &str) -> bool {
    armed(point)
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

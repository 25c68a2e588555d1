//! Crash safety: a killed or failing ingest leaves a store that opens, queries and verifies, and
//! re-running it completes with no loss and no duplicate. Faults are injected through
//! `VIGIL_FAULT` (the `fault-injection` feature) and with SIGKILL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// Files of `per_file` Vault responses each, ids `c-<file>-<n>`, spread over three days.
fn input_files(dir: &Path, files: usize, per_file: usize) -> PathBuf {
    let root = dir.join("input");
    for f in 0..files {
        let text: String = (0..per_file)
            .map(|n| {
                let day = 2 + (n % 3);
                let secs = n % 86_400;
                let time = format!(
                    "2026-03-0{day}T{:02}:{:02}:{:02}Z",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                );
                vault_response(&format!("c-{f}-{n}"), &time) + "\n"
            })
            .collect();
        write(&root.join(format!("audit-{f:02}.log")), text);
    }
    root
}

fn assert_opens_and_verifies(store: &Path) {
    if !store.join("_commits").exists() {
        return;
    }
    let q = run(vigil(store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.code, 0, "the store must stay queryable: {}", q.stderr);
    let v = run(vigil(store).arg("verify"));
    assert_eq!(v.code, 0, "the store must verify: {}{}", v.stdout, v.stderr);
}

fn ingest_with_fault(store: &Path, input: &Path, fault: &str) -> Ran {
    run(vigil(store)
        .env("VIGIL_FAULT", fault)
        .arg("ingest")
        .arg(input))
}

#[test]
fn a_crash_after_a_data_file_or_before_the_commit_loses_nothing() {
    for fault in ["after_data_rename", "before_commit"] {
        let dir = tempfile::tempdir().unwrap();
        let input = input_files(dir.path(), 2, 500);
        let store = dir.path().join("store");
        let r = ingest_with_fault(&store, &input, fault);
        assert_ne!(r.code, 0, "{fault}: the process crashed");
        assert!(
            r.stderr.contains(&format!("crashing at {fault}")),
            "{}",
            r.stderr
        );
        assert_opens_and_verifies(&store);
        let (code, report) = ingest(&store, &[&input], &[]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            count(&store, "SELECT count(*) AS n FROM events"),
            1000,
            "{fault}"
        );
        assert_eq!(
            count(&store, "SELECT count(DISTINCT event_uid) AS n FROM events"),
            1000
        );
        assert_opens_and_verifies(&store);
    }
}

/// A grown file whose second ingest crashes: its checkpoint was to be in the commit that never
/// landed, so the next run reads the appended part again and stores each record once.
#[test]
fn a_crash_before_the_commit_keeps_offsets_and_rows_together() {
    for fault in ["after_data_rename", "before_commit"] {
        let dir = tempfile::tempdir().unwrap();
        let input = input_files(dir.path(), 1, 400);
        let log = input.join("audit-00.log");
        let text = std::fs::read_to_string(&log).unwrap();
        let cut = text.match_indices('\n').nth(299).unwrap().0 + 1;
        std::fs::write(&log, &text[..cut]).unwrap();
        let store = dir.path().join("store");
        let (_, first) = ingest(&store, &[&log], &[]);
        assert_eq!(first["total"]["read"], 300);
        std::fs::write(&log, &text).unwrap();
        let r = ingest_with_fault(&store, &log, fault);
        assert!(
            r.stderr.contains(&format!("crashing at {fault}")),
            "{}",
            r.stderr
        );
        assert_opens_and_verifies(&store);
        assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 300);
        let (code, again) = ingest(&store, &[&log], &[]);
        assert_eq!(code, 0, "{again}");
        assert_eq!(again["total"]["read"], 100, "{fault}: {again}");
        assert_eq!(again["total"]["duplicates"], 0, "{fault}: {again}");
        assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 400);
        assert_opens_and_verifies(&store);
    }
}

#[test]
fn a_failed_fsync_or_a_full_disk_stops_the_ingest_and_commits_nothing() {
    for (fault, message) in [
        ("fsync_error", "Input/output error"),
        ("enospc", "No space left on device"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input = input_files(dir.path(), 1, 200);
        let store = dir.path().join("store");
        let first = write(
            &dir.path().join("first.log"),
            vault_response("before", "2026-03-02T09:00:00Z") + "\n",
        );
        ingest(&store, &[&first], &[]);
        let r = ingest_with_fault(&store, &input, fault);
        assert_eq!(r.code, 2, "{fault}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{fault}: {}", r.stderr);
        assert_eq!(
            count(&store, "SELECT count(*) AS n FROM events"),
            1,
            "{fault}: nothing partial"
        );
        assert_opens_and_verifies(&store);
        let (code, _) = ingest(&store, &[&input], &[]);
        assert_eq!(code, 0);
        assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 201);
    }
}

#[test]
fn a_compaction_that_crashes_or_fails_leaves_the_files_it_would_replace() {
    for fault in [
        "after_data_rename",
        "before_commit",
        "fsync_error",
        "enospc",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input = input_files(dir.path(), 3, 300);
        let store = dir.path().join("store");
        for f in 0..3 {
            let (code, _) = ingest(&store, &[&input.join(format!("audit-{f:02}.log"))], &[]);
            assert_eq!(code, 0);
        }
        let r = run(vigil(&store)
            .env("VIGIL_FAULT", fault)
            .args(["compact", "--grace", "0s"]));
        assert_ne!(r.code, 0, "{fault}: the compaction must fail");
        assert_eq!(
            count(&store, "SELECT count(*) AS n FROM events"),
            900,
            "{fault}"
        );
        assert_opens_and_verifies(&store);
        let r = run(vigil(&store).args(["compact", "--format", "json"]));
        assert_eq!(r.code, 0, "{fault}: {}", r.stderr);
        assert!(
            r.stdout.contains("\"files_after\":3"),
            "{fault}: {}",
            r.stdout
        );
        assert_eq!(
            count(&store, "SELECT count(DISTINCT event_uid) AS n FROM events"),
            900
        );
        assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 900);
        assert_opens_and_verifies(&store);
    }
}

/// A small deterministic generator for kill points (no dependency needed).
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn sigkill_at_many_points_then_reingest_gives_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = input_files(dir.path(), 10, 5_000);
    let mut seed: u64 = std::env::var("VIGIL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("kill points from seed {seed} (rerun with VIGIL_TEST_SEED={seed})");

    // How long a whole run takes here, to spread the kill points over it.
    let probe = dir.path().join("probe");
    let start = Instant::now();
    let (code, _) = ingest(&probe, &[&input], &[]);
    assert_eq!(code, 0);
    let full = start.elapsed();

    let store = dir.path().join("store");
    for i in 0..12 {
        let at = Duration::from_micros(next(&mut seed) % (full.as_micros() as u64 + 1));
        let mut child = vigil(&store)
            .arg("ingest")
            .arg("-q")
            .arg(&input)
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        println!("kill {i} at {at:?}: {status}");
        assert_opens_and_verifies(&store);
    }
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 50_000);
    assert_eq!(
        count(&store, "SELECT count(DISTINCT event_uid) AS n FROM events"),
        50_000
    );
    assert_opens_and_verifies(&store);
}

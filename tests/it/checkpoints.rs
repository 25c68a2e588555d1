//! Commit-log checkpoints: a store opens from its newest checkpoint and sees exactly what a
//! reader of every commit sees; verify holds each checkpoint against the commits before it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

const EVERY_3: &str = "[store]\ncheckpoint_every = 3\n";

/// `vigil --config CONFIG --store STORE ...`.
fn vigil_with(store: &Path, config: &Path) -> std::process::Command {
    let mut c = vigil(store);
    c.arg("--config").arg(config);
    c
}

fn checkpoint_path(store: &Path, seq: u64) -> PathBuf {
    store.join(format!("_checkpoints/{seq:020}.json"))
}

fn commit_path(store: &Path, seq: u64) -> PathBuf {
    store.join(format!("_commits/{seq:020}.json"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Ingests one-event files numbered `runs`, one run each (one commit each), into `store`
/// under `config`; two days, so that compaction has files to merge.
fn ingest_runs(dir: &Path, store: &Path, config: &Path, runs: std::ops::Range<usize>) {
    for i in runs {
        let input = write(
            &dir.join(format!("in/{i}.log")),
            vault_response(
                &format!("v-{i}"),
                &format!("2026-03-0{}T10:00:00Z", 1 + i % 2),
            ) + "\n",
        );
        let r = run(vigil_with(store, config).arg("ingest").arg(&input));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
}

fn events(store: &Path) -> Vec<Value> {
    sql(
        store,
        "SELECT request_id, source, event_time FROM events ORDER BY request_id",
    )
}

/// Seven commits with a checkpoint every three, a compaction among them: the store opens from
/// checkpoint 6 (commit 1 can even be moved away) and answers exactly as a store without
/// checkpoints does; the checkpoint no longer lists files the compaction has deleted.
#[test]
fn a_store_opens_from_its_newest_checkpoint_and_sees_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let every_3 = config(dir.path(), EVERY_3);
    let none = write(
        &dir.path().join("none.toml"),
        "[store]\ncheckpoint_every = 0\n",
    );
    let (store, plain) = (dir.path().join("store"), dir.path().join("plain"));
    for (s, c) in [(&store, &every_3), (&plain, &none)] {
        ingest_runs(dir.path(), s, c, 0..4);
        let r = run(vigil_with(s, c).args(["compact", "--grace", "0s"]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        ingest_runs(dir.path(), s, c, 4..6);
    }
    assert!(checkpoint_path(&store, 3).is_file());
    assert!(checkpoint_path(&store, 6).is_file());
    assert!(!checkpoint_path(&store, 7).exists());
    assert!(!plain.join("_checkpoints").exists());
    // Commit 6 names its checkpoint with the hash of its bytes.
    let named = &read_json(&commit_path(&store, 6))["checkpoint"];
    assert_eq!(named["path"], "_checkpoints/00000000000000000006.json");
    let bytes = std::fs::read(checkpoint_path(&store, 6)).unwrap();
    assert_eq!(named["bytes"], bytes.len() as u64);
    // Commit 5 compacted with no grace: its replaced files are gone, and checkpoint 6 does not
    // wait for them any more.
    let state = read_json(&checkpoint_path(&store, 6));
    assert_eq!(state["seq"], 6);
    assert_eq!(state["pending"], serde_json::json!([]));
    // Inputs of commits 1-4 and 6 (commit 5 is the compaction).
    assert_eq!(state["inputs"].as_array().unwrap().len(), 5);
    assert_eq!(events(&store).len(), 6);
    assert_eq!(events(&store), events(&plain));
    let r = run(vigil_with(&store, &every_3).arg("verify"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("7 commit(s), 2 checkpoint(s)"),
        "{}",
        r.stderr
    );
    // Readers start at checkpoint 6: without commit 1 they still see every row (verify does not).
    std::fs::rename(commit_path(&store, 1), dir.path().join("moved.json")).unwrap();
    assert_eq!(events(&store), events(&plain));
    let r = run(vigil_with(&store, &every_3).arg("verify"));
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("commit 1 is missing"), "{}", r.stdout);
    std::fs::rename(dir.path().join("moved.json"), commit_path(&store, 1)).unwrap();
    // An input read before a checkpoint is still known after it: nothing is read twice.
    let r = run(vigil_with(&store, &every_3)
        .arg("ingest")
        .arg(dir.path().join("in/0.log")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("already ingested (commit 1)"),
        "{}",
        r.stderr
    );
    assert_eq!(events(&store), events(&plain));
}

/// An edited checkpoint: its hash no longer matches the one its commit records, so readers pass
/// over it (and still see every row) and verify names it. A checkpoint rewritten together with
/// the hash in its (newest) commit is trusted by readers, and verify finds what it leaves out.
#[test]
fn verify_catches_an_edited_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let every_3 = config(dir.path(), EVERY_3);
    let store = dir.path().join("store");
    ingest_runs(dir.path(), &store, &every_3, 0..6);
    let mut state = read_json(&checkpoint_path(&store, 3));
    state["files"].as_array_mut().unwrap().remove(0);
    write(
        &checkpoint_path(&store, 3),
        serde_json::to_vec(&state).unwrap(),
    );
    let r = run(vigil_with(&store, &every_3).arg("verify"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("_checkpoints/00000000000000000003.json hash mismatch"),
        "{}",
        r.stdout
    );

    // The newest checkpoint torn: readers go back to checkpoint 3 (edited: passed over too)
    // and then to the commits, with a warning, and miss nothing.
    let good6 = std::fs::read(checkpoint_path(&store, 6)).unwrap();
    write(&checkpoint_path(&store, 6), &good6[..good6.len() / 2]);
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.code, 0, "{}", q.stderr);
    assert_eq!(q.stdout.trim(), "{\"n\":6}");
    assert!(
        q.stderr.contains("checkpoint 6 cannot be used"),
        "{}",
        q.stderr
    );

    // Checkpoint 6 forged consistently with commit 6 (the head, so no chain breaks).
    let mut forged: Value = serde_json::from_slice(&good6).unwrap();
    let dropped = forged["files"][0]["path"].as_str().unwrap().to_owned();
    forged["files"].as_array_mut().unwrap().remove(0);
    let bytes = serde_json::to_vec(&forged).unwrap();
    write(&checkpoint_path(&store, 6), &bytes);
    let mut c6 = read_json(&commit_path(&store, 6));
    c6["checkpoint"]["bytes"] = bytes.len().into();
    c6["checkpoint"]["sha256"] = sha256_hex(&bytes).into();
    write(
        &commit_path(&store, 6),
        serde_json::to_vec_pretty(&c6).unwrap(),
    );
    assert_eq!(
        count(&store, "SELECT count(*) AS n FROM events"),
        5,
        "a reader trusts a checkpoint its commit vouches for"
    );
    let r = run(vigil_with(&store, &every_3).arg("verify"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "checkpoint _checkpoints/00000000000000000006.json does not match the commits up to 6: it leaves out the data file {dropped}"
        )),
        "{}",
        r.stdout
    );
}

/// Only the newest three checkpoints stay; verify needs only the newest, and readers whose newest
/// is gone fall back to the one before.
#[test]
fn superseded_checkpoints_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let every_1 = config(dir.path(), "[store]\ncheckpoint_every = 1\n");
    let store = dir.path().join("store");
    ingest_runs(dir.path(), &store, &every_1, 0..5);
    let mut kept: Vec<String> = std::fs::read_dir(store.join("_checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        (3..=5).map(|s| format!("{s:020}.json")).collect::<Vec<_>>()
    );
    let r = run(vigil_with(&store, &every_1).arg("verify"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("5 commit(s), 3 checkpoint(s)"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(checkpoint_path(&store, 5)).unwrap();
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.stdout.trim(), "{\"n\":5}");
    assert!(
        q.stderr
            .contains("checkpoint 5 cannot be used (the file is missing)"),
        "{}",
        q.stderr
    );
    let r = run(vigil_with(&store, &every_1).arg("verify"));
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("_checkpoints/00000000000000000005.json is missing"),
        "{}",
        r.stdout
    );
}

/// Checkpoints numbered after the newest commit are what deleted commits leave (a crash leaves
/// at most the one of the next commit): they are set aside as evidence, not deleted. And a
/// checkpoint that cannot be written does not stop the ingest.
#[test]
fn checkpoints_after_deleted_commits_are_set_aside_and_a_failed_one_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let every_1 = config(dir.path(), "[store]\ncheckpoint_every = 1\n");
    let store = dir.path().join("store");
    ingest_runs(dir.path(), &store, &every_1, 0..3);
    for seq in [2, 3] {
        std::fs::remove_file(commit_path(&store, seq)).unwrap();
    }
    let input = write(
        &dir.path().join("in/next.log"),
        vault_response("v-next", "2026-03-04T10:00:00Z") + "\n",
    );
    let r = run(vigil_with(&store, &every_1).arg("ingest").arg(&input));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("set aside 1 checkpoint(s) numbered after the newest commit"),
        "{}",
        r.stderr
    );
    assert!(store
        .join("_quarantine/_checkpoints/00000000000000000003.json")
        .is_file());
    assert_eq!(read_json(&checkpoint_path(&store, 2))["seq"], 2);
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 2);

    // `_checkpoints` made unusable: the next commit is made without its checkpoint.
    std::fs::remove_dir_all(store.join("_checkpoints")).unwrap();
    write(&store.join("_checkpoints"), "not a directory");
    let input = write(
        &dir.path().join("in/last.log"),
        vault_response("v-last", "2026-03-05T10:00:00Z") + "\n",
    );
    let r = run(vigil_with(&store, &every_1).arg("ingest").arg(&input));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("could not write the checkpoint of commit 3 (the commit is made without it)"),
        "{}",
        r.stderr
    );
    assert!(read_json(&commit_path(&store, 3))
        .get("checkpoint")
        .is_none());
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 3);
}

/// A crash after a checkpoint is staged and before its commit: readers ignore the checkpoint
/// (no commit names it), the next ingest replaces it, and the store verifies.
#[cfg(feature = "fault-injection")]
#[test]
fn a_checkpoint_staged_by_a_crashed_run_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let every_3 = config(dir.path(), EVERY_3);
    let store = dir.path().join("store");
    ingest_runs(dir.path(), &store, &every_3, 0..2);
    let input = write(
        &dir.path().join("in/third.log"),
        vault_response("v-third", "2026-03-04T10:00:00Z") + "\n",
    );
    let r = run(vigil_with(&store, &every_3)
        .env("VIGIL_FAULT", "before_commit")
        .arg("ingest")
        .arg(&input));
    assert_ne!(r.code, 0);
    assert!(checkpoint_path(&store, 3).is_file());
    assert!(!commit_path(&store, 3).exists());
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.stdout.trim(), "{\"n\":2}");
    assert!(!q.stderr.contains("checkpoint"), "{}", q.stderr);
    let r = run(vigil_with(&store, &every_3).arg("ingest").arg(&input));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read_json(&checkpoint_path(&store, 3))["seq"], 3);
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 3);
    let r = run(vigil_with(&store, &every_3).arg("verify"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

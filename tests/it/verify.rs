//! `vigil verify`: the hash chain and file hashes name every change, removal, addition and
//! reordering; a torn newest commit leaves the store readable at the previous commit.

use std::path::{Path, PathBuf};

use crate::common::*;

/// A store of three commits (one input file each).
fn three_commits(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    for i in 0..3 {
        let input = write(
            &dir.join(format!("in/{i}.log")),
            vault_response(&format!("v-{i}"), &format!("2026-03-0{}T10:00:00Z", i + 2)) + "\n",
        );
        let (code, _) = ingest(&store, &[&input], &[]);
        assert_eq!(code, 0);
    }
    store
}

fn verify(store: &Path, extra: &[&str]) -> Ran {
    run(vigil(store).arg("verify").args(extra))
}

fn invalid_lines(r: &Ran) -> Vec<String> {
    r.stdout
        .lines()
        .filter(|l| l.starts_with("INVALID: "))
        .map(str::to_owned)
        .collect()
}

fn head(r: &Ran) -> String {
    let line = r.stdout.lines().last().unwrap();
    line.strip_prefix("head ").unwrap().to_owned()
}

fn commit_path(store: &Path, seq: u64) -> PathBuf {
    store.join(format!("_commits/{seq:020}.json"))
}

fn data_file(store: &Path, date: &str) -> PathBuf {
    let dir = store.join(format!("events/source=vault/date={date}"));
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn a_clean_store_verifies_and_prints_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    let r = verify(&store, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(invalid_lines(&r).is_empty());
    assert_eq!(head(&r).len(), 64);
    assert!(
        r.stderr
            .contains("valid: 3 commit(s), 3 data file(s), 3 row(s)"),
        "{}",
        r.stderr
    );
    // Ingest reports the head it made, so a cron job can keep it without a separate verify.
    let input = write(
        &dir.path().join("in/4.log"),
        vault_response("v-4", "2026-03-05T10:00:00Z") + "\n",
    );
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 0);
    let r = verify(&store, &[]);
    assert_eq!(report["head"].as_str(), Some(head(&r).as_str()));
}

#[test]
fn a_changed_byte_a_removed_file_and_an_added_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    let flipped = data_file(&store, "2026-03-02");
    let mut bytes = std::fs::read(&flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    let removed = data_file(&store, "2026-03-03");
    std::fs::remove_file(&removed).unwrap();
    let added = store.join("events/source=vault/date=2026-03-04/000001-0009.parquet");
    std::fs::copy(data_file(&store, "2026-03-04"), &added).unwrap();
    let r = verify(&store, &[]);
    assert_eq!(r.code, 1);
    let rel = |p: &Path| p.strip_prefix(&store).unwrap().display().to_string();
    assert_eq!(
        invalid_lines(&r),
        [
            format!(
                "INVALID: {} hash mismatch (the file was changed)",
                rel(&flipped)
            ),
            format!("INVALID: {} is missing", rel(&removed)),
            format!(
                "INVALID: {} is not in any commit (a file was added)",
                rel(&added)
            ),
        ]
    );
}

#[test]
fn a_removed_an_edited_and_reordered_commits_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // Removed from the middle.
    let store = three_commits(&dir.path().join("a"));
    std::fs::remove_file(commit_path(&store, 2)).unwrap();
    let r = verify(&store, &[]);
    assert_eq!(r.code, 1);
    assert!(
        invalid_lines(&r).contains(&format!(
            "INVALID: commit 2 is missing (_commits/{:020}.json)",
            2
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("is not in any commit"),
        "its data file is now unlisted: {}",
        r.stdout
    );

    // Edited: a count changed in commit 2 breaks the link from commit 3.
    let store = three_commits(&dir.path().join("b"));
    let text = std::fs::read_to_string(commit_path(&store, 2)).unwrap();
    std::fs::write(
        commit_path(&store, 2),
        text.replacen("\"read\": 1", "\"read\": 2", 1),
    )
    .unwrap();
    let r = verify(&store, &[]);
    assert_eq!(
        invalid_lines(&r),
        [
            "INVALID: commit 2 counts 2 read or carried in for vault but 1 stored, merged, duplicate, rejected or carried on",
            "INVALID: commit 3 does not chain to commit 2 (a commit was edited, removed or reordered)"
        ]
    );

    // Reordered: commits 2 and 3 swapped.
    let store = three_commits(&dir.path().join("c"));
    let (two, three) = (
        std::fs::read(commit_path(&store, 2)).unwrap(),
        std::fs::read(commit_path(&store, 3)).unwrap(),
    );
    std::fs::write(commit_path(&store, 2), three).unwrap();
    std::fs::write(commit_path(&store, 3), two).unwrap();
    let r = verify(&store, &[]);
    let lines = invalid_lines(&r);
    assert!(
        lines.contains(&format!(
            "INVALID: commit file {:020}.json holds commit 3 (commits reordered or renamed)",
            2
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!(
            "INVALID: commit file {:020}.json holds commit 2 (commits reordered or renamed)",
            3
        )),
        "{lines:?}"
    );
}

#[test]
fn a_truncated_tail_is_caught_by_the_expected_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    let before = head(&verify(&store, &[]));
    let malformed = verify(&store, &["--expect-head", "zz"]);
    assert_eq!(
        malformed.code, 2,
        "a malformed anchor is a usage error: {}",
        malformed.stderr
    );
    assert_eq!(verify(&store, &["--expect-head", &before]).code, 0);
    std::fs::remove_file(commit_path(&store, 3)).unwrap();
    // Without the anchor this looks like an ingest killed before its commit: not detectable.
    let r = verify(&store, &[]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr.contains("left over from an interrupted write"),
        "{}",
        r.stderr
    );
    let r = verify(&store, &["--expect-head", &before]);
    assert!(
        invalid_lines(&r).contains(&format!(
            "INVALID: the expected head {before} is not in the commit log (commits at the tail were removed or rewritten)"
        )),
        "{}",
        r.stdout
    );
}

#[test]
fn a_torn_newest_commit_opens_at_the_previous_one_and_the_next_ingest_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    std::fs::write(commit_path(&store, 3), b"").unwrap();
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.code, 0);
    assert_eq!(q.stdout.trim(), "{\"n\":2}");
    assert!(
        q.stderr.contains("commit 3"),
        "the torn commit is reported: {}",
        q.stderr
    );
    let r = verify(&store, &[]);
    assert_eq!(r.code, 1);
    assert!(
        invalid_lines(&r).contains(&"INVALID: commit 3 is empty (torn write)".to_owned()),
        "{}",
        r.stdout
    );
    // Re-ingesting the inputs replaces the torn commit: nothing lost, nothing twice.
    let (code, report) = ingest(&store, &[&dir.path().join("in")], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["commit"], 3);
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 3);
    assert_eq!(verify(&store, &[]).code, 0);
}

/// An edited commit makes the newest one stop chaining: that is tampering, not a crash, and the
/// newest commit's files are evidence. Writers refuse the store instead of replacing it.
#[test]
fn an_edited_commit_is_not_taken_for_a_torn_one_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    let path = commit_path(&store, 2);
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["counts"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let files_before = walk(&store).len();
    let input = write(
        &dir.path().join("in/new.log"),
        vault_response("v-new", "2026-03-05T10:00:00Z") + "\n",
    );
    for args in [vec!["ingest", input.to_str().unwrap()], vec!["compact"]] {
        let r = run(vigil(&store).args(&args));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("commit 3 does not chain to commit 2"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(walk(&store).len(), files_before, "no file deleted or added");
    let r = verify(&store, &[]);
    assert_eq!(r.code, 1);
    // Readers refuse too: reading up to commit 2 would hide commit 3's events from queries,
    // reports and detection without a word beyond a warning.
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.code, 2, "{}", q.stderr);
    assert!(q.stderr.contains("run vigil verify"), "{}", q.stderr);
}

/// A newest commit edited into well-formed JSON of the wrong shape is not a torn write either:
/// a crash leaves a commit empty, zero-filled or cut short.
#[test]
fn an_edited_newest_commit_that_does_not_parse_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    let path = commit_path(&store, 3);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"seq\": 3", "\"seq\": \"3\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    let files_before = walk(&store).len();
    let input = write(
        &dir.path().join("in/new.log"),
        vault_response("v-new", "2026-03-05T10:00:00Z") + "\n",
    );
    let r = run(vigil(&store).arg("ingest").arg(&input));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(walk(&store).len(), files_before, "no file deleted or added");
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.code, 2, "{}", q.stderr);
}

/// A write torn at page boundaries: a valid start, then zero pages. Readers open the store at
/// the previous commit and the next ingest replaces it (not taken for an edit).
#[test]
fn a_commit_torn_into_zero_pages_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    let path = commit_path(&store, 3);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&path, bytes).unwrap();
    let q = run(vigil(&store).args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(q.code, 0, "{}", q.stderr);
    assert_eq!(q.stdout.trim(), "{\"n\":2}");
    let (code, report) = ingest(&store, &[&dir.path().join("in")], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["commit"], 3);
    assert_eq!(verify(&store, &[]).code, 0);
}

#[test]
fn ingest_refuses_a_store_damaged_before_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_commits(dir.path());
    std::fs::write(commit_path(&store, 2), b"{}").unwrap();
    let input = write(
        &dir.path().join("in/new.log"),
        vault_response("v-new", "2026-03-05T10:00:00Z") + "\n",
    );
    let r = run(vigil(&store).arg("ingest").arg(&input));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("damaged before its end"), "{}", r.stderr);
    assert!(r.stderr.contains("vigil verify"), "{}", r.stderr);
}

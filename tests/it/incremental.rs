//! Ingest of files that grow and rotate: each run reads what was appended since the last
//! commit, a half-written last line waits for its end, and rotation (rename, copytruncate,
//! compression) stores every record once.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Vault responses `<prefix>-<from>` .. `<prefix>-<to - 1>`, one per line, a second apart.
fn lines(prefix: &str, from: usize, to: usize) -> String {
    (from..to)
        .map(|n| {
            let time = format!(
                "2026-03-02T{:02}:{:02}:{:02}Z",
                n / 3600,
                n / 60 % 60,
                n % 60
            );
            vault_response(&format!("{prefix}-{n}"), &time) + "\n"
        })
        .collect()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn rows(store: &Path) -> (i64, i64) {
    (
        count(store, "SELECT count(*) AS n FROM events"),
        count(store, "SELECT count(DISTINCT request_id) AS n FROM events"),
    )
}

#[test]
fn a_grown_file_reads_only_what_was_appended_and_a_half_written_line_waits() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = write(&dir.path().join("audit.log"), lines("a", 0, 100));
    let (_, first) = ingest(&store, &[&log], &[]);
    assert_eq!(tally(&first, "vault"), [100, 100, 0, 0, 0, 100]);

    // 30 whole lines and the first half of the next one.
    let next = lines("a", 130, 131);
    let (head, rest) = next.split_at(next.len() / 2);
    append(&log, &(lines("a", 100, 130) + head));
    let (code, second) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(tally(&second, "vault"), [30, 30, 0, 0, 0, 30], "{second}");
    assert_eq!(second["waiting"][0]["line"], 131, "{second}");
    assert_eq!(second["waiting"][0]["bytes"], head.len(), "{second}");

    // The line completed: read once, whole, at its line.
    append(&log, rest);
    let (code, third) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{third}");
    assert_eq!(tally(&third, "vault"), [1, 1, 0, 0, 0, 1], "{third}");
    assert_eq!(third["waiting"], Value::Array(vec![]));
    let at = sql(
        &store,
        "SELECT raw_location AS at FROM events WHERE request_id = 'a-130'",
    );
    assert!(
        at[0]["at"].as_str().unwrap_or("").ends_with("#131"),
        "{at:?}"
    );
    assert_eq!(rows(&store), (131, 131));

    let (code, fourth) = ingest(&store, &[&log], &[]);
    assert_eq!((code, &fourth["commit"]), (0, &Value::Null), "{fourth}");
    assert!(fourth["skipped"][0]["why"]
        .as_str()
        .unwrap()
        .starts_with("already ingested (commit 3)"));
}

/// A file the writer left with a cut last line long ago is complete: the line is rejected,
/// not held for ever.
#[test]
fn a_cut_last_line_of_a_file_unchanged_for_hold_for_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let text = lines("c", 0, 3);
    let log = write(&dir.path().join("old.log"), &text[..text.len() - 40]);
    make_old(&log);
    let (code, report) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(tally(&report, "vault"), [3, 2, 0, 0, 1, 2], "{report}");
    assert_eq!(report["waiting"], Value::Array(vec![]));
}

#[test]
fn rename_copytruncate_and_compressed_rotation_store_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let logs = dir.path().join("logs");
    let live = logs.join("audit.log");
    write(&live, lines("r", 0, 50));
    let (_, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(report["total"]["read"], 50);

    // Rename: 10 more lines reach the old file before it moves; a new file starts.
    append(&live, &lines("r", 50, 60));
    std::fs::rename(&live, logs.join("audit.log.1")).unwrap();
    write(&live, lines("r", 60, 80));
    let (_, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(report["total"]["read"], 30, "{report}");
    assert_eq!(report["total"]["duplicates"], 0, "{report}");

    // Copytruncate: the renamed file moves on, the live one is copied and emptied (the writer
    // pauses meanwhile), then written again.
    append(&live, &lines("r", 80, 85));
    std::fs::rename(logs.join("audit.log.1"), logs.join("audit.log.2")).unwrap();
    std::fs::copy(&live, logs.join("audit.log.1")).unwrap();
    std::fs::write(&live, lines("r", 85, 92)).unwrap();
    let (_, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(report["total"]["read"], 12, "{report}");
    assert_eq!(report["total"]["duplicates"], 0, "{report}");

    // Rotated and compressed: the compressed file is known by its decompressed start and only
    // what was appended before the rotation is read from it.
    append(&live, &lines("r", 92, 95));
    let bytes = std::fs::read(&live).unwrap();
    write(&logs.join("audit.log.3.gz"), gzip(&bytes));
    std::fs::remove_file(&live).unwrap();
    write(&live, lines("r", 95, 96));
    let (_, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(report["total"]["read"], 4, "{report}");
    assert_eq!(report["total"]["duplicates"], 0, "{report}");
    assert_eq!(rows(&store), (96, 96));

    let (_, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(report["total"]["read"], 0, "{report}");
    assert_eq!(report["skipped"].as_array().unwrap().len(), 4, "{report}");
}

/// A file that starts as a consumed one but differs before its checkpoint is another file: it
/// is read from its start (what it shares is counted as duplicates, nothing is skipped unread).
#[test]
fn a_file_that_starts_like_another_but_differs_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let a = write(&dir.path().join("a.log"), lines("s", 0, 50));
    ingest(&store, &[&a], &[]);
    let b = write(
        &dir.path().join("b.log"),
        lines("s", 0, 40) + &lines("t", 40, 80),
    );
    let (_, report) = ingest(&store, &[&b], &[]);
    assert_eq!(tally(&report, "vault"), [80, 40, 0, 40, 0, 40], "{report}");
    assert_eq!(rows(&store), (90, 90));
}

/// RFC 3339 time `secs` from now by the wall clock: records are held across runs only while
/// they are recent.
fn from_now(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn request_rows(store: &Path, id: &str) -> Vec<(String, String)> {
    sql(
        store,
        &format!("SELECT event_uid, outcome FROM events WHERE request_id = '{id}'"),
    )
    .into_iter()
    .map(|r| {
        (
            r["event_uid"].as_str().unwrap().to_owned(),
            r["outcome"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

fn held_counts(report: &Value) -> (u64, u64) {
    let t = &report["counts"]["vault"];
    (t["resumed"].as_u64().unwrap(), t["held"].as_u64().unwrap())
}

/// A request whose response the writer had not written yet when the run read the file is held
/// in the commit, and the response in the next run completes it: one row, as if both had been
/// read together.
#[test]
fn a_request_and_its_response_in_two_runs_make_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = write(
        &dir.path().join("audit.log"),
        vault_request("p-1", &from_now(-60)) + "\n" + &vault_response("x-1", &from_now(-59)) + "\n",
    );
    let (_, first) = ingest(&store, &[&log], &[]);
    assert_eq!(tally(&first, "vault"), [2, 1, 0, 0, 0, 1], "{first}");
    assert_eq!(held_counts(&first), (0, 1), "{first}");
    assert!(request_rows(&store, "p-1").is_empty());
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    append(&log, &(vault_response("p-1", &from_now(-58)) + "\n"));
    let (_, second) = ingest(&store, &[&log], &[]);
    assert_eq!(tally(&second, "vault"), [1, 1, 1, 0, 0, 1], "{second}");
    assert_eq!(held_counts(&second), (1, 0), "{second}");
    let rows = request_rows(&store, "p-1");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(!rows[0].0.ends_with(":request"), "{rows:?}");
    assert_eq!(rows[0].1, "success");
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    // A commit that drops the held record (its tally still balanced) is named.
    let path = store.join("_commits/00000000000000000002.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["counts"]["vault"]["resumed"] = 0.into();
    c["counts"]["vault"]["read"] = 2.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains(
            "commit 2 counts 0 held record(s) carried in, but the ingest before it held 1"
        ),
        "{}",
        v.stdout
    );
}

/// A damaged held-state file stops the next ingest (its records cannot be trusted) with the way
/// out named; `--discard-held` goes on without them, says how many, and the commit records it,
/// so the store verifies.
#[test]
fn a_damaged_held_state_stops_ingest_until_it_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = write(
        &dir.path().join("audit.log"),
        vault_request("d-1", &from_now(-60)) + "\n" + &vault_response("x-1", &from_now(-59)) + "\n",
    );
    let (_, first) = ingest(&store, &[&log], &[]);
    assert_eq!(held_counts(&first), (0, 1), "{first}");
    let held = store.join("state/held/000001.jsonl");
    let mut text = std::fs::read_to_string(&held).unwrap();
    text = text.replace("d-1", "forged");
    std::fs::write(&held, text).unwrap();
    append(&log, &(vault_response("d-1", &from_now(-58)) + "\n"));
    let r = run(vigil(&store).arg("ingest").arg(&log));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--discard-held"), "{}", r.stderr);
    let r = run(vigil(&store)
        .args(["ingest", "--discard-held", "--format", "json"])
        .arg(&log));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["held_discarded"], 1, "{report}");
    // The response is stored on its own; the forged request is not.
    assert!(request_rows(&store, "forged").is_empty());
    assert_eq!(request_rows(&store, "d-1").len(), 1);
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

/// A held request is stored alone (outcome unknown) once its source has moved on by more than
/// `hold_for` of event time, or once its file is no longer written; a request of history read
/// after the fact is never held.
#[test]
fn a_held_request_is_stored_alone_after_hold_for_or_when_its_file_is_done() {
    let dir = tempfile::tempdir().unwrap();
    // Event time: the log goes on half an hour later without the response.
    let store = dir.path().join("store");
    let log = write(
        &dir.path().join("a.log"),
        vault_request("q-1", &from_now(-60)) + "\n",
    );
    let (_, first) = ingest(&store, &[&log], &[]);
    assert_eq!(held_counts(&first), (0, 1), "{first}");
    append(&log, &(vault_response("y-1", &from_now(30 * 60)) + "\n"));
    let (_, second) = ingest(&store, &[&log], &[]);
    assert_eq!(tally(&second, "vault"), [1, 2, 0, 0, 0, 2], "{second}");
    assert_eq!(held_counts(&second), (1, 0), "{second}");
    assert_eq!(
        request_rows(&store, "q-1"),
        [("vault:default:q-1:request".to_owned(), "unknown".to_owned())]
    );

    // Wall time: the file has not changed for longer than hold_for; nothing new is read, yet
    // the run commits the request stored alone.
    let store = dir.path().join("store2");
    let log = write(
        &dir.path().join("b.log"),
        vault_request("q-2", &from_now(-60)) + "\n",
    );
    ingest(&store, &[&log], &[]);
    make_old(&log);
    let (_, second) = ingest(&store, &[&log], &[]);
    assert_eq!(second["commit"], 2, "{second}");
    assert_eq!(tally(&second, "vault"), [0, 1, 0, 0, 0, 1], "{second}");
    assert_eq!(request_rows(&store, "q-2").len(), 1);
    let (_, third) = ingest(&store, &[&log], &[]);
    assert_eq!(third["commit"], Value::Null, "{third}");
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    let store = dir.path().join("store3");
    let log = write(
        &dir.path().join("c.log"),
        vault_request("q-3", "2026-03-02T10:00:00Z") + "\n",
    );
    let (_, first) = ingest(&store, &[&log], &[]);
    assert_eq!(held_counts(&first), (0, 0), "{first}");
    assert_eq!(request_rows(&store, "q-3").len(), 1);
}

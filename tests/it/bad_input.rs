//! Hostile and odd inputs: what is stored, what is rejected and why. Nothing panics.

use std::path::Path;

use crate::common::*;

fn store_and_input(
    dir: &Path,
    name: &str,
    bytes: impl AsRef<[u8]>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    (dir.join("store"), write(&dir.join("in").join(name), bytes))
}

#[test]
fn malformed_wrong_typed_and_incomplete_records_are_rejected_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        vault_response("id-1", "2026-03-02T10:00:00Z"),
        "{\"time\": \"2026-03-02T10:00:01Z\", \"type\": \"response\", \"request\": {".to_owned(),
        vault_response("id-2", "2026-03-02T10:00:02Z")
            .replace("\"time\":\"2026-03-02T10:00:02Z\"", "\"time\":12345"),
        vault_response("id-3", "2026-03-02T10:00:03Z")
            .replace("\"time\":\"2026-03-02T10:00:03Z\",", ""),
        r#"{"time":"2026-03-02T10:00:04Z","type":"response","auth":{}}"#.to_owned(),
        vault_response("id-5", "2026-03-02T10:00:05Z")
            .replace("\"operation\":\"read\"", "\"operation\":7"),
        "[1, 2]".to_owned(),
        vault_response("id-7", "2026-03-02T10:00:07Z"),
    ];
    let (store, input) = store_and_input(dir.path(), "audit.log", lines.join("\n") + "\n");
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [9, 2, 0, 0, 7, 2], "{report}");
    assert_eq!(
        reject_reasons(&store, &report),
        [
            "invalid_json",
            "invalid_json",
            "invalid_json",
            "missing_field:request",
            "missing_field:time",
            "type_mismatch:request.operation",
            "type_mismatch:time"
        ]
    );
    let uids = sql(&store, "SELECT event_uid FROM events ORDER BY event_uid");
    assert_eq!(
        uids,
        [
            serde_json::json!({"event_uid": "vault:default:id-1"}),
            serde_json::json!({"event_uid": "vault:default:id-7"})
        ]
    );
}

#[test]
fn a_line_over_max_line_bytes_is_rejected_and_the_next_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir.path().join("vigil.toml"),
        "[ingest]\nmax_line_bytes = 4096\n",
    );
    let long = vault_response("id-long", "2026-03-02T10:00:00Z")
        .replace("oidc-alice", &"x".repeat(100_000));
    let text = format!(
        "{long}\n{}\n",
        vault_response("id-next", "2026-03-02T10:00:01Z")
    );
    let (store, input) = store_and_input(dir.path(), "audit.log", text);
    let (code, report) = ingest(&store, &[&input], &["--config", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [2, 1, 0, 0, 1, 1]);
    assert_eq!(reject_reasons(&store, &report), ["line_too_long"]);
    let entry = &report["rejects"][0];
    assert_eq!(entry["line"], 1);
    assert_eq!(entry["byte_offset"], 0);
    assert!(entry["raw_bytes"].as_u64().unwrap() > 100_000);
    assert!(
        entry["raw"].as_str().unwrap().len() < 4096,
        "rejects keep a short sample"
    );
}

#[test]
fn truncated_and_corrupt_gzip_store_nothing_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..200)
        .map(|i| vault_response(&format!("gz-{i}"), "2026-03-02T10:00:00Z") + "\n")
        .collect();
    let gz = gzip(text.as_bytes());
    let truncated = write(&dir.path().join("in/cut.log.gz"), &gz[..gz.len() * 6 / 10]);
    let mut bad = gz.clone();
    let n = bad.len();
    bad[n - 6] ^= 0xff; // inside the CRC32 / ISIZE trailer
    let corrupt = write(&dir.path().join("in/crc.log.gz"), bad);
    let good = write(
        &dir.path().join("in/good.log.gz"),
        gzip(vault_response("ok-1", "2026-03-02T11:00:00Z").as_bytes()),
    );
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&truncated, &corrupt, &good], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [3, 1, 0, 0, 2, 1], "{report}");
    assert_eq!(
        reject_reasons(&store, &report),
        ["gzip_corrupt", "gzip_truncated"]
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) AS n FROM events WHERE event_uid LIKE 'vault:default:gz-%'"
        ),
        0
    );
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 1);
}

#[test]
fn invalid_utf8_is_rejected_while_bom_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(vault_response("u-1", "2026-03-02T10:00:00Z").as_bytes());
    bytes.extend(b"\r\n");
    bytes.extend(
        vault_response("u-2", "2026-03-02T10:00:01Z")
            .replace("oidc-alice", "oidc-\u{e9}l\u{e8}ve")
            .as_bytes(),
    );
    bytes.extend(b"\r\n");
    bytes.extend(
        vault_response("u-3", "2026-03-02T10:00:02Z")
            .replace("oidc-alice", "oidc-\u{1}")
            .replace('\u{1}', "\u{0}")
            .as_bytes()
            .iter()
            .map(|b| if *b == 0 { 0xff } else { *b }),
    );
    bytes.extend(b"\r\n");
    let (store, input) = store_and_input(dir.path(), "audit.log", bytes);
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [3, 2, 0, 0, 1, 2]);
    assert_eq!(reject_reasons(&store, &report), ["invalid_utf8"]);
    let names = sql(&store, "SELECT actor_name FROM events ORDER BY event_uid");
    assert_eq!(names[1]["actor_name"], "oidc-\u{e9}l\u{e8}ve");
}

#[test]
fn nesting_depth_ten_thousand_is_rejected_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        "{{\"time\":\"2026-03-02T10:00:00Z\",\"type\":\"response\",\"request\":{{\"x\":{}{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let text = format!(
        "{}\n{deep}\n{}\n",
        vault_response("d-1", "2026-03-02T10:00:00Z"),
        vault_response("d-2", "2026-03-02T10:00:01Z")
    );
    let (store, input) = store_and_input(dir.path(), "audit.log", text);
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [3, 2, 0, 0, 1, 2]);
    assert_eq!(reject_reasons(&store, &report), ["too_deep"]);
}

#[test]
fn timestamps_normalize_to_utc_or_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("t-offset", "2026-03-02T15:30:00+05:30"),
        ("t-nanos", "2026-03-02T10:00:00.123456789Z"),
        ("t-nozone", "2026-03-02T10:00:00"),
        ("t-1600", "1600-01-01T00:00:00Z"),
        ("t-2300", "2300-01-01T00:00:00Z"),
        ("t-words", "last tuesday"),
    ];
    let text: String = cases
        .iter()
        .map(|(id, t)| vault_response(id, t) + "\n")
        .collect();
    let (store, input) = store_and_input(dir.path(), "audit.log", text);
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [6, 3, 0, 0, 3, 3]);
    assert_eq!(
        reject_reasons(&store, &report),
        ["bad_timestamp", "bad_timestamp", "bad_timestamp"]
    );
    let rows = sql(
        &store,
        "SELECT event_uid, event_time, date, parse_warnings FROM events ORDER BY event_uid",
    );
    let pick = |i: usize, k: &str| rows[i][k].clone();
    assert_eq!(pick(0, "event_uid"), "vault:default:t-nanos");
    assert_eq!(pick(0, "event_time"), "2026-03-02T10:00:00.123456789Z");
    assert_eq!(pick(1, "event_time"), "2026-03-02T10:00:00Z");
    assert_eq!(
        pick(1, "parse_warnings"),
        serde_json::json!(["time_without_zone_read_as_utc"])
    );
    assert_eq!(pick(2, "event_uid"), "vault:default:t-offset");
    assert_eq!(pick(2, "event_time"), "2026-03-02T10:00:00Z");
    assert_eq!(pick(2, "date"), "2026-03-02");
}

#[test]
fn an_empty_file_is_skipped_and_nothing_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let (store, input) = store_and_input(dir.path(), "empty.log", "");
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["total"]["read"], 0);
    assert_eq!(report["skipped"][0]["why"], "empty file");
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_reported_and_each_file_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("logs");
    write(
        &root.join("a/audit.log"),
        vault_response("s-1", "2026-03-02T10:00:00Z") + "\n",
    );
    std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&root], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(tally(&report, "vault"), [1, 1, 0, 0, 0, 1]);
    assert!(
        report["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("symlink loop"),
        "{report}"
    );
}

#[test]
fn a_file_of_unknown_format_is_one_rejected_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, input) = store_and_input(
        dir.path(),
        "other.json",
        "{\"hello\":\"world\"}\n{\"hello\":\"again\"}\n",
    );
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "unknown"), [1, 0, 0, 0, 1, 0]);
    assert_eq!(reject_reasons(&store, &report), ["unknown_format"]);
}

#[test]
fn source_flag_overrides_detection() {
    let dir = tempfile::tempdir().unwrap();
    let (store, input) = store_and_input(
        dir.path(),
        "audit.log",
        vault_response("f-1", "2026-03-02T10:00:00Z") + "\n",
    );
    let (code, report) = ingest(&store, &[&input], &["--source", "cloudtrail"]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "cloudtrail"), [1, 0, 0, 0, 1, 0]);
    assert_eq!(reject_reasons(&store, &report), ["missing_field:eventTime"]);
    // Regression: a file rejected whole is not marked consumed, so the right source can read it.
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(tally(&report, "vault"), [1, 1, 0, 0, 0, 1]);
}

#[test]
fn documentation_in_a_log_directory_is_skipped_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    write(
        &logs.join("audit.log"),
        vault_response("r-1", "2026-03-02T10:00:00Z") + "\n",
    );
    write(&logs.join("README.md"), "# what these logs are\n");
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["skipped"][0]["why"],
        "documentation, not a log (by name)"
    );
}

/// Vault requests are held as text until their response; one that never gets a response is
/// parsed at the end of the run, and rejected there with its own line when it is bad.
#[test]
fn a_lone_request_with_a_bad_time_is_rejected_at_the_end_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let request = vault_response("lone", "not-a-time")
        .replace("\"type\":\"response\"", "\"type\":\"request\"");
    let text = format!(
        "{request}\n{}\n",
        vault_response("ok", "2026-03-02T10:00:00Z")
    );
    let (store, input) = store_and_input(dir.path(), "audit.log", text);
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [2, 1, 0, 0, 1, 1]);
    assert_eq!(report["rejects"][0]["reason"], "bad_timestamp");
    assert_eq!(report["rejects"][0]["line"], 1);
}

//! Golden snapshots of the normalized rows of each source (small fixtures, total ORDER BY).

use std::path::Path;

use crate::common::*;

/// The columns left out of the snapshots: when the row was stored, and the raw record (kept
/// only with `keep_raw`). Every other column of `events` is snapshotted, so a column added to
/// the schema shows up in every golden file instead of being skipped.
const LEFT_OUT: [&str; 2] = ["ingest_time", "raw_event"];

fn rows_of(input: &str) -> Vec<serde_json::Value> {
    rows_and_report(&[input]).0
}

fn rows_and_report(inputs: &[&str]) -> (Vec<serde_json::Value>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let paths: Vec<&Path> = inputs.iter().map(|p| Path::new(*p)).collect();
    let (code, report) = ingest(&store, &paths, &[]);
    assert_eq!(code, 0, "{report}");
    let rows = sql(
        &store,
        &format!(
            "SELECT * EXCLUDE ({}) FROM events ORDER BY event_uid",
            LEFT_OUT.join(", ")
        ),
    );
    // The snapshot's columns and the ones left out are exactly the table's.
    let mut schema: Vec<String> = sql(
        &store,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'",
    )
    .iter()
    .map(|r| r["column_name"].as_str().unwrap().to_owned())
    .collect();
    schema.sort();
    let mut seen: Vec<String> = rows[0].as_object().unwrap().keys().cloned().collect();
    seen.extend(LEFT_OUT.map(str::to_owned));
    seen.sort();
    assert_eq!(
        seen, schema,
        "every column is snapshotted or listed in LEFT_OUT"
    );
    (rows, report)
}

#[test]
fn vault_rows() {
    insta::assert_json_snapshot!(rows_of("tests/fixtures/vault/golden.log"));
}

#[test]
fn cloudtrail_records_rows() {
    insta::assert_json_snapshot!(rows_of("tests/fixtures/cloudtrail/golden.json"));
}

#[test]
fn cloudtrail_eventbridge_and_lines_rows() {
    insta::assert_json_snapshot!(rows_of("tests/fixtures/cloudtrail/eventbridge.jsonl"));
}

#[test]
fn gcp_rows() {
    insta::assert_json_snapshot!(rows_of("tests/fixtures/gcp/golden.jsonl"));
}

#[test]
fn azure_rows_with_a_second_destination_deduplicated() {
    let (rows, report) = rows_and_report(&[
        "tests/fixtures/azure/golden.jsonl",
        "tests/fixtures/azure/records.json",
    ]);
    // records.json repeats two records of golden.jsonl (one with durationMs as a number).
    assert_eq!(tally(&report, "azure"), [9, 7, 0, 2, 0, 7], "{report}");
    insta::assert_json_snapshot!(rows);
}

#[test]
fn k8s_rows_from_log_webhook_aks_and_gke() {
    let (rows, report) = rows_and_report(&[
        "tests/fixtures/k8s/golden.log",
        "tests/fixtures/k8s/eventlist.json",
        "tests/fixtures/k8s/managed.jsonl",
    ]);
    // 9 log lines: 3 earlier stages merged, 1 lone RequestReceived stored alone; the webhook batch
    // re-sends a-1 (duplicate) and adds b-1; AKS and GKE add one each.
    assert_eq!(tally(&report, "k8s"), [13, 9, 3, 1, 0, 9], "{report}");
    insta::assert_json_snapshot!(rows);
}

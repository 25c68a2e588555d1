//! Golden snapshots of the normalized rows of each source (small fixtures, total ORDER BY).

use std::path::Path;

use crate::common::*;

const COLUMNS: &str = "event_uid, source, source_format, event_time, source_event_id, request_id, tenant, region, \
    service, operation, action, is_secret_read, outcome, status_code, http_status, actor_id, actor_name, actor_type, \
    actor_role, actor_origin_id, via_service, credential_id, actor_groups, mfa, src_ip, src_host, user_agent, \
    resource_type, resource_id, resource_name, resource_version, resource_scope, target_index, target_count, \
    raw_location, parse_warnings, attributes";

fn rows_of(input: &str) -> Vec<serde_json::Value> {
    rows_and_report(&[input]).0
}

fn rows_and_report(inputs: &[&str]) -> (Vec<serde_json::Value>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let paths: Vec<&Path> = inputs.iter().map(|p| Path::new(*p)).collect();
    let (code, report) = ingest(&store, &paths, &[]);
    assert_eq!(code, 0, "{report}");
    (
        sql(
            &store,
            &format!("SELECT {COLUMNS} FROM events ORDER BY event_uid"),
        ),
        report,
    )
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

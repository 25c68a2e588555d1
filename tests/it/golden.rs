//! Golden snapshots of the normalized rows of each source (small fixtures, total ORDER BY).

use std::path::Path;

use crate::common::*;

const COLUMNS: &str = "event_uid, source, source_format, event_time, source_event_id, request_id, tenant, region, \
    service, operation, action, is_secret_read, outcome, status_code, http_status, actor_id, actor_name, actor_type, \
    actor_role, actor_origin_id, via_service, credential_id, actor_groups, mfa, src_ip, src_host, user_agent, \
    resource_type, resource_id, resource_name, resource_version, resource_scope, target_index, target_count, \
    raw_location, parse_warnings, attributes";

fn rows_of(input: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[Path::new(input)], &[]);
    assert_eq!(code, 0, "{report}");
    sql(
        &store,
        &format!("SELECT {COLUMNS} FROM events ORDER BY event_uid"),
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

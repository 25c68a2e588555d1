//! Every source passes the same contract (the next sources reuse `check_contract`).

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Ingests `good` plus one bad record appended, and checks what every source must guarantee.
fn check_contract(source: &str, good: &Path, bad_record: &str, expect_rows_at_least: i64) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input").join(good.file_name().unwrap());
    let mut bytes = std::fs::read(good).unwrap();
    bytes.extend_from_slice(bad_record.as_bytes());
    write(&input, bytes);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&input], &[]);

    // A bad record is counted, and flags the run.
    assert_eq!(code, 1, "{report}");
    let [read, stored, merged, dups, rejected, rows] = tally(&report, source);
    assert_eq!(
        read,
        stored + merged + dups + rejected,
        "accounting identity: {report}"
    );
    assert_eq!(rejected, 1, "{report}");
    assert!(rows >= stored);

    // The schema is the one declared in code, with UTC nanosecond times.
    let cols = sql(&store, "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position");
    let declared = vigil::event::table_schema();
    let names: Vec<&str> = cols
        .iter()
        .map(|c| c["column_name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = declared
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, expected);
    let types = sql(
        &store,
        "SELECT arrow_typeof(event_time) AS t, arrow_typeof(ingest_time) AS i FROM events LIMIT 1",
    );
    assert_eq!(types[0]["t"], "Timestamp(ns, \"UTC\")");
    assert_eq!(types[0]["i"], "Timestamp(ns, \"UTC\")");

    // Rows: the right source, unique uids, partition date = UTC date of event_time, fixed ingest time.
    let n = count(&store, "SELECT count(*) AS n FROM events");
    assert_eq!(n as u64, rows);
    assert!(n >= expect_rows_at_least);
    let checks = sql(
        &store,
        &format!(
            "SELECT count(DISTINCT event_uid) AS uids, \
             sum(CASE WHEN source = '{source}' THEN 1 ELSE 0 END) AS right_source, \
             sum(CASE WHEN date = to_char(event_time, '%Y-%m-%d') THEN 1 ELSE 0 END) AS right_date, \
             sum(CASE WHEN ingest_time = TIMESTAMP '{NOW}' THEN 1 ELSE 0 END) AS fixed_ingest, \
             sum(CASE WHEN schema_version = 1 THEN 1 ELSE 0 END) AS versioned \
             FROM events"
        ),
    );
    for key in [
        "uids",
        "right_source",
        "right_date",
        "fixed_ingest",
        "versioned",
    ] {
        assert_eq!(checks[0][key], Value::from(n), "{key}: {checks:?}");
    }
}

#[test]
fn vault_passes_the_source_contract() {
    check_contract(
        "vault",
        &fixture("vault/golden.log"),
        "{\"time\":\"2026-03-02T14:00:00Z\",\"type\":\"respo\n",
        8,
    );
}

#[test]
fn cloudtrail_passes_the_source_contract() {
    let bad = "{\"eventVersion\":\"1.09\",\"eventSource\":\"secretsmanager.amazonaws.com\",\"eventName\":\"GetSecretValue\",\"eventID\":\"x\"}\n";
    check_contract(
        "cloudtrail",
        &fixture("cloudtrail/eventbridge.jsonl"),
        bad,
        2,
    );
}

#[test]
fn cloudtrail_records_file_passes_the_source_contract() {
    // The bad record is a second wrapper document whose only element lacks eventTime.
    let bad = "{\"Records\":[{\"eventSource\":\"kms.amazonaws.com\",\"eventName\":\"Decrypt\",\"eventID\":\"y\",\"recipientAccountId\":\"1\"}]}\n";
    check_contract("cloudtrail", &fixture("cloudtrail/golden.json"), bad, 10);
}

#[test]
fn gcp_passes_the_source_contract() {
    let bad = "{\"insertId\":\"bad\",\"logName\":\"projects/p/logs/cloudaudit.googleapis.com%2Fdata_access\",\"protoPayload\":{\"methodName\":\"x\"}}\n";
    check_contract("gcp", &fixture("gcp/golden.jsonl"), bad, 7);
}

#[test]
fn azure_passes_the_source_contract() {
    let bad =
        "{\"category\":\"AuditEvent\",\"operationName\":\"SecretGet\",\"time\":\"not a time\"}\n";
    check_contract("azure", &fixture("azure/golden.jsonl"), bad, 6);
}

#[test]
fn azure_records_wrapper_passes_the_source_contract() {
    let bad = "{\"records\":[{\"category\":\"AuditEvent\",\"time\":\"2026-03-02T00:00:00Z\"}]}\n";
    check_contract("azure", &fixture("azure/records.json"), bad, 3);
}

#[test]
fn k8s_passes_the_source_contract() {
    let bad = "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"stage\":\"ResponseComplete\",\"verb\":\"get\"}\n";
    check_contract("k8s", &fixture("k8s/golden.log"), bad, 6);
}

#[test]
fn k8s_eventlist_passes_the_source_contract() {
    let bad = "{\"kind\":\"EventList\",\"items\":[{\"auditID\":\"z\",\"stage\":\"ResponseComplete\",\"verb\":\"get\",\"stageTimestamp\":\"bad\"}]}\n";
    check_contract("k8s", &fixture("k8s/eventlist.json"), bad, 2);
}

//! `vigil sql`: read-only, output formats, options before or after the subcommand.

use serde_json::Value;

use crate::common::*;

fn sample_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ingest(&store, &[&fixture("vault/golden.log")], &[]);
    (dir, store)
}

#[test]
fn writes_settings_and_file_tables_are_refused() {
    let (dir, store) = sample_store();
    let target = dir.path().join("copied");
    for query in [
        format!("COPY (SELECT 1) TO '{}'", target.display()),
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/'".to_owned(),
        "INSERT INTO events SELECT * FROM events".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
        "DROP VIEW secret_reads".to_owned(),
    ] {
        let r = run(vigil(&store).args(["sql", &query]));
        assert_eq!(r.code, 2, "{query}");
        assert!(r.stderr.contains("read-only"), "{query}: {}", r.stderr);
    }
    assert!(!target.exists());
    let r = run(vigil(&store).args(["sql", "SELECT * FROM '/etc/passwd'"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("file paths cannot be queried"),
        "{}",
        r.stderr
    );
    assert_eq!(
        count(&store, "SELECT count(*) AS n FROM events"),
        8,
        "the store is unchanged"
    );
}

#[test]
fn formats_json_jsonl_csv() {
    let (_dir, store) = sample_store();
    let q = "SELECT event_uid, event_time, actor_groups, is_secret_read FROM events WHERE event_uid = 'vault:default:11111111-0000-4000-8000-000000000001'";
    let json = run(vigil(&store).args(["sql", "--format", "json", q]));
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"event_uid": "vault:default:11111111-0000-4000-8000-000000000001", "event_time": "2026-03-02T09:00:00.105Z", "actor_groups": ["default", "payments-read"], "is_secret_read": true}])
    );
    let jsonl = run(vigil(&store).args(["sql", "--format", "jsonl", q]));
    assert_eq!(jsonl.stdout.lines().count(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(jsonl.stdout.trim()).unwrap(),
        v[0]
    );
    let csv = run(vigil(&store).args(["sql", "--format", "csv", q]));
    assert_eq!(
        csv.stdout,
        "event_uid,event_time,actor_groups,is_secret_read\nvault:default:11111111-0000-4000-8000-000000000001,2026-03-02T09:00:00.105Z,\"[\"\"default\"\",\"\"payments-read\"\"]\",true\n"
    );
    // Not a terminal: jsonl by default.
    let default = run(vigil(&store).args(["sql", q]));
    assert_eq!(default.stdout, jsonl.stdout);
    let empty = run(vigil(&store).args([
        "sql",
        "--format",
        "json",
        "SELECT * FROM events WHERE false",
    ]));
    assert_eq!(empty.stdout.trim(), "[]");
}

#[test]
fn store_option_and_environment_work_anywhere() {
    let (_dir, store) = sample_store();
    let after = run(std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["sql", "SELECT count(*) AS n FROM events", "--store"])
        .arg(&store));
    assert_eq!(after.stdout.trim(), "{\"n\":8}", "{}", after.stderr);
    let env = run(std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env("VIGIL_STORE", &store)
        .args(["sql", "SELECT count(*) AS n FROM events"]));
    assert_eq!(env.stdout.trim(), "{\"n\":8}", "{}", env.stderr);
    let missing = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil")).args([
            "--store",
            "/nonexistent/store",
            "sql",
            "SELECT 1",
        ]),
    );
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no store at /nonexistent/store"),
        "{}",
        missing.stderr
    );
}

#[test]
fn partition_filters_prune_and_views_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = vault_and_cloudtrail_store(dir.path());
    let per_source = sql(&store, "SELECT source, count(*) AS n FROM events WHERE source = 'vault' AND date >= '2026-03-04' GROUP BY source");
    let direct = count(&store, "SELECT count(*) AS n FROM events WHERE source = 'vault' AND to_char(event_time, '%Y-%m-%d') >= '2026-03-04'");
    assert_eq!(per_source[0]["n"], direct);
    assert_eq!(
        count(&store, "SELECT count(*) AS n FROM secret_reads"),
        count(
            &store,
            "SELECT count(*) AS n FROM events WHERE is_secret_read"
        )
    );
}

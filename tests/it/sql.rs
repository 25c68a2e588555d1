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
        format!("EXPLAIN COPY (SELECT 1) TO '{}'", target.display()),
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

/// EXPLAIN of a query shows the plan: the analyst sees the files left after pruning and, for
/// `event_counts`, the rollup scan beside the recount of the period's edge hours.
#[test]
fn explain_shows_the_plan_of_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::common::sample_store(dir.path());
    let rows = sql(
        &store,
        "EXPLAIN SELECT sum(events) FROM event_counts \
         WHERE last_time >= '2026-03-03T10:30:00Z' AND first_time < '2026-03-05T00:00:00Z'",
    );
    let plan: String = rows
        .iter()
        .map(|r| r["plan"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(plan.contains("rollups/hourly"), "{plan}");
    assert!(plan.contains("events/source="), "{plan}");
    assert!(plan.contains("UnionExec"), "{plan}");
    // As a table the plan keeps one operator per line, indented.
    let r = run(vigil(&store).args([
        "sql",
        "--format",
        "table",
        "EXPLAIN SELECT count(*) FROM events WHERE outcome = 'denied'",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let operator_lines = r
        .stdout
        .lines()
        .filter(|l| l.contains("Exec:") || l.contains("Exec "))
        .count();
    assert!(operator_lines >= 3, "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("┆   ") && l.contains("Exec")),
        "indentation kept: {}",
        r.stdout
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

#[test]
fn runaway_queries_hit_the_limits_and_the_next_query_runs() {
    let (dir, store) = sample_store();
    let cfg = config(
        dir.path(),
        "[query]\ntimeout = \"2s\"\nmemory_limit = \"16MiB\"\n",
    );
    let started = std::time::Instant::now();
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "sql",
        "SELECT count(*) FROM events a, events b, events c, events d, events e, events f, events g, events h, events i",
    ]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("longer than 2 s") && r.stderr.contains("[query] timeout"),
        "{}",
        r.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "stopped within timeout + 5 s"
    );
    // A result larger than the memory limit is refused rather than held.
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "sql",
        "SELECT a.raw_event, b.raw_event FROM events a, events b, events c, events d, events e",
    ]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("memory_limit"), "{}", r.stderr);
    // The shell survives a runaway query and answers the next one.
    let r = run_input(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .args(["sql", "--shell"])
        .env("XDG_STATE_HOME", dir.path()),
        "SELECT count(*) FROM events a, events b, events c, events d, events e, events f, events g, events h, events i;\nSELECT 41 + 1 AS answer;\n");
    assert!(r.stderr.contains("longer than 2 s"), "{}", r.stderr);
    assert!(r.stdout.contains("42"), "{}", r.stdout);
}

#[test]
fn shell_runs_multiline_statements_and_describes_tables() {
    let (dir, store) = sample_store();
    let r = run_input(vigil(&store)
        .args(["sql", "--shell"])
        .env("XDG_STATE_HOME", dir.path()),
        "\\d\n\\d events\nSELECT count(*) AS n\n  FROM events;\nSELECT nope FROM events;\n\\format csv\nSELECT 'after the error' AS still;\n\\q\nSELECT 'not run';\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("ocsf_api_activity") && r.stdout.contains("secret_reads"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("resource_id") && r.stdout.contains("Timestamp(ns"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("│ 8 │"), "{}", r.stdout);
    assert!(
        r.stderr.contains("error:") && r.stderr.contains("nope"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("still\nafter the error\n"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("not run"));
    assert!(r.stderr.contains("row in "), "timing shown: {}", r.stderr);
    let history = std::fs::read_to_string(dir.path().join("vigil/sql_history")).unwrap();
    assert!(history.contains("SELECT count(*) AS n"), "{history}");
}

#[test]
fn ocsf_view_shapes_api_activity() {
    let (_dir, store) = sample_store();
    let rows = sql(
        &store,
        "SELECT class_uid, type_uid, status, actor['user']['uid'] AS actor_uid, api['operation'] AS op, \
         resources[1]['uid'] AS resource_uid, metadata['product']['name'] AS product \
         FROM ocsf_api_activity WHERE activity_id = 2 ORDER BY time LIMIT 1",
    );
    assert_eq!(rows[0]["class_uid"], 6003);
    assert_eq!(rows[0]["type_uid"], 600302);
    assert_eq!(rows[0]["product"], "vigil");
    assert!(
        rows[0]["resource_uid"]
            .as_str()
            .unwrap()
            .starts_with("vault:"),
        "{rows:?}"
    );
    assert!(rows[0]["actor_uid"].is_string());
}

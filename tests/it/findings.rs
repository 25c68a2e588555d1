//! The findings history: recorded once per finding, verdicts appended, verified like data,
//! alert state taken over from an older outbox.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::*;
use crate::detect::{fixture_store as fixture, CONFIG, WINDOW};

fn detect(store: &Path, cfg: &Path, extra: &[&str]) -> Ran {
    let r = run(vigil(store)
        .arg("--config")
        .arg(cfg)
        .arg("detect")
        .args(WINDOW)
        .args(["--format", "json"])
        .args(extra));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

fn findings_of(r: &Ran) -> Vec<Value> {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn commits(store: &Path) -> usize {
    std::fs::read_dir(store.join("_commits")).unwrap().count()
}

#[test]
fn each_finding_is_recorded_once_and_verdicts_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cfg) = fixture(dir.path());
    // A dry run and a backtest write nothing.
    let before = commits(&store);
    let dry = findings_of(&detect(&store, &cfg, &["--dry-run"]));
    assert!(dry.len() >= 10, "{dry:?}");
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "backtest",
        "--from",
        "2026-03-23",
        "--to",
        "2026-03-24",
        "--step",
        "1d",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(commits(&store), before, "nothing recorded");
    assert!(!store.join("findings").exists());

    let first = detect(&store, &cfg, &[]);
    assert_eq!(findings_of(&first), dry, "recording changes no finding");
    assert!(
        first.stderr.contains(&format!(
            "findings history: {} recorded, 0 recorded by an earlier run",
            dry.len()
        )),
        "{}",
        first.stderr
    );
    let again = detect(&store, &cfg, &[]);
    assert!(
        again.stderr.contains(&format!(
            "0 recorded, {} recorded by an earlier run",
            dry.len()
        )),
        "{}",
        again.stderr
    );
    assert_eq!(commits(&store), before + 1, "the re-run adds nothing");
    assert_eq!(
        count(&store, "SELECT count(*) FROM finding_history"),
        dry.len() as i64
    );
    // Every field of the printed finding is a column.
    let canary = dry.iter().find(|f| f["code"] == "VG013").unwrap();
    let key = canary["key"].as_str().unwrap();
    let rows = sql(
        &store,
        &format!(
            "SELECT * FROM findings WHERE key = '{}'",
            key.replace('\'', "''")
        ),
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for field in [
        "code",
        "detector",
        "severity",
        "actor_id",
        "explanation",
        "investigate_sql",
        "resources",
        "score",
    ] {
        assert_eq!(row[field], canary[field], "{field}");
    }
    let observed: Value = serde_json::from_str(row["observed"].as_str().unwrap()).unwrap();
    assert_eq!(observed, canary["observed"]);
    assert_eq!(row["status"], "new");
    assert_eq!(row["status_by"], "vigil");

    // An acknowledgement is a new row; the latest is the status; given again it changes nothing.
    let ack = |k: &str| {
        run(vigil(&store).args([
            "findings",
            "ack",
            k,
            "--by",
            "bob",
            "--reason",
            "called the owner",
        ]))
    };
    let r = ack(key);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("1 finding(s) with key"), "{}", r.stderr);
    let r = ack(key);
    assert!(
        r.stderr
            .contains("is acknowledged or judged benign already"),
        "{}",
        r.stderr
    );
    let r = ack("VG013:nobody");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no finding has the key 'VG013:nobody'"),
        "{}",
        r.stderr
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM finding_history"),
        dry.len() as i64 + 1
    );
    let listed = run(vigil(&store).args([
        "findings",
        "list",
        "--status",
        "acknowledged",
        "--since",
        "30d",
        "--format",
        "json",
    ]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            &listed[0]["key"],
            &listed[0]["status_by"],
            &listed[0]["status_reason"]
        ),
        (&json!(key), &json!("bob"), &json!("called the owner"))
    );
    let r = run(vigil(&store).args(["findings", "list", "--status", "closed"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("'closed' is not a finding status"),
        "{}",
        r.stderr
    );

    // The open-findings report: everything but the acknowledged one, most severe first.
    let open = report_rows(
        &store,
        &["open-findings", "--since", "7d", "--at", "2026-03-11"],
    );
    assert_eq!(open.len(), dry.len() - 1, "{open:?}");
    assert!(open.iter().all(|r| r["key"] != json!(key)));
    let rank = |s: &Value| {
        ["critical", "high", "medium", "low", "info"]
            .iter()
            .position(|x| s == x)
            .unwrap()
    };
    assert!(open
        .windows(2)
        .all(|w| rank(&w[0]["severity"]) <= rank(&w[1]["severity"])));
    assert!(
        open.iter()
            .all(|r| r["new_in_period"] == true && r["open_days"] == 1.0),
        "{open:?}"
    );

    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

#[test]
fn verify_names_an_edited_missing_or_added_findings_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cfg) = fixture(dir.path());
    detect(&store, &cfg, &[]);
    let files: Vec<PathBuf> = walk(&store.join("findings"));
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let rel = file
        .strip_prefix(&store)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let original = std::fs::read(file).unwrap();
    // One byte changed.
    let mut edited = original.clone();
    let at = edited.len() / 2;
    edited[at] ^= 0x20;
    std::fs::write(file, &edited).unwrap();
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(
        v.stdout.contains(&format!("INVALID: {rel} hash mismatch")),
        "{}",
        v.stdout
    );
    std::fs::remove_file(file).unwrap();
    let v = run(vigil(&store).arg("verify"));
    assert!(
        v.stdout.contains(&format!("INVALID: {rel} is missing")),
        "{}",
        v.stdout
    );
    std::fs::write(file, &original).unwrap();
    let extra = file.with_file_name("000001.parquet");
    std::fs::write(&extra, &original).unwrap();
    let v = run(vigil(&store).arg("verify"));
    assert!(
        v.stdout.contains("findings/date=")
            && v.stdout.contains("000001.parquet is not in any commit"),
        "{}",
        v.stdout
    );
}

/// Alert state an older vigil kept only in the outbox carries over: a key it sent within
/// suppress_for is not sent again.
#[test]
fn alert_state_in_an_older_outbox_is_taken_over_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = fixture(dir.path());
    let cfg = config(
        dir.path(),
        &format!("{CONFIG}[alerts]\nmin_severity = \"high\"\nsuppress_for = \"24h\"\n"),
    );
    let dry = findings_of(&detect(&store, &cfg, &["--dry-run"]));
    let canary = dry.iter().find(|f| f["code"] == "VG013").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // What vigil wrote before: an envelope with the keys it alerted, an hour before "now".
    let queued_at = chrono::DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
        - 3_600_000_000_000;
    let envelope = json!({"from": "vigil@localhost", "to": ["secops@localhost"], "keys": [canary], "queued_at": queued_at});
    write(
        &store.join("state/outbox/local/20260309T230000.000000Z-vigil-old.json"),
        envelope.to_string(),
    );
    let r = detect(&store, &cfg, &["--notify"]);
    assert!(
        r.stderr
            .contains("took over 1 alert record(s) from the outbox"),
        "{}",
        r.stderr
    );
    let high = dry
        .iter()
        .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
        .count();
    assert!(
        r.stderr
            .contains(&format!("alerts: {} new, 1 already sent within", high - 1)),
        "{}",
        r.stderr
    );
    let rows = sql(
        &store,
        &format!(
            "SELECT status, status_by FROM finding_history WHERE key = '{}' ORDER BY commit_seq",
            canary.replace('\'', "''")
        ),
    );
    assert_eq!(
        rows,
        [
            json!({"status": "alerted", "status_by": "vigil (migrated from the outbox)"}),
            json!({"status": "suppressed", "status_by": "vigil"}),
        ]
    );
    // Taken over once: the next run migrates nothing.
    let r = detect(&store, &cfg, &["--notify"]);
    assert!(!r.stderr.contains("took over"), "{}", r.stderr);
    assert!(r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
}

/// Many small findings files (a run or a verdict each) are merged into one once 32 pile up:
/// every row and every latest status kept, the merged files deleted after the grace period,
/// verify content at every step.
#[test]
fn small_findings_files_are_merged_keeping_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cfg) = fixture(dir.path());
    let dry = findings_of(&detect(&store, &cfg, &[]));
    let key = dry.iter().find(|f| f["code"] == "VG013").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let files = || walk(&store.join("findings")).len();
    let verdict = |reason: &str, now: &str| {
        let r = run(vigil(&store).env("VIGIL_NOW", now).args([
            "findings", "benign", &key, "--by", "carol", "--reason", reason,
        ]));
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    // One file from detection, 31 verdicts: 32 small files, the next writer merges them.
    for i in 0..31 {
        verdict(&format!("reason {i}"), NOW);
    }
    assert_eq!(files(), 32);
    let latest = |store: &Path| {
        sql(
            store,
            "SELECT key, status, status_reason FROM findings ORDER BY key, window_start",
        )
    };
    let before = latest(&store);
    verdict("reason 31", NOW);
    assert_eq!(
        count(&store, "SELECT count(*) FROM finding_history"),
        dry.len() as i64 + 32
    );
    let after = latest(&store);
    assert_eq!(before.len(), after.len());
    let changed: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(
        changed.len(),
        1,
        "only the last verdict's finding: {changed:?}"
    );
    assert_eq!(changed[0].1["status_reason"], "reason 31");
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    // The merged files stay for readers that listed them until the grace period is over.
    assert_eq!(files(), 32 + 2);
    verdict("reason 32", "2026-03-10T02:00:00Z");
    assert_eq!(files(), 3, "{:?}", walk(&store.join("findings")));
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert_eq!(
        count(&store, "SELECT count(*) FROM finding_history"),
        dry.len() as i64 + 33
    );
}

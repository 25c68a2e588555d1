//! Rollups: written and verified with each data file, and tables `event_counts` and
//! `client_counts` count exactly the events of any period, from the rollups or (stores of older
//! versions) the events.

use std::path::{Path, PathBuf};

use crate::common::*;

/// Generated Vault records over 3 days (2026-03-02 to 04) in `out`.
fn generate_vault(out: &Path, records: u32, seed: u32) {
    let r = run(vigil(out)
        .args(["generate", "--source", "vault", "--days", "3", "--out"])
        .arg(out)
        .args([
            "--events",
            &records.to_string(),
            "--seed",
            &seed.to_string(),
        ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn generated_store(dir: &Path) -> PathBuf {
    let gen = dir.join("gen");
    generate_vault(&gen, 3000, 5);
    let store = dir.join("store");
    let (code, report) = ingest(&store, &[&gen], &[]);
    assert_eq!(code, 0, "{report}");
    store
}

/// Periods as (filter on `events`, the same period on `event_counts`): cutting hours at both
/// ends, whole days, exact hour boundaries, less than an hour, open on either side, the `>` /
/// `<=` and `BETWEEN` forms, and no period at all.
const PERIODS: [(&str, &str); 9] = [
    (
        "event_time >= '2026-03-02T10:17:00Z' AND event_time < '2026-03-04T13:41:30Z'",
        "last_time >= '2026-03-02T10:17:00Z' AND first_time < '2026-03-04T13:41:30Z'",
    ),
    (
        "event_time >= '2026-03-03T00:00:00Z' AND event_time < '2026-03-04T00:00:00Z'",
        "last_time >= '2026-03-03T00:00:00Z' AND first_time < '2026-03-04T00:00:00Z'",
    ),
    (
        "event_time >= '2026-03-03T10:00:00Z' AND event_time < '2026-03-03T12:00:00Z'",
        "last_time >= '2026-03-03T10:00:00Z' AND first_time < '2026-03-03T12:00:00Z'",
    ),
    (
        "event_time >= '2026-03-03T09:10:00Z' AND event_time < '2026-03-03T09:50:00Z'",
        "last_time >= '2026-03-03T09:10:00Z' AND first_time < '2026-03-03T09:50:00Z'",
    ),
    (
        "event_time < '2026-03-03T17:05:00Z'",
        "first_time < '2026-03-03T17:05:00Z'",
    ),
    (
        "event_time >= '2026-03-03T17:05:00Z'",
        "last_time >= '2026-03-03T17:05:00Z'",
    ),
    (
        "event_time > '2026-03-02T10:17:00Z' AND event_time <= '2026-03-03T13:41:30Z'",
        "first_time > '2026-03-02T10:17:00Z' AND last_time <= '2026-03-03T13:41:30Z'",
    ),
    (
        "event_time BETWEEN '2026-03-02T10:17:00Z' AND '2026-03-03T13:41:30Z'",
        "first_time BETWEEN '2026-03-02T10:17:00Z' AND '2026-03-03T13:41:30Z'",
    ),
    ("true", "true"),
];

/// For each period: (groups, events) from rollup table `table` and from `events`, and how many
/// groups of `keys` (SQL expression, alias) and `source` differ in count, first or last time, or
/// (with `named`) largest actor name.
fn compare_table(
    store: &Path,
    table: &str,
    keys: &[(&str, &str)],
    named: bool,
) -> Vec<(i64, i64, i64, i64, i64)> {
    let select: Vec<String> = keys.iter().map(|(e, a)| format!("{e} AS {a}")).collect();
    let select = select.join(", ");
    let group: Vec<String> = (1..=keys.len() + 1).map(|i| i.to_string()).collect();
    let group = group.join(", ");
    let join: Vec<String> = keys
        .iter()
        .map(|(_, a)| format!("(a.{a} IS NOT DISTINCT FROM b.{a})"))
        .collect();
    let join = join.join(" AND ");
    let (name, name_differs) = if named {
        (
            ", max(actor_name) AS an",
            " OR (a.an IS DISTINCT FROM b.an)",
        )
    } else {
        ("", "")
    };
    PERIODS
        .iter()
        .map(|(events, counts)| {
            let q = format!(
                "WITH a AS (SELECT {select}, source, sum(events) AS n, \
                   min(first_time) AS f, max(last_time) AS l{name} \
                   FROM {table} WHERE {counts} GROUP BY {group}), \
                 b AS (SELECT {select}, source, count(*) AS n, \
                   min(event_time) AS f, max(event_time) AS l{name} \
                   FROM events WHERE {events} GROUP BY {group}) \
                 SELECT (SELECT count(*) FROM a) AS a_groups, (SELECT count(*) FROM b) AS b_groups, \
                   (SELECT coalesce(sum(n), 0) FROM a) AS a_events, \
                   (SELECT coalesce(sum(n), 0) FROM b) AS b_events, \
                   (SELECT count(*) FROM a FULL JOIN b ON {join} AND a.source = b.source \
                    WHERE (a.n IS DISTINCT FROM b.n) OR (a.f IS DISTINCT FROM b.f) \
                       OR (a.l IS DISTINCT FROM b.l){name_differs}) AS differ"
            );
            let r = &sql(store, &q)[0];
            let n = |k: &str| r[k].as_i64().unwrap();
            (
                n("a_groups"),
                n("b_groups"),
                n("a_events"),
                n("b_events"),
                n("differ"),
            )
        })
        .collect()
}

/// `event_counts` per (principal, secret, outcome, source).
fn compare(store: &Path) -> Vec<(i64, i64, i64, i64, i64)> {
    let keys = [
        ("actor_id", "actor_id"),
        ("resource_id", "resource_id"),
        ("outcome", "outcome"),
    ];
    compare_table(store, "event_counts", &keys, true)
}

/// Every kind of rollup counts exactly the events of every period.
fn assert_exact(store: &Path) {
    let clients = [
        ("actor_id", "actor_id"),
        ("src_ip", "src_ip"),
        ("user_agent", "user_agent"),
    ];
    let principals = [
        ("actor_id", "actor_id"),
        ("tenant", "tenant"),
        ("actor_type", "actor_type"),
        ("actor_role", "actor_role"),
        ("array_to_string(actor_groups, '|')", "groups"),
    ];
    assert_exact_in(store, compare(store));
    assert_exact_in(
        store,
        compare_table(store, "client_counts", &clients, false),
    );
    assert_exact_in(
        store,
        compare_table(store, "principal_counts", &principals, true),
    );
}

fn assert_exact_in(store: &Path, results: Vec<(i64, i64, i64, i64, i64)>) {
    for ((period, _), (a_groups, b_groups, a_events, b_events, differ)) in
        PERIODS.iter().zip(&results)
    {
        assert!(b_events > &0, "{period}: no events in the period");
        assert_eq!(a_groups, b_groups, "{period}");
        assert_eq!(a_events, b_events, "{period}");
        assert_eq!(*differ, 0, "{period}");
    }
    // The whole history, every event once.
    let total = count(store, "SELECT count(*) FROM events");
    assert_eq!(results[8].2, total);
}

fn rollup_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![store.join("rollups")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn event_counts_are_exact_for_any_period_and_rollups_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = generated_store(dir.path());
    let rollups = rollup_files(&store);
    let data = count(&store, "SELECT count(DISTINCT date) FROM events");
    assert!(
        rollups.len() as i64 >= 3 * data,
        "three rollups per data file: {rollups:?}"
    );
    // Fewer rows than events (few at this size: 1,500 events over 3 days; at 5 M events over a
    // month, 228 k rows).
    let rows = count(&store, "SELECT count(*) FROM event_counts");
    let events = count(&store, "SELECT count(*) FROM events");
    assert!(rows < events, "{rows} rollup rows for {events} events");
    assert_exact(&store);

    // Rollups are part of the commit: a changed byte in one of each kind is named by verify.
    let r = run(vigil(&store).arg("verify"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let changed: Vec<&PathBuf> = ["clients", "hourly", "principals"]
        .iter()
        .map(|kind| {
            let dir = store.join("rollups").join(kind);
            rollups.iter().find(|p| p.starts_with(&dir)).unwrap()
        })
        .collect();
    for path in &changed {
        let mut bytes = std::fs::read(path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }
    let r = run(vigil(&store).arg("verify"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    for path in changed {
        let rel = path.strip_prefix(&store).unwrap().display().to_string();
        assert!(
            r.stdout.contains(&format!("{rel} hash mismatch")),
            "{}",
            r.stdout
        );
    }
}

/// A store written before rollups existed (commits without them) gives the same counts, from
/// the events.
#[test]
fn event_counts_without_rollups_count_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = generated_store(dir.path());
    let commits: Vec<PathBuf> = std::fs::read_dir(store.join("_commits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(commits.len(), 1);
    let mut commit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&commits[0]).unwrap()).unwrap();
    for f in commit["files"].as_array_mut().unwrap() {
        assert!(f["rollup"].is_object());
        assert!(f["clients"].is_object());
        assert!(f["principals"].is_object());
        f.as_object_mut().unwrap().remove("rollup");
        f.as_object_mut().unwrap().remove("clients");
        f.as_object_mut().unwrap().remove("principals");
    }
    std::fs::write(&commits[0], serde_json::to_vec(&commit).unwrap()).unwrap();
    std::fs::remove_dir_all(store.join("rollups")).unwrap();
    assert_exact(&store);
    // `vigil compact` rewrites each day's file, alone, with a rollup.
    let days = commit["files"].as_array().unwrap().len();
    upgrade_by_compaction(&store, days);
    assert_eq!(rollup_files(&store).len(), 3 * days);
}

/// Files with and without rollups in the same partitions and hours (the newest commit's rollups
/// dropped, as if an older vigil had written it): still exact.
#[test]
fn event_counts_mix_rollups_and_events_of_the_same_hours() {
    let dir = tempfile::tempdir().unwrap();
    let store = generated_store(dir.path());
    let gen = dir.path().join("gen2");
    generate_vault(&gen, 1000, 6);
    let before = count(&store, "SELECT count(*) FROM events");
    let (code, report) = ingest(&store, &[&gen], &[]);
    assert_eq!(code, 0, "{report}");
    assert!(count(&store, "SELECT count(*) FROM events") > before);
    let newest = store.join("_commits/00000000000000000002.json");
    let mut commit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&newest).unwrap()).unwrap();
    for f in commit["files"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("rollup");
        f.as_object_mut().unwrap().remove("clients");
    }
    std::fs::write(&newest, serde_json::to_vec(&commit).unwrap()).unwrap();
    assert_exact(&store);
}

/// The usual upgrade: files with an hourly rollup but none per client. `client_counts` counts
/// their events, verify notes them, and compaction adds the client rollups. A commit that lists
/// a rollup in another place than its data file's is named.
#[test]
fn files_without_client_rollups_are_counted_then_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = generated_store(dir.path());
    let first = store.join("_commits/00000000000000000001.json");
    let original = std::fs::read(&first).unwrap();
    let mut commit: serde_json::Value = serde_json::from_slice(&original).unwrap();

    let mut moved = commit.clone();
    moved["files"][0]["clients"]["path"] = moved["files"][0]["rollup"]["path"].clone();
    std::fs::write(&first, serde_json::to_vec(&moved).unwrap()).unwrap();
    let f = &moved["files"][0];
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains(&format!(
            "commit 1 lists {} as a rollup of {} (it belongs at rollups/clients/",
            f["rollup"]["path"].as_str().unwrap(),
            f["path"].as_str().unwrap()
        )),
        "{}",
        v.stdout
    );

    let days = commit["files"].as_array().unwrap().len();
    for f in commit["files"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("clients");
    }
    std::fs::write(&first, serde_json::to_vec(&commit).unwrap()).unwrap();
    std::fs::remove_dir_all(store.join("rollups/clients")).unwrap();
    assert_exact(&store);
    upgrade_by_compaction(&store, days);
    // A listed rollup deleted behind vigil's back: the query stops with a sentence that names
    // the file once and points at verify.
    let gone = rollup_files(&store)
        .into_iter()
        .find(|p| p.starts_with(store.join("rollups/clients")))
        .unwrap();
    std::fs::remove_file(&gone).unwrap();
    let r = run(vigil(&store).args(["sql", "SELECT sum(events) AS n FROM client_counts"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        !r.stderr.contains("Parquet error: Parquet error"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&gone.display().to_string())
            && r.stderr.contains("is missing: run vigil verify"),
        "{}",
        r.stderr
    );
}

/// A store whose `days` data files lack some rollup (one commit): verify notes them, `vigil
/// compact` rewrites each alone with every rollup, counts stay exact and the note goes.
fn upgrade_by_compaction(store: &Path, days: usize) {
    let v = run(vigil(store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stderr.contains(&format!(
            "note: {days} data file(s) were written by an older vigil without every rollup"
        )),
        "{}",
        v.stderr
    );
    let r = run(vigil(store).args(["compact", "--grace", "0s"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let compacted: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join("_commits/00000000000000000002.json")).unwrap(),
    )
    .unwrap();
    let files = compacted["files"].as_array().unwrap();
    assert_eq!(files.len(), days);
    for kind in ["rollup", "clients", "principals"] {
        assert!(
            files.iter().all(|f| f[kind]["rows"].as_u64() > Some(0)),
            "{kind}"
        );
    }
    assert_exact(store);
    let v = run(vigil(store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(!v.stderr.contains("without every rollup"), "{}", v.stderr);
}

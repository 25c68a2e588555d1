//! The store across runs: idempotent re-ingest, dedupe of overlapping deliveries, --strict, and
//! Parquet files another engine reads as they are.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

#[test]
fn ingesting_the_same_directory_twice_stores_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (vault, cloudtrail) = (
        repo().join("sample-data/vault"),
        repo().join("sample-data/cloudtrail"),
    );
    let samples = [vault.as_path(), cloudtrail.as_path()];
    let (code, first) = ingest(&store, &samples, &[]);
    assert_eq!(code, 1, "the samples hold one malformed record per file");
    let rows = count(&store, "SELECT count(*) AS n FROM events");
    assert_eq!(rows as u64, first["total"]["rows"].as_u64().unwrap());
    assert_eq!(first["total"]["rejected"], 3);
    // The rejects file accounts for every rejected record of the first run.
    assert_eq!(reject_reasons(&store, &first).len(), 3);
    for (source, t) in first["counts"].as_object().unwrap() {
        let [read, stored, merged, dups, rejected, _] = tally(&first, source);
        assert_eq!(read, stored + merged + dups + rejected, "{source}: {t}");
    }

    let (code, second) = ingest(&store, &samples, &[]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["commit"], Value::Null);
    assert_eq!(second["total"]["read"], 0);
    assert_eq!(second["skipped"].as_array().unwrap().len(), 3);
    assert!(second["skipped"][0]["why"]
        .as_str()
        .unwrap()
        .starts_with("already ingested (commit 1)"));
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), rows);
}

/// Stores written before input checkpoints remember whole-file fingerprints (BLAKE3, and
/// SHA-256 before that); the files they name are still skipped.
#[test]
fn a_file_fingerprinted_whole_by_an_older_version_is_still_skipped() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        &dir.path().join("in/a.log"),
        vault_response("fp-1", "2026-03-02T10:00:00Z") + "\n",
    );
    let bytes = std::fs::read(&input).unwrap();
    for fingerprint in [
        format!("blake3:{}", blake3::hash(&bytes).to_hex()),
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
    ] {
        let store = dir.path().join(&fingerprint[..6]);
        let (code, _) = ingest(&store, &[&input], &[]);
        assert_eq!(code, 0);
        let path = store.join("_commits/00000000000000000001.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(c["inputs"][0]["kind"], "file");
        c["inputs"][0] = serde_json::json!({
            "path": "in/a.log", "fingerprint": fingerprint, "bytes": bytes.len(), "records": 1
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        let (code, second) = ingest(&store, &[&input], &[]);
        assert_eq!(code, 0, "{second}");
        assert_eq!(second["commit"], Value::Null, "{second}");
        assert!(second["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .starts_with("already ingested (commit 1)"));
        let v = run(vigil(&store).arg("verify"));
        assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    }
}

/// Data files are sorted by `event_time` whatever the input order (a batch already in order
/// skips the sort).
#[test]
fn data_files_are_sorted_by_event_time_whatever_the_input_order() {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimestampNanosecondType;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let shuffled = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4];
    let lines: Vec<String> = shuffled
        .iter()
        .map(|i| vault_response(&format!("s-{i}"), &format!("2026-03-02T10:00:0{i}Z")))
        .collect();
    let input = write(&dir.path().join("in/a.log"), lines.join("\n") + "\n");
    let (code, _) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 0);
    let files: Vec<_> = walk(&store.join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(files.len(), 1);
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&files[0]).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut times = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let t = b.column_by_name("event_time").unwrap();
        times.extend(
            t.as_primitive::<TimestampNanosecondType>()
                .values()
                .iter()
                .copied(),
        );
    }
    assert_eq!(times.len(), 10);
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

#[test]
fn overlapping_deliveries_are_stored_once_and_counted_as_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let lines: Vec<String> = (0..5)
        .map(|i| vault_response(&format!("o-{i}"), &format!("2026-03-02T10:00:0{i}Z")))
        .collect();
    let a = write(
        &dir.path().join("in/device-a.log"),
        lines[..3].join("\n") + "\n",
    );
    // A second audit device wrote the same calls plus two more (and its own copy of one twice).
    // (Its blank first line makes it another file: one that starts with a's bytes would be
    // taken for a's file grown, and read from where a ended.)
    let b = write(
        &dir.path().join("in/device-b.log"),
        "\n".to_owned() + &lines.join("\n") + "\n" + &lines[4] + "\n",
    );
    let (_, first) = ingest(&store, &[&a], &[]);
    assert_eq!(tally(&first, "vault"), [3, 3, 0, 0, 0, 3]);
    let (code, second) = ingest(&store, &[&b], &[]);
    assert_eq!(code, 0);
    assert_eq!(tally(&second, "vault"), [6, 2, 0, 4, 0, 2]);
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 5);
}

#[test]
fn strict_commits_nothing_when_a_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = write(
        &dir.path().join("in/a.log"),
        vault_response("s-1", "2026-03-02T10:00:00Z") + "\n{broken\n",
    );
    let (code, report) = ingest(&store, &[&input], &["--strict"]);
    assert_eq!(code, 1);
    assert_eq!(report["strict_aborted"], true);
    assert_eq!(report["commit"], Value::Null);
    assert!(
        !store.join("_commits").exists()
            || std::fs::read_dir(store.join("_commits")).unwrap().count() == 0
    );
    let parquet_files = walk_count(&store.join("events"));
    assert_eq!(parquet_files, 0, "no data file left behind");
    // Without --strict the good record goes in.
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 1);
    assert_eq!(tally(&report, "vault"), [2, 1, 0, 0, 1, 1]);
}

#[test]
fn uncommitted_files_are_invisible_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = write(
        &dir.path().join("in/a.log"),
        vault_response("c-1", "2026-03-02T10:00:00Z") + "\n",
    );
    ingest(&store, &[&input], &[]);
    // A file an interrupted run left behind, with a valid name and content.
    let part = store.join("events/source=vault/date=2026-03-02");
    let committed = std::fs::read_dir(&part)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let orphan = part.join("000002-0000.parquet");
    std::fs::copy(&committed, &orphan).unwrap();
    write(&part.join("000002-0001.parquet.tmp"), b"half written");
    assert_eq!(
        count(&store, "SELECT count(*) AS n FROM events"),
        1,
        "readers use the commit log only"
    );
    let other = write(
        &dir.path().join("in/b.log"),
        vault_response("c-2", "2026-03-02T11:00:00Z") + "\n",
    );
    let r = run(vigil(&store).args(["ingest"]).arg(&other));
    assert!(
        r.stderr
            .contains("set aside 1 file(s) that no commit lists in _quarantine/"),
        "{}",
        r.stderr
    );
    // The complete file is set aside, not deleted (a deleted commit leaves the same thing);
    // the half-written temp file is gone.
    let kept = store
        .join("_quarantine")
        .join(orphan.strip_prefix(&store).unwrap());
    assert!(kept.exists(), "{}", kept.display());
    assert!(!part.join("000002-0001.parquet.tmp").exists());
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 2);
}

#[test]
fn duckdb_reads_the_committed_files_and_sees_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = vault_and_cloudtrail_store(dir.path());
    let query = "SELECT event_uid, source, date, actor_id, resource_id, outcome FROM events ORDER BY event_uid";
    let ours = sql(&store, query);

    // The file list comes from the commit log, as any reader must do.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(store.join("_commits")).unwrap() {
        let commit: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        for f in commit["files"].as_array().unwrap() {
            files.push(
                store
                    .join(f["path"].as_str().unwrap())
                    .display()
                    .to_string(),
            );
        }
    }
    let script = "import duckdb, json, sys\n\
         files = json.loads(sys.argv[1])\n\
         rows = duckdb.execute(\"SELECT event_uid, source, CAST(date AS VARCHAR) AS date, actor_id, resource_id, outcome FROM read_parquet(?, hive_partitioning=true) ORDER BY event_uid\", [files]).fetchall()\n\
         json.dump([dict(zip(['event_uid','source','date','actor_id','resource_id','outcome'], r)) for r in rows], sys.stdout)\n";
    let out = Command::new(python_with("duckdb"))
        .arg("-c")
        .arg(script)
        .arg(serde_json::to_string(&files).unwrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    assert_eq!(theirs, ours);
}

fn walk_count(dir: &std::path::Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk_count(&p)
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn a_bare_relative_store_name_is_created_in_the_working_directory() {
    // Regression: the parent of `store` is the empty path, which must mean `.`.
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        &dir.path().join("a.log"),
        vault_response("rel-1", "2026-03-02T10:00:00Z") + "\n",
    );
    let mut c = vigil(std::path::Path::new("relstore"));
    let r = run(c.current_dir(dir.path()).arg("ingest").arg(&input));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.path().join("relstore/_commits").is_dir());
}

#[test]
fn stdin_is_ingested_like_a_file_gzip_included() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let text = vault_response("in-1", "2026-03-02T10:00:00Z")
        + "\n"
        + &vault_response("in-2", "2026-03-02T10:00:01Z")
        + "\n";
    // Plain first; then the same events gzipped: all duplicates the second time.
    for (bytes, expect) in [
        (text.as_bytes().to_vec(), [2, 2, 0, 0, 0, 2]),
        (gzip(text.as_bytes()), [2, 0, 0, 2, 0, 0]),
    ] {
        let mut child = vigil(&store)
            .args(["ingest", "--format", "json", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(tally(&report, "vault"), expect, "{report}");
    }
    let loc = sql(&store, "SELECT raw_location FROM events ORDER BY event_uid");
    assert_eq!(
        loc,
        [
            serde_json::json!({"raw_location": "stdin#1"}),
            serde_json::json!({"raw_location": "stdin#2"})
        ]
    );
    assert!(
        !store.join("tmp").exists() || std::fs::read_dir(store.join("tmp")).unwrap().count() == 0,
        "the stdin spool is removed"
    );
}

#[test]
fn one_directory_of_all_five_formats_some_gzipped_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = dir.path().join("mixed");
    let samples = repo().join("sample-data");
    for source in ["vault", "cloudtrail", "gcp", "azure", "k8s"] {
        for entry in std::fs::read_dir(samples.join(source)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            // Gzip some, with names that do not say so: the format is found from the content.
            if source == "vault" || source == "gcp" {
                write(&mixed.join(format!("{source}-{name}")), gzip(&bytes));
            } else {
                write(&mixed.join(format!("{source}-{name}")), bytes);
            }
        }
    }
    write(
        &mixed.join("inventory.json"),
        "{\"hosts\": [\"a\", \"b\"]}\n",
    );
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&mixed], &[]);
    assert_eq!(code, 1);
    // Per source: read, stored, merged, duplicates, rejected, rows (see sample-data/README.md).
    assert_eq!(tally(&report, "vault"), [161, 81, 79, 0, 1, 81]);
    assert_eq!(tally(&report, "cloudtrail"), [43, 41, 0, 0, 2, 44]);
    assert_eq!(tally(&report, "gcp"), [37, 36, 0, 0, 1, 36]);
    assert_eq!(tally(&report, "azure"), [34, 31, 0, 2, 1, 31]);
    assert_eq!(tally(&report, "k8s"), [46, 24, 20, 1, 1, 24]);
    assert_eq!(tally(&report, "unknown"), [1, 0, 0, 0, 1, 0]);
    let unknown: Vec<_> = report["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "unknown_format")
        .collect();
    assert_eq!(unknown.len(), 1);
    assert!(unknown[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("inventory.json"));
    let per_source = sql(
        &store,
        "SELECT source, count(*) AS n FROM events GROUP BY source ORDER BY source",
    );
    assert_eq!(
        per_source,
        serde_json::json!([
            {"source": "azure", "n": 31}, {"source": "cloudtrail", "n": 44}, {"source": "gcp", "n": 36},
            {"source": "k8s", "n": 24}, {"source": "vault", "n": 81}
        ]).as_array().unwrap().clone()
    );
}

/// Overlapping deliveries of every source: the second delivery repeats the first half of the
/// events (for CloudTrail as EventBridge envelopes, as a second delivery path would) and adds
/// the rest; each event is stored once and every repeat is counted as a duplicate.
#[test]
fn overlapping_deliveries_of_every_source_are_stored_once() {
    for (source, per_call) in [
        ("vault", 2),
        ("cloudtrail", 1),
        ("gcp", 1),
        ("azure", 1),
        ("k8s", 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let gen = dir.path().join("gen");
        let r = run(vigil(&gen)
            .args([
                "generate", "--source", source, "--events", "2000", "--seed", "4", "--days", "3",
                "--out",
            ])
            .arg(&gen));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let text = std::fs::read_to_string(gen.join(format!("{source}-audit.log"))).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let first: Vec<String> = lines[..1000]
            .iter()
            .map(|l| {
                if source == "cloudtrail" {
                    format!(r#"{{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","detail":{l}}}"#)
                } else {
                    (*l).to_owned()
                }
            })
            .collect();
        let a = write(&dir.path().join("a.log"), first.join("\n") + "\n");
        // Another delivery, not a grown: a blank first line sets it apart from a.
        let b = write(
            &dir.path().join("b.log"),
            "\n".to_owned() + &lines.join("\n") + "\n",
        );
        let store = dir.path().join("store");
        let (_, first_run) = ingest(&store, &[&a], &[]);
        let calls = 1000 / per_call;
        assert_eq!(tally(&first_run, source)[1], calls, "{source}: {first_run}");
        let (code, second) = ingest(&store, &[&b], &[]);
        assert_eq!(code, 0, "{source}: {second}");
        let [read, stored, merged, dups, rejected, _] = tally(&second, source);
        assert_eq!((read, rejected), (2000, 0), "{source}");
        // Earlier stages (Vault requests, Kubernetes RequestReceived) are merged into their row.
        assert_eq!(
            (stored, dups, merged),
            (calls, calls, 2000 - 2 * calls),
            "{source}: {second}"
        );
        assert_eq!(
            count(&store, "SELECT count(*) AS n FROM events") as u64,
            2 * calls,
            "{source}"
        );
        assert_eq!(
            count(&store, "SELECT count(DISTINCT event_uid) AS n FROM events") as u64,
            2 * calls
        );
    }
}

/// Regression: a file rejected whole (unknown format) once poisoned the consumed-inputs list with
/// an empty fingerprint, and every later file was skipped as "already ingested".
#[test]
fn a_file_rejected_whole_does_not_make_later_files_look_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let odd = write(&dir.path().join("odd.json"), "{\"hello\":\"world\"}\n");
    let (code, _) = ingest(&store, &[&odd], &[]);
    assert_eq!(code, 1);
    let new = write(
        &dir.path().join("new.log"),
        vault_response("n-1", "2026-03-02T10:00:00Z") + "\n",
    );
    let (code, report) = ingest(&store, &[&new], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(tally(&report, "vault"), [1, 1, 0, 0, 0, 1]);
    // The unknown file is read (and rejected) again, not skipped.
    let (code, report) = ingest(&store, &[&odd], &[]);
    assert_eq!((code, report["total"]["rejected"].as_u64()), (1, Some(1)));
}

#[test]
fn a_generated_directory_ingests_cleanly_its_labels_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    let r = run(vigil(&gen)
        .args(["generate", "--source", "gcp", "--events", "500", "--out"])
        .arg(&gen));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&gen], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["skipped"][0]["why"],
        "configuration, not a log (by name)"
    );
    assert_eq!(
        report["skipped"][1]["why"],
        "vigil generate labels (ground truth, not events)"
    );
}

/// Two Vault audit devices write the same request with the times each formatted it at, a
/// fraction of a millisecond apart: copies on both sides of a ten-minute slot's edge (and of
/// midnight) are still one record, whichever device's file comes first.
#[test]
fn vault_copies_from_two_devices_straddling_a_slot_edge_are_stored_once() {
    let pair = |t_req: &str, t_resp: &str| {
        format!(
            "{}\n{}\n",
            vault_request("r-1", t_req),
            vault_response("r-1", t_resp)
        )
    };
    for (first, second) in [
        // The first device's copy just before the edge, the second's just after.
        (
            ("2026-03-03T10:09:59.999900Z", "2026-03-03T10:09:59.999950Z"),
            ("2026-03-03T10:09:59.999910Z", "2026-03-03T10:10:00.000020Z"),
        ),
        // The other way round, across midnight.
        (
            ("2026-03-03T23:59:59.999990Z", "2026-03-04T00:00:00.000010Z"),
            ("2026-03-03T23:59:59.999980Z", "2026-03-03T23:59:59.999995Z"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir.path().join("device-a.log"), pair(first.0, first.1));
        let b = write(&dir.path().join("device-b.log"), pair(second.0, second.1));
        let store = dir.path().join("store");
        let (code, out) = ingest(&store, &[&a], &[]);
        assert_eq!(code, 0, "{out}");
        // In another run: the copy is found in the committed files of the slot next to its own.
        let (code, out) = ingest(&store, &[&b], &[]);
        assert_eq!(code, 0, "{out}");
        let [read, stored, _, dups, rejected, _] = tally(&out, "vault");
        assert_eq!((read, stored, dups, rejected), (2, 0, 1, 0), "{out}");
        assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 1);
    }
}

/// The dedupe index keeps a bounded number of uids: slots it dropped are read back, this run's
/// own files included, when a record for them comes again; a later run reads them back from the
/// committed files.
#[test]
fn duplicates_are_found_after_their_slot_left_memory() {
    use vigil::ingest::{ingest as ingest_lib, IngestOptions, InputSpec, ParseOptions};
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    let r = run(vigil(&gen)
        .args([
            "generate",
            "--source",
            "cloudtrail",
            "--events",
            "3000",
            "--seed",
            "5",
            "--days",
            "3",
            "--out",
        ])
        .arg(&gen));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(gen.join("cloudtrail-audit.log")).unwrap();
    // Every event twice, the second copy after all three days went by.
    let input = write(&dir.path().join("twice.log"), text.clone() + &text);
    let store = vigil::store::Store::new(dir.path().join("store"));
    let opts = IngestOptions {
        source: None,
        strict: false,
        max_record_bytes: 1 << 20,
        parse: ParseOptions::default(),
        progress: false,
        now: 1_800_000_000_000_000_000,
        // Far below one day's events: older slots are dropped as the days go by.
        dedupe_budget: 50,
        hold_for: 0,
        discard_held: false,
        object_store: Default::default(),
        max_records: None,
    };
    let report = ingest_lib(&store, &[InputSpec::Path(input)], &opts).unwrap();
    let t = &report.total;
    assert_eq!(
        (t.read, t.stored, t.duplicates, t.rejected),
        (6000, 3000, 3000, 0)
    );
    // A copy in a later run: each slot is read back from the committed files covering it.
    let copy = write(&dir.path().join("copy.log"), text);
    let report = ingest_lib(&store, &[InputSpec::Path(copy)], &opts).unwrap();
    let t = &report.total;
    assert_eq!(
        (t.read, t.stored, t.duplicates, t.rejected),
        (3000, 0, 3000, 0)
    );
    let root = dir.path().join("store");
    assert_eq!(count(&root, "SELECT count(*) AS n FROM events"), 3000);
    assert_eq!(
        count(&root, "SELECT count(DISTINCT event_uid) AS n FROM events"),
        3000
    );
    let r = run(vigil(&root).arg("verify"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

//! `vigil compact`: every row kept, files sorted, rollups exact, the replaced files invisible at
//! once and deleted after the grace period, verify checks the rows a compaction moves.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::*;

/// 6,000 generated CloudTrail records over 3 days, dealt line by line into three inputs, so every
/// ingest writes files whose time ranges overlap the others'.
fn three_overlapping_inputs(dir: &Path) -> Vec<PathBuf> {
    let gen = dir.join("gen");
    let r = run(vigil(dir)
        .args(["generate", "--source", "cloudtrail", "--days", "3"])
        .args(["--events", "6000", "--seed", "11", "--out"])
        .arg(&gen));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(gen.join("cloudtrail-audit.log")).unwrap();
    let mut parts = vec![String::new(); 3];
    for (i, line) in text.lines().enumerate() {
        parts[i % 3].push_str(line);
        parts[i % 3].push('\n');
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| write(&dir.join(format!("part-{i}.log")), p))
        .collect()
}

/// A store of two of the three overlapping inputs, one ingest each (commits 1 and 2).
fn two_ingests(dir: &Path) -> PathBuf {
    let inputs = three_overlapping_inputs(dir);
    let store = dir.join("store");
    for input in &inputs[..2] {
        ingest(&store, &[input], &["--source", "cloudtrail"]);
    }
    store
}

/// Writes commit `seq` as `c` (an edit: nothing recomputes its hash).
fn rewrite_commit(store: &Path, seq: u64, c: &Value) {
    std::fs::write(
        store.join(format!("_commits/{seq:020}.json")),
        serde_json::to_vec_pretty(c).unwrap(),
    )
    .unwrap();
}

fn compact(store: &Path, extra: &[&str]) -> Value {
    let r = run(vigil(store)
        .args(["compact", "--format", "json"])
        .args(extra));
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn commit(store: &Path, seq: u64) -> Value {
    let path = store.join(format!("_commits/{seq:020}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn parquet_files(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count()
}

/// `event_time` of every row of a Parquet file, in file order.
fn times_in_file(path: &Path) -> Vec<i64> {
    let f = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let t = batch
            .column_by_name("event_time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        out.extend(t.values().iter().copied());
    }
    out
}

/// The access summary of the generated days, as CSV.
const SUMMARY: [&str; 9] = [
    "report",
    "run",
    "access-summary",
    "--from",
    "2026-03-01",
    "--to",
    "2026-03-06",
    "--format",
    "csv",
];
const ROWS: &str = "SELECT event_uid, event_time, actor_id, resource_id, action, outcome, \
                    length(raw_event) AS raw FROM events ORDER BY event_uid";
const COUNTS: &str = "SELECT actor_id, resource_id, action, outcome, sum(events) AS n, \
                      min(first_time) AS f, max(last_time) AS l FROM event_counts \
                      GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4";
const COUNTED: &str = "SELECT actor_id, resource_id, action, outcome, count(*) AS n, \
                       min(event_time) AS f, max(event_time) AS l FROM events \
                       GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4";

#[test]
fn compaction_keeps_every_row_in_fewer_sorted_files_with_exact_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = three_overlapping_inputs(dir.path());
    let store = dir.path().join("store");
    for input in &inputs {
        let (code, report) = ingest(&store, &[input], &["--source", "cloudtrail"]);
        assert_eq!(code, 0, "{report}");
    }
    let rows_before = sql(&store, ROWS);
    assert_eq!(rows_before.len(), 6000);
    let report_before = run(vigil(&store).args(SUMMARY));
    assert_eq!(report_before.code, 0, "{}", report_before.stderr);
    let files_before = parquet_files(&store.join("events"));
    assert_eq!(files_before, 9, "three ingests, three days each");

    let v = run(vigil(&store).arg("verify"));
    let head = v.stdout.trim().strip_prefix("head ").unwrap().to_owned();
    let r = compact(&store, &[]);
    assert_eq!(r["commit"], 4, "{r}");
    // Against a head kept before, verify names the compaction made since.
    let v = run(vigil(&store).args(["verify", "--expect-head", &head]));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stderr
            .contains("note: commit 4 was made after the expected head and removes 9 file(s)"),
        "{}",
        v.stderr
    );
    assert_eq!(r["partitions"], 3, "{r}");
    assert_eq!(r["files_before"], 9, "{r}");
    assert_eq!(r["files_after"], 3, "{r}");
    assert_eq!(r["rows"], 6000, "{r}");

    // The same rows and the same report; counts from the new rollups equal counts of events.
    assert_eq!(sql(&store, ROWS), rows_before);
    let report_after = run(vigil(&store).args(SUMMARY));
    assert_eq!(report_after.stdout, report_before.stdout);
    assert_eq!(sql(&store, COUNTS), sql(&store, COUNTED));

    // Each new file is sorted by event_time and its rollup has one row per hour and key.
    let c = commit(&store, 4);
    let files = c["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(c["removed"].as_array().unwrap().len(), 9);
    for f in files {
        let times = times_in_file(&store.join(f["path"].as_str().unwrap()));
        assert_eq!(times.len() as u64, f["rows"].as_u64().unwrap());
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{f} is not sorted");
        let date = f["date"].as_str().unwrap();
        let groups = count(
            &store,
            &format!(
                "SELECT count(*) AS n FROM (SELECT DISTINCT date_trunc('hour', event_time), \
                 actor_id, actor_type, resource_id, resource_type, action, outcome, \
                 is_secret_read FROM events WHERE date = '{date}')"
            ),
        );
        assert_eq!(f["rollup"]["rows"].as_i64().unwrap(), groups, "{f}");
    }

    // Live: 3 files. The replaced ones stay on disk for the grace period, invisible.
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stderr.contains("3 data file(s), 6000 row(s)"),
        "{}",
        v.stderr
    );
    assert_eq!(parquet_files(&store.join("events")), 12);

    // Compacting again changes nothing; re-delivered events are still found as duplicates.
    assert_eq!(compact(&store, &[])["commit"], Value::Null);
    let text = std::fs::read_to_string(dir.path().join("part-1.log")).unwrap();
    let first_half: String = text.lines().take(1000).map(|l| format!("{l}\n")).collect();
    let copy = write(&dir.path().join("again.log"), first_half);
    let (_, again) = ingest(&store, &[&copy], &["--source", "cloudtrail"]);
    assert_eq!(tally(&again, "cloudtrail"), [1000, 0, 0, 1000, 0, 0]);

    // Once the grace period (1 h by default) is over, the replaced files and their rollups go;
    // the store still verifies.
    let r = run(vigil(&store)
        .env("VIGIL_NOW", "2026-03-10T01:00:00Z")
        .args(["compact", "--format", "json"]));
    let r: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(r["deleted"], 36, "{r}");
    assert_eq!(parquet_files(&store.join("events")), 3);
    assert_eq!(parquet_files(&store.join("rollups")), 9);
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert_eq!(sql(&store, ROWS), rows_before);
}

#[test]
fn verify_names_a_compaction_commit_that_drops_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_ingests(dir.path());
    assert_eq!(compact(&store, &["--grace", "0s"])["commit"], 3);
    // The newest commit edited so that one replaced file is not listed as removed: its rows
    // would be back, twice. No later commit chains to it, so only the row check can tell.
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut c = commit(&store, 3);
        edit(&mut c);
        rewrite_commit(&store, 3, &c);
        let v = run(vigil(&store).arg("verify"));
        assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
        v.stdout
    };
    let out = edited(&|c| {
        c["removed"].as_array_mut().unwrap().pop();
    });
    assert!(
        out.contains("INVALID: commit 3 changes the rows of source=cloudtrail date=")
            && out.contains("a compaction must keep every row of each day"),
        "{out}"
    );
    // Only a compaction removes files.
    let out = edited(&|c| c["removed"][0]["reason"] = "cleanup".into());
    assert!(
        out.contains("for `cleanup` (only compaction removes files)"),
        "{out}"
    );
    // A removal of a file no commit added is named too.
    let out = edited(&|c| {
        c["removed"][0]["path"] = "events/source=cloudtrail/date=2026-03-02/nope.parquet".into()
    });
    assert!(
        out.contains("removes events/source=cloudtrail/date=2026-03-02/nope.parquet, which the store did not hold"),
        "{out}"
    );
}

/// A compacted file whose rows were swapped for fabricated ones (same count, hash and size
/// updated in its commit) is named by verify, though the files it replaced are deleted: its
/// rows are hashed again and compared with the content digest the compaction recorded.
#[test]
fn verify_names_a_compacted_file_whose_rows_were_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_ingests(dir.path());
    compact(&store, &["--grace", "0s"]);
    let ok = run(vigil(&store).arg("verify"));
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stderr.contains("file(s) hashed again"), "{}", ok.stderr);

    let rel = commit(&store, 3)["files"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = store.join(&rel);
    std::fs::copy(&target, store.join("../original.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&target).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    // One row's actor becomes someone else: same rows, same times, one lie.
    let first = batches[0].clone();
    let idx = first.schema().index_of("actor_id").unwrap();
    let mut actors: Vec<Option<String>> = first
        .column(idx)
        .as_string::<i32>()
        .iter()
        .map(|a| a.map(str::to_owned))
        .collect();
    actors[0] = Some("arn:aws:iam::111122223333:role/forged".into());
    let mut columns = first.columns().to_vec();
    columns[idx] = Arc::new(StringArray::from(actors));
    batches[0] = RecordBatch::try_new(first.schema(), columns).unwrap();
    let original = commit(&store, 3);
    // Writes `batches` over the compacted file, records its new hash and size in the head
    // commit (which nothing chains to), and returns verify's output.
    // The forged files carry the schema version footer of a real data file.
    let footer = ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(store.join("../original.parquet")).unwrap(),
    )
    .unwrap()
    .metadata()
    .file_metadata()
    .key_value_metadata()
    .cloned();
    let props = WriterProperties::builder()
        .set_key_value_metadata(footer)
        .build();
    let forge = |batches: &[RecordBatch]| -> String {
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&target).unwrap(),
            batches[0].schema(),
            Some(props.clone()),
        )
        .unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
        let bytes = std::fs::read(&target).unwrap();
        let mut c = original.clone();
        c["files"][0]["sha256"] = hex::encode(Sha256::digest(&bytes)).into();
        c["files"][0]["bytes"] = bytes.len().into();
        rewrite_commit(&store, 3, &c);
        let v = run(vigil(&store).arg("verify"));
        assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
        assert!(!v.stdout.contains("hash mismatch"), "{}", v.stdout);
        v.stdout
    };
    let out = forge(&batches);
    assert!(
        out.contains(&format!(
            "INVALID: {rel} does not hold the rows its commit records (content digest mismatch)"
        )),
        "{out}"
    );
    // Extra rows (lanes wrap: 65,536 copies of a row would add nothing to the digest, so the
    // count is checked on its own).
    let mut more = batches.clone();
    more.push(first.clone());
    let out = forge(&more);
    assert!(
        out.contains(&format!("INVALID: {rel} holds ")) && out.contains("its commit records"),
        "{out}"
    );
    // The original rows with two column names swapped: actors would read as secret names.
    let schema = first.schema();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.swap(idx, schema.index_of("resource_name").unwrap());
    let renamed_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    let original_file = std::fs::File::open(store.join("../original.parquet")).unwrap();
    let renamed: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(original_file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| RecordBatch::try_new(renamed_schema.clone(), b.unwrap().columns().to_vec()))
        .map(Result::unwrap)
        .collect();
    let out = forge(&renamed);
    assert!(
        out.contains(&format!(
            "INVALID: {rel} does not have the columns of a vigil data file"
        )),
        "{out}"
    );
}

/// A forged compaction cannot switch the content checks off by adding a file without a digest
/// and removing it in the same commit.
#[test]
fn verify_names_a_compaction_that_removes_a_file_it_adds_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_ingests(dir.path());
    compact(&store, &["--grace", "0s"]);
    let mut c = commit(&store, 3);
    let mut dummy = c["files"][0].clone();
    let path = dummy["path"]
        .as_str()
        .unwrap()
        .replace(".parquet", "-dummy.parquet");
    dummy["path"] = path.clone().into();
    dummy["rows"] = 0.into();
    dummy.as_object_mut().unwrap().remove("content");
    dummy.as_object_mut().unwrap().remove("rollup");
    let mut removal = c["removed"][0].clone();
    removal["path"] = path.clone().into();
    removal["sha256"] = dummy["sha256"].clone();
    removal["rows"] = 0.into();
    c["files"].as_array_mut().unwrap().push(dummy);
    c["removed"].as_array_mut().unwrap().push(removal);
    rewrite_commit(&store, 3, &c);
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    for expected in [
        format!("INVALID: commit 3 removes {path}, a file it adds itself"),
        format!("INVALID: commit 3 adds {path} without a content digest"),
    ] {
        assert!(v.stdout.contains(&expected), "{expected}\n{}", v.stdout);
    }
}

/// Compaction checks its own output against the content digests of its inputs: a recorded
/// digest that does not match the rows stops it before anything is committed.
#[test]
fn compaction_stops_when_its_output_differs_from_the_recorded_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_ingests(dir.path());
    // The head commit's first file given the digest of other rows of the same day (commit 1's).
    // (Editing the head breaks no chain: nothing follows it.)
    let c1 = commit(&store, 1);
    let mut c2 = commit(&store, 2);
    let day = c2["files"][0]["date"].clone();
    let other = c1["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["date"] == day)
        .unwrap();
    c2["files"][0]["content"] = other["content"].clone();
    rewrite_commit(&store, 2, &c2);
    let r = run(vigil(&store).args(["compact", "--grace", "0s"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("do not match the content digests their commits record"),
        "{}",
        r.stderr
    );
    assert!(!store.join("_commits/00000000000000000003.json").exists());
    assert_eq!(
        parquet_files(&store.join("events")),
        6,
        "nothing left behind"
    );
}

/// Ingest says when days are spread over many files, and compaction ends it.
#[test]
fn ingest_suggests_compaction_when_a_day_has_many_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ingest_one = |i: u32| {
        let input = write(
            &dir.path().join(format!("audit-{i}.log")),
            vault_response(&format!("r-{i}"), &format!("2026-03-02T10:{i:02}:00Z")) + "\n",
        );
        let r = run(vigil(&store).arg("ingest").arg(&input));
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stderr
    };
    for i in 0..7 {
        assert!(!ingest_one(i).contains("vigil compact"), "{i} files");
    }
    assert!(
        ingest_one(7).contains("1 day partition(s) hold 8 or more small files; `vigil compact`"),
        "the eighth file"
    );
    assert_eq!(compact(&store, &[])["files_after"], 1);
    assert!(!ingest_one(8).contains("vigil compact"));
    assert_eq!(count(&store, "SELECT count(*) AS n FROM events"), 9);
}

/// A data file changed on disk is never rewritten: its copy would carry a new, valid hash and
/// the change could no longer be shown.
#[test]
fn compaction_refuses_a_file_changed_since_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_ingests(dir.path());
    let target = store.join(commit(&store, 1)["files"][0]["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&target, bytes).unwrap();
    let r = run(vigil(&store).args(["compact", "--grace", "0s"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not the file its commit recorded"),
        "{}",
        r.stderr
    );
    assert!(!store.join("_commits/00000000000000000003.json").exists());
    assert_eq!(
        parquet_files(&store.join("events")),
        6,
        "nothing written or deleted"
    );
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 1);
    assert!(v.stdout.contains("hash mismatch"), "{}", v.stdout);
}

/// The grace period a compaction was given is kept by later runs (ingest included).
#[test]
fn replaced_files_stay_for_the_grace_period_the_compaction_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_ingests(dir.path());
    assert_eq!(compact(&store, &["--grace", "2h"])["commit"], 3);
    let c = commit(&store, 3);
    assert_eq!(c["created"], NOW, "the test clock");
    assert_eq!(c["keep_removed_until"], "2026-03-10T02:00:00Z");
    // 90 minutes later (past the default hour, inside the 2 h given), an ingest keeps them.
    let late = write(
        &dir.path().join("late.log"),
        vault_response("late", "2026-03-09T10:00:00Z") + "\n",
    );
    let r = run(vigil(&store)
        .env("VIGIL_NOW", "2026-03-10T01:30:00Z")
        .arg("ingest")
        .arg(&late));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(parquet_files(&store.join("events")), 6 + 3 + 1);
    // After the 2 h, the next compact deletes them (and their rollups).
    let r = run(vigil(&store)
        .env("VIGIL_NOW", "2026-03-10T02:00:01Z")
        .args(["compact", "--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["deleted"], 24, "{report}");
    assert_eq!(parquet_files(&store.join("events")), 3 + 1);
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

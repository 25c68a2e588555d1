//! `vigil verify`: recompute the hash chain and every file hash, like CloudTrail's log file
//! validation, and name every commit or file that was changed, removed, added or reordered.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::checkpoint::CheckpointRef;
use super::commit::{commit_file_name, Commit, DataFile, COMMITS_DIR};
use super::state::State;
use super::{Store, StoreError, EVENTS_DIR, REJECTS_DIR};
use crate::fsutil::TEMP_SUFFIX;

/// What verification found.
#[derive(Debug, Default)]
pub struct Verification {
    /// One sentence per problem, naming the commit or file.
    pub problems: Vec<String>,
    /// Leftovers of an interrupted ingest (not referenced by any commit, newer than the head):
    /// harmless, removed by the next ingest.
    pub leftovers: Vec<String>,
    /// SHA-256 of the newest commit file that chains correctly from the first.
    pub head: Option<String>,
    /// With an expected head: the commits made after it, one sentence each (not problems in
    /// themselves, but what changed since the hash was kept, compactions named).
    pub since_expected: Vec<String>,
    pub commits: u64,
    pub files: u64,
    pub rows: u64,
    /// Data files whose rows were hashed again (content digests).
    pub content_checked: u64,
    /// Commit-log checkpoints held against the commits before them.
    pub checkpoints: u64,
    /// Files set aside in `_quarantine/` by a writer (no commit listed them).
    pub quarantined: u64,
    /// Live data files that lack a kind of rollup this vigil writes (an older vigil wrote them):
    /// not a problem, but queries and detectors count their events instead.
    pub without_rollups: u64,
}

/// Checks the whole store. `expect_head` is a head hash kept elsewhere (an email, a ticket):
/// a store whose chain does not reach it has lost commits at its tail.
pub fn verify(store: &Store, expect_head: Option<&str>) -> Result<Verification, StoreError> {
    let mut v = Verification::default();
    // On object storage: every commit into the local cache, and one listing of every file.
    super::remote::fetch_all_commits(store, true)?;
    let listing = super::files::remote_listing(store)?;
    let dir = store.root().join(COMMITS_DIR);
    let mut seqs: Vec<u64> = Vec::new();
    if dir.is_dir() {
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let name = entry
                .map_err(|e| StoreError::io(&dir, e))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            match name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(seq) => seqs.push(seq),
                None if name.ends_with(TEMP_SUFFIX) => {
                    v.leftovers.push(format!("{COMMITS_DIR}/{name}"))
                }
                None => v
                    .problems
                    .push(format!("{COMMITS_DIR}/{name} is not a commit file")),
            }
        }
    }
    seqs.sort_unstable();
    let mut referenced: HashSet<String> = HashSet::new();
    // Files the store holds after each commit (path -> sha256, rows), and the files commits took
    // out: a replaced file may be gone from disk once its grace period is over.
    let mut live: HashMap<String, LiveFile> = HashMap::new();
    let mut replaced: HashSet<String> = HashSet::new();
    // Findings files the store holds after each commit: path -> (sha256, rows).
    let mut live_findings: HashMap<String, (String, u64)> = HashMap::new();
    // Data files whose bytes are not the ones recorded (named already; not decoded again).
    let mut changed: HashSet<String> = HashSet::new();
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut prev_hash: Option<String> = None;
    // The first commit whose files carry content digests: every data file after it must too.
    let mut digests_since: Option<u64> = None;
    let mut chain_ok = true;
    let mut hashes: Vec<String> = Vec::new();
    // The held records the newest ingest left for the next (older states are deleted).
    let mut live_held = None;
    // The state the commits give, to hold each checkpoint against.
    let mut replayed = State::default();
    // Writers delete checkpoints a newer one supersedes, never the newest.
    let mut newest_checkpoint: Option<(u64, String)> = None;
    // Files removed by each commit, in the order of `hashes`.
    let mut removals: Vec<usize> = Vec::new();
    let last = seqs.last().copied().unwrap_or(0);
    // On object storage, data files whose hash is checked when their rows are (one fetch, not
    // two): a data file is most of a store's bytes.
    let mut deferred: Vec<DataFile> = Vec::new();
    for expected in 1..=last {
        let path = dir.join(commit_file_name(expected));
        if !seqs.contains(&expected) {
            v.problems.push(format!(
                "commit {expected} is missing ({COMMITS_DIR}/{})",
                commit_file_name(expected)
            ));
            chain_ok = false;
            prev_hash = None;
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let commit: Commit = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                let what = if bytes.is_empty() {
                    "is empty (torn write)".to_owned()
                } else {
                    format!("is unreadable ({e})")
                };
                v.problems.push(format!("commit {expected} {what}"));
                chain_ok = false;
                prev_hash = None;
                continue;
            }
        };
        if commit.seq != expected {
            v.problems.push(format!(
                "commit file {} holds commit {} (commits reordered or renamed)",
                commit_file_name(expected),
                commit.seq
            ));
            chain_ok = false;
        } else if commit.prev != prev_hash && (expected == 1 || prev_hash.is_some()) {
            v.problems.push(format!("commit {expected} does not chain to commit {} (a commit was edited, removed or reordered)", expected - 1));
            chain_ok = false;
        }
        prev_hash = Some(hash.clone());
        if chain_ok {
            v.head = Some(hash.clone());
        }
        hashes.push(hash);
        removals.push(commit.removed.len());
        v.commits += 1;
        for f in &commit.files {
            let fetch_once = store.remote().is_some() && f.content.is_some();
            referenced.insert(f.path.clone());
            live.insert(
                f.path.clone(),
                LiveFile {
                    sha256: f.sha256.clone(),
                    rows: f.rows,
                    partition: (f.source.clone(), f.date.clone()),
                    file: f.clone(),
                },
            );
            if fetch_once {
                // Its hash is checked with its rows, from one fetch, if it is still live at the
                // end (see below).
                deferred.push(f.clone());
            } else {
                check_data_file(store, f, &mut v.problems, &mut missing, &mut changed)?;
            }
            for kind in super::rollup::Kind::ALL {
                let Some(r) = f.rollup_of(kind) else {
                    continue;
                };
                referenced.insert(r.path.clone());
                if r.path != kind.path_for(&f.path) {
                    v.problems.push(format!(
                        "commit {expected} lists {} as a rollup of {} (it belongs at {})",
                        r.path,
                        f.path,
                        kind.path_for(&f.path)
                    ));
                }
                let before = (v.problems.len(), missing.len());
                check_file(
                    store,
                    &r.path,
                    &r.sha256,
                    r.bytes,
                    &mut v.problems,
                    &mut missing,
                )?;
                if (v.problems.len(), missing.len()) == before {
                    check_rollup(store, r, f.rows, &mut v.problems)?;
                }
            }
        }
        check_removals(
            &commit,
            &mut live,
            &mut live_findings,
            &mut replaced,
            &mut v.problems,
        );
        replayed.apply(&commit);
        if let Some(c) = &commit.checkpoint {
            referenced.insert(c.path.clone());
            newest_checkpoint = Some((expected, c.path.clone()));
            check_checkpoint(store, &commit, c, &replayed, &mut v, &mut missing)?;
        }
        if commit.is_ingest() {
            // An ingest carries in every record the one before it held (or says it dropped
            // them), no more, no less.
            let resumed: u64 = commit.counts.values().map(|t| t.resumed).sum();
            let held_before = live_held
                .as_ref()
                .map_or(0, |h: &super::held::HeldFile| h.records);
            if resumed + commit.held_discarded != held_before {
                v.problems.push(format!(
                    "commit {expected} counts {} held record(s) carried in, but the ingest before it held {held_before}",
                    resumed + commit.held_discarded
                ));
            }
            live_held = commit.held.clone();
        }
        check_counts(&commit, &mut digests_since, &mut v.problems);
        if let Some(f) = &commit.findings {
            referenced.insert(f.path.clone());
            live_findings.insert(f.path.clone(), (f.sha256.clone(), f.rows));
            let before = (v.problems.len(), missing.len());
            check_file(
                store,
                &f.path,
                &f.sha256,
                f.bytes,
                &mut v.problems,
                &mut missing,
            )?;
            if (v.problems.len(), missing.len()) == before {
                check_parquet_rows(store, f, &mut v.problems)?;
            }
        }
        if let Some(r) = &commit.rejects {
            referenced.insert(r.path.clone());
            check_file(
                store,
                &r.path,
                &r.sha256,
                r.bytes,
                &mut v.problems,
                &mut missing,
            )?;
        }
    }
    let listed: Option<HashSet<&str>> = listing
        .as_deref()
        .map(|l| l.iter().map(|(r, _)| r.as_str()).collect());
    let mut hash_with_rows: HashMap<String, (String, u64)> = HashMap::new();
    for f in deferred {
        let live_now = live.get(&f.path).is_some_and(|l| l.sha256 == f.sha256);
        if !live_now {
            check_data_file(store, &f, &mut v.problems, &mut missing, &mut changed)?;
        } else if listed
            .as_ref()
            .is_some_and(|l| !l.contains(f.path.as_str()))
        {
            missing.push((f.path.clone(), format!("{} is missing", f.path)));
        } else {
            hash_with_rows.insert(f.path.clone(), (f.sha256.clone(), f.bytes));
        }
    }
    // Only the live held state must be there: older ones are spent and deleted.
    if let Some(h) = &live_held {
        check_file(
            store,
            &h.path,
            &h.sha256,
            h.bytes,
            &mut v.problems,
            &mut missing,
        )?;
    }
    for (rel, problem) in missing {
        if !replaced.contains(&rel)
            && (!rel.starts_with(super::checkpoint::CHECKPOINTS_DIR)
                || newest_checkpoint.as_ref().is_some_and(|(_, p)| *p == rel))
        {
            v.problems.push(problem);
        }
    }
    v.files = live.len() as u64;
    v.rows = live.values().map(|f| f.rows).sum();
    v.without_rollups = live.values().filter(|f| !f.file.has_all_rollups()).count() as u64;
    check_content(
        store,
        &live,
        &changed,
        &hash_with_rows,
        listed.as_ref(),
        &mut v,
    )?;
    let tops = [
        EVENTS_DIR,
        REJECTS_DIR,
        super::FINDINGS_DIR,
        super::rollup::ROLLUPS_DIR,
        super::checkpoint::CHECKPOINTS_DIR,
    ];
    match &listing {
        Some(files) => {
            let quarantine = format!("{}/", super::QUARANTINE_DIR);
            v.quarantined = files
                .iter()
                .filter(|(r, _)| r.starts_with(&quarantine))
                .count() as u64;
            for (rel, _) in files {
                if tops.iter().any(|t| rel.starts_with(&format!("{t}/"))) {
                    classify_unlisted(rel, &referenced, last, true, &mut v);
                }
            }
        }
        None => {
            v.quarantined = count_files(&store.root().join(super::QUARANTINE_DIR));
            for top in tops {
                let root = store.root().join(top);
                if root.is_dir() {
                    unreferenced(store, &root, &referenced, last, &mut v)?;
                }
            }
        }
    }
    if let Some(expected) = expect_head {
        let expected = expected.trim().to_lowercase();
        if v.head.as_deref() != Some(expected.as_str()) {
            match hashes.iter().position(|h| *h == expected) {
                Some(i) => {
                    for (j, n) in removals.iter().enumerate().skip(i + 1) {
                        v.since_expected.push(if *n > 0 {
                            format!("commit {} was made after the expected head and removes {n} file(s) (compaction)", j + 1)
                        } else {
                            format!("commit {} was made after the expected head", j + 1)
                        });
                    }
                    if !chain_ok {
                        v.problems.push(format!("the expected head is commit {}, but the chain after it is broken", i + 1));
                    }
                }
                None => v.problems.push(format!(
                    "the expected head {expected} is not in the commit log (commits at the tail were removed or rewritten)"
                )),
            }
        }
    }
    Ok(v)
}

/// A commit's checkpoint must be the file its commit names (its place, hash and size) and hold
/// exactly the state the commits up to it give (`replayed`), so that a reader starting from it
/// sees what a reader of every commit sees.
fn check_checkpoint(
    store: &Store,
    commit: &Commit,
    named: &CheckpointRef,
    replayed: &State,
    v: &mut Verification,
    missing: &mut Vec<(String, String)>,
) -> Result<(), StoreError> {
    let seq = commit.seq;
    if named.path != super::checkpoint::relative_path(seq) {
        v.problems.push(format!(
            "commit {seq} names {} as its checkpoint (it belongs at {})",
            named.path,
            super::checkpoint::relative_path(seq)
        ));
        return Ok(());
    }
    let before = (v.problems.len(), missing.len());
    check_file(
        store,
        &named.path,
        &named.sha256,
        named.bytes,
        &mut v.problems,
        missing,
    )?;
    if (v.problems.len(), missing.len()) != before {
        return Ok(());
    }
    v.checkpoints += 1;
    let bytes = super::files::open(store, &named.path)
        .and_then(|f| f.read_all())
        .map_err(|e| StoreError::io(&store.shown(&named.path), e))?;
    match serde_json::from_slice::<State>(&bytes) {
        Ok(state) => {
            if let Some(why) = state.differs_from(replayed) {
                v.problems.push(format!(
                    "checkpoint {} does not match the commits up to {seq}: {why}",
                    named.path
                ));
            }
        }
        Err(e) => v
            .problems
            .push(format!("checkpoint {} is unreadable ({e})", named.path)),
    }
    Ok(())
}

/// Files under `dir`, recursively (0 when it does not exist).
fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

/// A file the store holds after a commit.
struct LiveFile {
    sha256: String,
    rows: u64,
    partition: (String, String),
    file: DataFile,
}

/// Recomputes the content digest and row count of every live data file that has a digest
/// (when its bytes are intact: a changed file is named already), checks its schema, and
/// compares them with what its commit records. The digests of files a compaction wrote are what
/// the check of that compaction relied on; those of ingested files are what a later compaction
/// will be checked against. Decoding and hashing every row is the costly part of verify (~6 µs a
/// row with raw events, against ~0.5 µs for the file hashes), so files are shared out over the
/// cores.
fn check_content(
    store: &Store,
    live: &HashMap<String, LiveFile>,
    changed: &HashSet<String>,
    hash_with_rows: &HashMap<String, (String, u64)>,
    listed: Option<&HashSet<&str>>,
    v: &mut Verification,
) -> Result<(), StoreError> {
    let exists = |rel: &str| match listed {
        Some(l) => l.contains(rel),
        None => store.absolute(rel).exists(),
    };
    let mut todo: Vec<&DataFile> = live
        .iter()
        .filter(|(_, f)| f.file.content.is_some())
        .filter(|(p, _)| !changed.contains(p.as_str()) && exists(p))
        .map(|(_, f)| &f.file)
        .collect();
    todo.sort_by(|a, b| a.path.cmp(&b.path));
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    if store.remote().is_some() {
        // Each worker holds a whole object (a data file is up to ~100 MB) while it decodes it.
        threads = threads.min(4);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<Option<String>, StoreError>)> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.min(todo.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(f) = todo.get(i) else {
                                return out;
                            };
                            let hash = hash_with_rows.get(&f.path);
                            out.push((i, content_problem(store, f, hash)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("content checks catch their panics"))
                .collect()
        });
    results.sort_by_key(|(i, _)| *i);
    v.content_checked += results.len() as u64;
    for (_, problem) in results {
        if let Some(p) = problem? {
            v.problems.push(p);
        }
    }
    Ok(())
}

/// Opens a store file for a check. A file that cannot be fetched (a network error, a refused
/// request) stops verify (exit 2): reporting it as damage would raise a false tamper alarm.
fn open_checked(store: &Store, rel: &str) -> Result<super::files::StoreFile, StoreError> {
    super::files::open(store, rel).map_err(|e| StoreError::io(&store.shown(rel), e))
}

/// What is wrong with a data file's rows, if anything: not the schema of a data file, not the
/// row count or the content digest its commit records; with `hash`, first not the SHA-256 and
/// size its commit records (the same bytes, fetched once). A crafted file that makes the
/// Parquet decoder panic is reported like any other unreadable file.
fn content_problem(
    store: &Store,
    f: &DataFile,
    hash: Option<&(String, u64)>,
) -> Result<Option<String>, StoreError> {
    let rel = &f.path;
    let mut file = open_checked(store, rel)?;
    if let Some((sha256, bytes)) = hash {
        let (actual, n) = file
            .sha256()
            .map_err(|e| StoreError::io(&store.shown(rel), e))?;
        if actual != *sha256 || n != *bytes {
            return Ok(Some(format!("{rel} hash mismatch (the file was changed)")));
        }
    }
    // (AssertUnwindSafe: a file being decoded; nothing of it is used after a panic.)
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        move || -> Result<_, String> {
            let builder =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    file,
                )
                .map_err(|e| e.to_string())?;
            let version = builder
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .and_then(|kv| {
                    kv.iter()
                        .find(|k| k.key == super::writer::SCHEMA_VERSION_KEY)
                })
                .and_then(|k| k.value.clone());
            let schema_ok = builder.schema().fields() == crate::event::file_schema().fields()
                && version.as_deref() == Some(crate::event::SCHEMA_VERSION.to_string().as_str());
            if !schema_ok {
                return Ok(None);
            }
            super::digest::of_parquet(builder)
                .map(Some)
                .map_err(|e| e.to_string())
        },
    ));
    Ok(match outcome {
        Ok(Ok(None)) => Some(format!(
            "{rel} does not have the columns of a vigil data file of this schema version (columns renamed, retyped or reordered)"
        )),
        Ok(Ok(Some((_, rows)))) if rows != f.rows => Some(format!(
            "{rel} holds {rows} row(s); its commit records {}",
            f.rows
        )),
        Ok(Ok(Some((digest, _)))) if Some(digest.to_string()) != f.content => Some(format!(
            "{rel} does not hold the rows its commit records (content digest mismatch)"
        )),
        Ok(Ok(Some(_))) => None,
        Ok(Err(e)) => Some(format!("{rel} cannot be read: {e}")),
        Err(_) => Some(format!("{rel} cannot be read: the Parquet decoder failed on it")),
    })
}

/// A commit's own accounting: each source's tally balances (`read + resumed = stored + merged +
/// duplicates + rejected + held`), an ingest's files hold the rows its tallies say it wrote, and once
/// a commit has recorded content digests every later data file has one (a file without one
/// would escape the content checks).
fn check_counts(commit: &Commit, digests_since: &mut Option<u64>, problems: &mut Vec<String>) {
    let seq = commit.seq;
    for (source, t) in &commit.counts {
        if !t.balanced() {
            problems.push(format!(
                "commit {seq} counts {} read or carried in for {source} but {} stored, merged, duplicate, rejected or carried on",
                t.read + t.resumed,
                t.stored + t.merged + t.duplicates + t.rejected + t.held
            ));
        }
    }
    // The held state a commit leaves holds exactly the records its counts carry on.
    let carried: u64 = commit.counts.values().map(|t| t.held).sum();
    let in_file = commit.held.as_ref().map_or(0, |h| h.records);
    if carried != in_file {
        problems.push(format!(
            "commit {seq} counts {carried} held record(s) carried on but its held-state file lists {in_file}"
        ));
    }
    if commit.removed.is_empty() && !commit.counts.is_empty() {
        let written: u64 = commit.counts.values().map(|t| t.rows).sum();
        let in_files: u64 = commit.files.iter().map(|f| f.rows).sum();
        if written != in_files {
            problems.push(format!(
                "commit {seq} lists files of {in_files} row(s) but counts {written} row(s) written"
            ));
        }
    }
    for f in &commit.files {
        match (f.content.is_some(), *digests_since) {
            (true, None) => *digests_since = Some(seq),
            (false, Some(first)) => problems.push(format!(
                "commit {seq} adds {} without a content digest (every data file since commit {first} has one)",
                f.path
            )),
            _ => {}
        }
    }
}

/// Files a commit removes must be files the store held, with the hash it recorded; only a
/// compaction removes files, it reads no input, and it must put back exactly the rows it takes
/// out of each day, in files of its own.
fn check_removals(
    commit: &Commit,
    live: &mut HashMap<String, LiveFile>,
    live_findings: &mut HashMap<String, (String, u64)>,
    replaced: &mut HashSet<String>,
    problems: &mut Vec<String>,
) {
    if commit.removed.is_empty() {
        return;
    }
    let seq = commit.seq;
    if !commit.inputs.is_empty() || commit.rejects.is_some() {
        problems.push(format!(
            "commit {seq} removes files and also consumes inputs (only a compaction removes files)"
        ));
    }
    let mut balance: std::collections::BTreeMap<(String, String), i128> = Default::default();
    for f in &commit.files {
        *balance
            .entry((f.source.clone(), f.date.clone()))
            .or_default() += i128::from(f.rows);
    }
    let own: HashSet<&str> = commit
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(commit.findings.iter().map(|f| f.path.as_str()))
        .collect();
    let mut removed_files = Vec::new();
    // Findings files merged into the commit's findings file: every row kept.
    let mut merged_rows: Option<u64> = None;
    for r in &commit.removed {
        if own.contains(r.path.as_str()) {
            problems.push(format!(
                "commit {seq} removes {}, a file it adds itself",
                r.path
            ));
        }
        replaced.insert(r.path.clone());
        replaced.extend(super::rollup::Kind::ALL.map(|k| k.path_for(&r.path)));
        if r.reason != "compaction" {
            problems.push(format!(
                "commit {seq} removes {} for `{}` (only compaction removes files)",
                r.path, r.reason
            ));
        }
        if r.replaced_by.iter().any(|p| !own.contains(p.as_str())) {
            problems.push(format!(
                "commit {seq} says {} was replaced by files it does not add",
                r.path
            ));
        }
        if let Some((sha256, rows)) = live_findings.remove(&r.path) {
            if sha256 != r.sha256 || rows != r.rows {
                problems.push(format!(
                    "commit {seq} removes {} with a hash or row count its adding commit does not have",
                    r.path
                ));
            }
            *merged_rows.get_or_insert(0) += rows;
            continue;
        }
        match live.remove(&r.path) {
            Some(f) if f.sha256 == r.sha256 && f.rows == r.rows => {
                *balance.entry(f.partition).or_default() -= i128::from(f.rows);
                removed_files.push(f.file);
            }
            Some(_) => problems.push(format!(
                "commit {seq} removes {} with a hash or row count its adding commit does not have",
                r.path
            )),
            None => problems.push(format!(
                "commit {seq} removes {}, which the store did not hold",
                r.path
            )),
        }
    }
    if let Some(rows) = merged_rows {
        let kept = commit.findings.as_ref().map_or(0, |f| f.rows);
        if kept != rows {
            problems.push(format!(
                "commit {seq} merges findings files of {rows} row(s) into a file of {kept} (a merge must keep every row)"
            ));
        }
    }
    for ((source, date), diff) in balance {
        if diff != 0 {
            problems.push(format!(
                "commit {seq} changes the rows of source={source} date={date} by {diff:+} (a compaction must keep every row of each day)"
            ));
        }
    }
    check_removed_content(commit, &removed_files, problems);
}

/// A compaction's new files of each day must hold the rows of the files it removed: the sum of
/// their content digests equals the sum recorded for the removed files when they were added.
/// (Files of older versions have no digest: their days are checked by row counts only.)
fn check_removed_content(commit: &Commit, removed: &[DataFile], problems: &mut Vec<String>) {
    let seq = commit.seq;
    // Per (source, date): the files removed, the files added.
    type Sides<'a> = (Vec<&'a DataFile>, Vec<&'a DataFile>);
    let mut days: std::collections::BTreeMap<(&str, &str), Sides> = Default::default();
    for f in removed {
        days.entry((&f.source, &f.date)).or_default().0.push(f);
    }
    for f in &commit.files {
        days.entry((&f.source, &f.date)).or_default().1.push(f);
    }
    for ((source, date), (before, after)) in days {
        let sum = |files: &[&DataFile]| super::digest::sum_content(files.iter().copied());
        match (sum(&before), sum(&after)) {
            (Ok(Some(b)), Ok(Some(a))) if a == b => {}
            (Ok(Some(_)), Ok(Some(_))) => problems.push(format!(
                "commit {seq}: the new files of source={source} date={date} do not hold the rows of the files they replace (content digests differ)"
            )),
            (Ok(Some(_)), Ok(None)) => problems.push(format!(
                "commit {seq}: a new file of source={source} date={date} has no content digest, though the files it replaces have one"
            )),
            (Ok(None), _) => {}
            (Err(e), _) | (_, Err(e)) => problems.push(format!("commit {seq}: {e}")),
        }
    }
}

/// Checks a file's hash and size; a missing file goes to `missing` (path, problem), since a
/// file replaced by compaction may be deleted. False when the file is there but changed.
fn check_file(
    store: &Store,
    rel: &str,
    sha256: &str,
    bytes: u64,
    problems: &mut Vec<String>,
    missing: &mut Vec<(String, String)>,
) -> Result<bool, StoreError> {
    let path = store.shown(rel);
    let mut f = match super::files::open(store, rel) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing.push((rel.to_owned(), format!("{rel} is missing")));
            return Ok(true);
        }
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    let (actual, n) = f.sha256().map_err(|e| StoreError::io(&path, e))?;
    if actual != sha256 || n != bytes {
        problems.push(format!("{rel} hash mismatch (the file was changed)"));
        return Ok(false);
    }
    Ok(true)
}

/// [`check_file`] of a data file; one whose bytes changed goes to `changed` (named once, not
/// decoded again).
fn check_data_file(
    store: &Store,
    f: &DataFile,
    problems: &mut Vec<String>,
    missing: &mut Vec<(String, String)>,
    changed: &mut HashSet<String>,
) -> Result<(), StoreError> {
    if !check_file(store, &f.path, &f.sha256, f.bytes, problems, missing)? {
        changed.insert(f.path.clone());
    }
    Ok(())
}

/// A rollup must hold the rows its commit lists and count exactly its data file's rows.
fn check_rollup(
    store: &Store,
    r: &super::commit::RollupFile,
    data_rows: u64,
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    let file = open_checked(store, &r.path)?;
    // A crafted file must not crash verify: a decoder panic is a problem like any other.
    let totals = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        super::rollup::totals(file)
    }))
    .unwrap_or_else(|_| Err("the Parquet decoder failed on it".into()));
    match totals {
        Ok((rows, events)) if rows == r.rows && events == data_rows => {}
        Ok((rows, events)) => problems.push(format!(
            "{} has {rows} row(s) counting {events} event(s); its commit says {} row(s) for a data file of {data_rows} (the rollup disagrees with its data)",
            r.path, r.rows
        )),
        Err(e) => problems.push(format!("{} cannot be read: {e}", r.path)),
    }
    Ok(())
}

/// A findings file must be Parquet holding the rows its commit lists.
fn check_parquet_rows(
    store: &Store,
    f: &super::commit::FindingsFile,
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file = open_checked(store, &f.path)?;
    // A crafted file must not crash verify: a decoder panic is a problem like any other.
    let rows = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
        Ok::<i64, String>(reader.metadata().file_metadata().num_rows())
    }))
    .unwrap_or_else(|_| Err("the Parquet decoder failed on it".into()));
    match rows {
        Ok(n) if u64::try_from(n) == Ok(f.rows) => {}
        Ok(n) => problems.push(format!(
            "{} has {n} row(s); its commit says {}",
            f.path, f.rows
        )),
        Err(e) => problems.push(format!("{} cannot be read: {e}", f.path)),
    }
    Ok(())
}

/// Whether a file is named as writers on object storage name theirs, `<seq>-<8 hex
/// digits>[-<n>].<ext>`: one no commit lists is what a writer that lost a race for its commit
/// number, or stopped before its commit, left (its number can be the head's, made by another).
fn written_by_a_writer_on_object_storage(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    let mut parts = stem.split('-');
    let seq = parts
        .next()
        .is_some_and(|p| p.len() >= 6 && p.bytes().all(|b| b.is_ascii_digit()));
    let token = parts
        .next()
        .is_some_and(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    let rest = parts
        .next()
        .is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()));
    seq && token && rest && parts.next().is_none()
}

/// Files no commit lists: leftovers of an interrupted ingest when newer than the head and
/// named like one, otherwise files added to the store.
fn unreferenced(
    store: &Store,
    dir: &Path,
    referenced: &HashSet<String>,
    head_seq: u64,
    v: &mut Verification,
) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            unreferenced(store, &path, referenced, head_seq, v)?;
            continue;
        }
        classify_unlisted(&store.relative(&path), referenced, head_seq, false, v);
    }
    Ok(())
}

/// A file of the store that no commit lists is a leftover of an interrupted write when newer
/// than the head and named like one, otherwise a file added to the store.
/// `on_object_storage`: writers there name files with a token, and lose races (see
/// [`written_by_a_writer_on_object_storage`]); a local store's writers never do.
fn classify_unlisted(
    rel: &str,
    referenced: &HashSet<String>,
    head_seq: u64,
    on_object_storage: bool,
    v: &mut Verification,
) {
    if referenced.contains(rel) {
        return;
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let seq = name
        .split(['-', '.'])
        .next()
        .and_then(|s| s.parse::<u64>().ok());
    if name.ends_with(TEMP_SUFFIX)
        || seq.is_some_and(|s| s > head_seq)
        || (on_object_storage && written_by_a_writer_on_object_storage(name))
    {
        v.leftovers.push(rel.to_owned());
    } else {
        v.problems
            .push(format!("{rel} is not in any commit (a file was added)"));
    }
}

#[cfg(test)]
mod tests {
    use super::written_by_a_writer_on_object_storage as tagged;

    #[test]
    fn only_names_with_a_writer_token_read_as_an_object_storage_writer_s() {
        for name in [
            "000012-0badf00d-0003.parquet",
            "000012-0badf00d.jsonl",
            "1234567-abcdef01-0000.parquet",
        ] {
            assert!(tagged(name), "{name}");
        }
        for name in [
            "000012-0003.parquet",
            "000012.jsonl",
            "000012-0badf00.parquet",
            "000012-0badf00d-x1.parquet",
            "000012-0badf00d-0003-9.parquet",
            "12-0badf00d-0003.parquet",
            "evil-0badf00d.parquet",
        ] {
            assert!(!tagged(name), "{name}");
        }
    }
}

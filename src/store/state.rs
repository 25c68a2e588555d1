//! What the store holds after a commit: the live data files, the rejects files, the files a
//! compaction replaced that still wait for their deletion, where each input was read to, and the
//! records held for the next ingest.
//!
//! Replaying the commit log from its first commit gives it ([`State::apply`], one commit at a
//! time); a commit-log checkpoint (`store::checkpoint`) stores it, so opening a store costs one
//! checkpoint and the commits after it instead of every commit ever made. Everything here is a
//! function of the commits, except that a writer drops a pending removal once it has deleted
//! its files ([`State::drop_deleted`]): a checkpoint may list fewer removals than a replay.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::commit::{Commit, DataFile, FindingsFile, RejectsFile, RemovedFile};
use super::held::HeldFile;
use super::inputs::InputCheckpoint;
use crate::timerange::parse_instant;
use crate::timerange::rfc3339;

/// How long replaced files stay when the commit does not say: longer than the default query
/// timeout (2 min) and a day's `vigil detect`, so readers that listed them finish. Readers hold
/// no lease: a command that runs longer (a month's backtest) can lose files under it.
pub const DEFAULT_GRACE_NANOS: i64 = crate::timerange::NANOS_PER_HOUR;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The commit this is the state after (0: before the first).
    pub seq: u64,
    /// Data files added and not removed since, in the order their commits added them.
    pub files: Vec<DataFile>,
    /// Every rejects file committed (rejects are kept, never compacted).
    pub rejects: Vec<RejectsFile>,
    /// Every findings file committed, oldest first (findings are kept, never compacted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingsFile>,
    /// Files compactions replaced whose deletion is still to be done.
    pub pending: Vec<PendingRemoval>,
    /// The newest checkpoint of each input (per file head, whole-file fingerprint or object key).
    pub inputs: Vec<LoggedInput>,
    /// The held records the newest ingest commit left for the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldFile>,
    /// Written by a vigil that lists findings files: a checkpoint without it, in a store that
    /// has findings, was written by an older vigil that would leave them out (not compared
    /// with a replay; only readers look at it).
    #[serde(default)]
    pub lists_findings: bool,
    /// Input key → index in `inputs` (rebuilt after reading a checkpoint).
    #[serde(skip)]
    input_index: HashMap<String, usize>,
}

/// A replaced data file (and its rollups) to delete once `until` has passed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingRemoval {
    /// The commit that removed it.
    pub seq: u64,
    /// End of the grace period (RFC 3339); empty: never (the removal does not name the file as
    /// it was added, so vigil leaves it where it is).
    pub until: String,
    pub file: RemovedFile,
}

/// An input checkpoint and the commit that wrote it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedInput {
    pub seq: u64,
    pub input: InputCheckpoint,
}

/// What identifies an input across commits: a newer checkpoint with the same key replaces the
/// older one (a grown file keeps its head; see `store::inputs`).
fn input_key(input: &InputCheckpoint) -> String {
    match input {
        InputCheckpoint::File(f) => format!("file {} {}", f.head_len, f.head),
        InputCheckpoint::Object(o) => format!("object {}", o.key),
        InputCheckpoint::Whole(w) => format!("whole {}", w.fingerprint),
    }
}

impl State {
    /// The state after `commit`, which follows `self.seq`.
    pub fn apply(&mut self, commit: &Commit) {
        self.seq = commit.seq;
        if !commit.removed.is_empty() {
            self.remove(commit);
        }
        self.files.extend(commit.files.iter().cloned());
        self.rejects.extend(commit.rejects.iter().cloned());
        self.findings.extend(commit.findings.iter().cloned());
        for input in &commit.inputs {
            self.record_input(LoggedInput {
                seq: commit.seq,
                input: input.clone(),
            });
        }
        // Only an ingest changes the held state: a compaction between two ingests leaves it
        // to the next one.
        if commit.is_ingest() {
            self.held = commit.held.clone();
        }
    }

    fn remove(&mut self, commit: &Commit) {
        let paths: HashSet<&str> = commit.removed.iter().map(|r| r.path.as_str()).collect();
        let mut taken: HashMap<String, String> = HashMap::new();
        self.files.retain(|f| {
            if paths.contains(f.path.as_str()) {
                taken.insert(f.path.clone(), f.sha256.clone());
                false
            } else {
                true
            }
        });
        // Findings files merged into one (`crate::findings::merge`) leave the same way.
        self.findings.retain(|f| {
            if paths.contains(f.path.as_str()) {
                taken.insert(f.path.clone(), f.sha256.clone());
                false
            } else {
                true
            }
        });
        let until = commit
            .keep_removed_until
            .clone()
            .or_else(|| {
                parse_instant(&commit.created)
                    .ok()
                    .map(|t| rfc3339(t.saturating_add(DEFAULT_GRACE_NANOS)))
            })
            .unwrap_or_else(|| commit.created.clone());
        // Only a path the store held, with the hash it was added with, under `events/` or
        // `findings/`, is ever deleted: a forged commit cannot make vigil delete other files. A file the store
        // held that such a removal names stays where it is, still accounted for (never set
        // aside as an orphan).
        for r in &commit.removed {
            let Some(sha256) = taken.get(&r.path) else {
                continue;
            };
            let deletable = is_deletable_path(&r.path) && *sha256 == r.sha256;
            self.pending.push(PendingRemoval {
                seq: commit.seq,
                until: if deletable {
                    until.clone()
                } else {
                    String::new()
                },
                file: r.clone(),
            });
        }
    }

    fn record_input(&mut self, logged: LoggedInput) {
        let key = input_key(&logged.input);
        match self.input_index.get(&key) {
            Some(&i) => self.inputs[i] = logged,
            None => {
                self.input_index.insert(key, self.inputs.len());
                self.inputs.push(logged);
            }
        }
    }

    /// Rebuilds what is not stored in a checkpoint.
    pub(super) fn reindex(&mut self) {
        self.input_index = self
            .inputs
            .iter()
            .enumerate()
            .map(|(i, l)| (input_key(&l.input), i))
            .collect();
    }

    /// Forgets the pending removals a writer has deleted.
    pub fn drop_deleted(&mut self, deleted: &HashSet<(u64, String)>) {
        self.pending
            .retain(|p| !deleted.contains(&(p.seq, p.file.path.clone())));
    }

    /// Every file under the store's data directories this state accounts for: live files and
    /// their rollups, rejects files, and replaced files not yet deleted with their rollups.
    pub fn referenced_paths(&self) -> HashSet<String> {
        let rollups = |path: &str| super::rollup::Kind::ALL.map(|k| k.path_for(path));
        let mut out = HashSet::new();
        for f in &self.files {
            out.insert(f.path.clone());
            for kind in super::rollup::Kind::ALL {
                if let Some(r) = f.rollup_of(kind) {
                    out.insert(r.path.clone());
                }
            }
        }
        out.extend(self.rejects.iter().map(|r| r.path.clone()));
        out.extend(self.findings.iter().map(|f| f.path.clone()));
        for p in &self.pending {
            out.insert(p.file.path.clone());
            out.extend(rollups(&p.file.path));
        }
        out
    }

    /// How this state (a checkpoint's) differs from `replayed` (the commits'), if it does: the
    /// first difference, in a phrase. Pending removals may be fewer in a checkpoint (a writer
    /// deleted them) but never others.
    pub fn differs_from(&self, replayed: &State) -> Option<String> {
        if self.seq != replayed.seq {
            return Some(format!("it is the state after commit {}", self.seq));
        }
        if self.files != replayed.files {
            let ours: HashSet<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
            let theirs: HashSet<&str> = replayed.files.iter().map(|f| f.path.as_str()).collect();
            return Some(
                match (
                    theirs.difference(&ours).next(),
                    ours.difference(&theirs).next(),
                ) {
                    (Some(p), _) => format!("it leaves out the data file {p}"),
                    (None, Some(p)) => {
                        format!("it lists the data file {p}, which the store does not hold")
                    }
                    (None, None) => "its data files differ from the ones the commits list".into(),
                },
            );
        }
        if self.rejects != replayed.rejects {
            return Some("its rejects files differ from the ones the commits list".into());
        }
        if self.findings != replayed.findings {
            return Some("its findings files differ from the ones the commits list".into());
        }
        if self.inputs != replayed.inputs {
            return Some("its input checkpoints differ from the ones the commits list".into());
        }
        if self.held != replayed.held {
            return Some("its held records differ from the ones the commits list".into());
        }
        if let Some(p) = self.pending.iter().find(|p| !replayed.pending.contains(p)) {
            return Some(format!(
                "it lists {} as replaced, which no commit does",
                p.file.path
            ));
        }
        None
    }
}

/// `events/.../<name>.parquet` or `findings/.../<name>.parquet` with no `..`, `.` or empty
/// component.
fn is_deletable_path(p: &str) -> bool {
    (p.starts_with("events/") || p.starts_with("findings/"))
        && p.ends_with(".parquet")
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit::Tally;
    use crate::store::inputs::WholeFile;

    fn data(path: &str, sha: &str) -> DataFile {
        DataFile {
            path: path.into(),
            source: "vault".into(),
            date: "2026-03-01".into(),
            rows: 1,
            bytes: 1,
            sha256: sha.into(),
            min_time: String::new(),
            max_time: String::new(),
            rollup: None,
            clients: None,
            principals: None,
            content: None,
        }
    }

    fn input(fingerprint: &str, records: u64) -> InputCheckpoint {
        InputCheckpoint::Whole(WholeFile {
            path: "a.log".into(),
            fingerprint: fingerprint.into(),
            bytes: 1,
            records,
        })
    }

    fn commit(seq: u64) -> Commit {
        Commit {
            seq,
            prev: None,
            created: "2026-03-10T00:00:00Z".into(),
            schema_version: 1,
            files: Vec::new(),
            rejects: None,
            inputs: Vec::new(),
            counts: Default::default(),
            removed: Vec::new(),
            keep_removed_until: None,
            held: None,
            held_discarded: 0,
            findings: None,
            checkpoint: None,
        }
    }

    fn removal(path: &str, sha: &str) -> RemovedFile {
        RemovedFile {
            path: path.into(),
            sha256: sha.into(),
            rows: 1,
            reason: "compaction".into(),
            replaced_by: vec!["events/c.parquet".into()],
        }
    }

    /// Replaying: a removal takes the file out of the live list, but only one naming the hash
    /// the file was added with becomes a deletion; a newer checkpoint of an input replaces the
    /// older one, also after a round trip through a checkpoint file; a compaction leaves the
    /// held state of the ingest before it.
    #[test]
    fn replaying_commits_keeps_the_live_state() {
        let mut s = State::default();
        let mut c1 = commit(1);
        c1.files = vec![
            data("events/a.parquet", "aa"),
            data("events/b.parquet", "bb"),
        ];
        c1.inputs = vec![input("blake3:1", 2)];
        c1.counts.insert("vault".into(), Tally::default());
        c1.held = Some(HeldFile {
            path: "state/held/1.jsonl".into(),
            records: 1,
            bytes: 1,
            sha256: "hh".into(),
        });
        s.apply(&c1);
        let mut s: State = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        s.reindex();
        let mut c2 = commit(2);
        c2.files = vec![data("events/c.parquet", "cc")];
        c2.removed = vec![
            removal("events/a.parquet", "aa"),
            removal("events/b.parquet", "forged"),
        ];
        c2.keep_removed_until = Some("2026-03-10T01:00:00Z".into());
        s.apply(&c2);
        assert!(s.held.is_some(), "a compaction keeps the held state");
        let mut c3 = commit(3);
        c3.inputs = vec![input("blake3:1", 5), input("blake3:2", 1)];
        c3.counts.insert("vault".into(), Tally::default());
        s.apply(&c3);
        let live: Vec<&str> = s.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(live, ["events/c.parquet"]);
        assert_eq!(s.pending.len(), 2);
        assert_eq!(s.pending[0].file.path, "events/a.parquet");
        assert_eq!(s.pending[0].until, "2026-03-10T01:00:00Z");
        // The forged removal: out of the live files, never deleted, still accounted for.
        assert_eq!(s.pending[1].file.path, "events/b.parquet");
        assert_eq!(s.pending[1].until, "");
        let inputs: Vec<(u64, u64)> = s
            .inputs
            .iter()
            .map(|l| match &l.input {
                InputCheckpoint::Whole(w) => (l.seq, w.records),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(inputs, [(3, 5), (3, 1)]);
        // Commit 3 is an ingest that holds nothing; commit 2 (a compaction) kept commit 1's.
        assert_eq!(s.held, None);
        assert!(s.referenced_paths().contains("events/a.parquet"));
        assert!(s.referenced_paths().contains("events/b.parquet"));
        let mut replayed = s.clone();
        s.drop_deleted(&HashSet::from([(2, "events/a.parquet".to_owned())]));
        assert_eq!(s.differs_from(&replayed), None);
        replayed.files.clear();
        assert_eq!(
            s.differs_from(&replayed).as_deref(),
            Some("it lists the data file events/c.parquet, which the store does not hold")
        );
    }
}

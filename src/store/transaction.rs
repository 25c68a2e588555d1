//! The one way to change the store: [`Transaction::begin`] takes the writer lock, refuses a log
//! damaged before its end and tidies up (`cleanup`); the writer then stages its files beside the
//! store, invisible to readers; [`Transaction::commit`] makes them visible with one commit file
//! chained to the head, or dropping the transaction abandons them (the writers delete what they
//! staged; what a crash leaves is set aside by the next `begin`). Ingest, compaction and the
//! findings history go through it, and so must every later writer.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::cleanup;
use super::commit::{
    write_commit, Commit, DataFile, FindingsFile, LoggedCommit, RejectsFile, RemovedFile,
};
use super::held::HeldFile;
use super::inputs::InputCheckpoint;
use super::{CommitLog, Store, StoreError, Tally, WriteLock};

use crate::event::SCHEMA_VERSION;
use crate::timerange::rfc3339;

/// What a commit adds and takes away (its place in the chain comes from the transaction).
#[derive(Debug, Default)]
pub struct Changes {
    pub files: Vec<DataFile>,
    pub rejects: Option<RejectsFile>,
    pub inputs: Vec<InputCheckpoint>,
    pub counts: BTreeMap<String, Tally>,
    pub removed: Vec<RemovedFile>,
    /// Until when the removed files stay on disk (nanoseconds); `None` for the default grace.
    pub keep_removed_until: Option<i64>,
    /// The held state an ingest leaves for the next (staged with `store::held::write`).
    pub held: Option<HeldFile>,
    /// Records the previous ingest held that this one dropped (`--discard-held`).
    pub held_discarded: u64,
    /// Findings rows recorded (`crate::findings`), staged with `store::writer::write_table`.
    pub findings: Option<FindingsFile>,
    /// Write a checkpoint with this commit whatever the interval (unless checkpoints are off):
    /// the first commit that records findings does, so that the newest checkpoint of a store
    /// with findings is one that lists them.
    pub checkpoint: bool,
}

/// A commit made.
#[derive(Debug)]
pub struct Committed {
    pub seq: u64,
    /// SHA-256 of the commit file: the store's new head.
    pub head: String,
}

/// How long ingest and compaction wait for the write lock: a detection run holds it for about
/// a second to record its findings; another ingest holds it far longer, and is not waited for.
pub const BRIEF_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Transaction<'s> {
    store: &'s Store,
    lock: WriteLock,
    log: CommitLog,
    warnings: Vec<String>,
    deleted: u64,
}

impl<'s> Transaction<'s> {
    /// Locks `store` and tidies it at `now` (the end of compactions' grace periods).
    pub fn begin(store: &'s Store, now: i64) -> Result<Transaction<'s>, StoreError> {
        let lock = store.lock()?;
        super::remote::refresh(store)?;
        let log = store.log()?;
        // A torn newest commit (power loss) is replaced by this transaction; a damaged commit
        // with valid ones after it, or one that reads well but does not chain, is evidence of
        // tampering and is left alone with every file it names.
        if log.damaged_before_end() {
            return Err(StoreError::LogDamaged {
                store: store.root().to_owned(),
                why: log.warnings.join("; "),
            });
        }
        let mut warnings = log.warnings.clone();
        if store.remote().is_some() {
            // On object storage orphans are swept by compaction, once old enough (see
            // `publish`); here only the cache's leftovers go, and a checkpoint a stopped
            // writer did not upload comes back.
            super::publish::clear_stale_staging(store);
            if let Err(e) = super::publish::restore_checkpoint(store, &log) {
                warnings.push(format!(
                    "could not put back the checkpoint of commit {}: {e}",
                    log.head().map_or(0, |h| h.commit.seq)
                ));
            }
        } else {
            tidy_local(store, &log, &lock, &mut warnings)?;
        }
        let mut tx = Transaction {
            store,
            lock,
            log,
            warnings,
            deleted: 0,
        };
        tx.delete_replaced(now);
        Ok(tx)
    }

    /// [`Transaction::begin`], waiting up to [`BRIEF_WAIT`] for a writer that holds the lock
    /// briefly (a detection run recording its findings) and failing after it: ingest and
    /// compaction.
    pub fn begin_soon(store: &'s Store, now: i64) -> Result<Transaction<'s>, StoreError> {
        Transaction::begin_within(store, now, BRIEF_WAIT, || {})
    }

    /// [`Transaction::begin`], waiting up to `wait` while another process holds the lock
    /// (`waiting` is called once if it has to): for writers that run beside ingest, such as
    /// detection recording its findings.
    pub fn begin_within(
        store: &'s Store,
        now: i64,
        wait: std::time::Duration,
        waiting: impl FnOnce(),
    ) -> Result<Transaction<'s>, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        let mut waiting = Some(waiting);
        loop {
            match Transaction::begin(store, now) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    if let Some(f) = waiting.take() {
                        f();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// Files replaced by compactions whose grace period is over at `now`. A failure must not stop
    /// the write (audit logs must still be stored): it is a warning, and retried next time.
    fn delete_replaced(&mut self, now: i64) {
        match cleanup::delete_replaced(self.store, &mut self.log.state, now, &self.lock) {
            Ok(n) => self.deleted += n,
            Err(e) => self.warnings.push(format!(
                "could not delete files replaced by compaction: {e}"
            )),
        }
    }

    /// The store it writes to.
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// The log as it was when the transaction began (nobody else can change it meanwhile).
    pub fn log(&self) -> &CommitLog {
        &self.log
    }

    /// The sequence number the commit will have.
    pub fn seq(&self) -> u64 {
        self.log.next_seq()
    }

    /// What tidying up (and, after a commit, deleting) had to say.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Replaced files deleted so far (data and rollups).
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    /// Writes the commit created at `created` (nanoseconds): the store changes at the rename of
    /// its file. On an error the commit may or may not be on disk; the staged files are left
    /// for the next `begin`, which keeps them (published) or sets them aside (not published).
    pub fn commit(&mut self, changes: Changes, created: i64) -> Result<Committed, StoreError> {
        let seq = self.seq();
        let remote = self.store.remote().is_some();
        let staged = super::publish::staged_files(&changes);
        let previous_held = self.log.state.held.as_ref().map(|h| h.path.clone());
        let mut commit = Commit {
            seq,
            prev: self.log.head().map(|c| c.hash.clone()),
            created: rfc3339(created),
            schema_version: SCHEMA_VERSION,
            files: changes.files,
            rejects: changes.rejects,
            inputs: changes.inputs,
            counts: changes.counts,
            removed: changes.removed,
            keep_removed_until: changes.keep_removed_until.map(rfc3339),
            held: changes.held,
            held_discarded: changes.held_discarded,
            findings: changes.findings,
            checkpoint: None,
        };
        // The state after this commit, checkpointed in it when one is due (staged before the
        // commit like its data files, so the commit can name it with its hash).
        let mut checkpointed = None;
        let mut checkpoint_bytes = None;
        let every = self.store.checkpoint_every();
        if self.log.checkpoint_due(every) || (changes.checkpoint && every > 0) {
            let mut next = self.log.state.clone();
            next.apply(&commit);
            next.lists_findings = true;
            // A checkpoint only saves readers time: failing to write one must not stop audit
            // logs from being stored. On object storage it goes up after the commit.
            let written = if remote {
                let (bytes, named) = super::checkpoint::encode(&next);
                checkpoint_bytes = Some(bytes);
                Ok(named)
            } else {
                super::checkpoint::write(self.store.root(), &next)
            };
            match written {
                Ok(named) => {
                    commit.checkpoint = Some(named);
                    checkpointed = Some(next);
                }
                Err(e) => self.warnings.push(format!(
                    "could not write the checkpoint of commit {seq} (the commit is made without it): {e}"
                )),
            }
        }
        let (head, bytes) = if remote {
            let bytes = super::commit::encode(&commit);
            let cached = super::publish::publish(self.store, seq, &bytes, &staged)?;
            self.warnings.extend(cached);
            if let Some(b) = checkpoint_bytes {
                if let Err(e) = super::publish::put_checkpoint(self.store, seq, b) {
                    self.warnings.push(format!(
                        "could not upload the checkpoint of commit {seq} (the next write puts it back): {e}"
                    ));
                }
            }
            // The held state this commit replaces is spent (a local store deletes it at the
            // next write; here nothing lists the folder).
            // Only an ingest replaces the held state (findings, verdicts and compactions
            // leave the live one in place).
            let spent_held = previous_held.filter(|p| {
                commit.is_ingest() && commit.held.as_ref().is_none_or(|n| n.path != *p)
            });
            if let Some(spent) = spent_held {
                if let Err(e) = super::publish::delete(self.store, std::slice::from_ref(&spent)) {
                    self.warnings.push(format!(
                        "could not delete the spent held-record file {spent}: {e}"
                    ));
                }
            }
            (hex::encode(Sha256::digest(&bytes)), bytes.len() as u64)
        } else {
            crate::fault::crash_point("before_commit");
            write_commit(self.store.root(), &commit)?
        };
        let removes = !commit.removed.is_empty();
        let wrote_checkpoint = checkpointed.is_some();
        self.log.max_listed = seq;
        self.log.push(
            LoggedCommit {
                commit,
                hash: head.clone(),
            },
            bytes,
            checkpointed,
        );
        if wrote_checkpoint {
            if let Err(e) = cleanup::remove_superseded_checkpoints(
                self.store,
                seq,
                super::checkpoint::CHECKPOINTS_KEPT,
                &self.lock,
            ) {
                self.warnings
                    .push(format!("could not delete superseded checkpoints: {e}"));
            }
        }
        if removes {
            // A removal without grace (`vigil compact --grace 0s`) takes effect at once.
            self.delete_replaced(created);
        }
        Ok(Committed { seq, head })
    }
}

/// What a crash can leave in a local store, tidied by the next writer under the lock: files no
/// commit lists set aside, checkpoints numbered past the log set aside, spent held states
/// deleted.
fn tidy_local(
    store: &Store,
    log: &CommitLog,
    lock: &WriteLock,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    let orphans = cleanup::set_aside_orphans(store, log, lock)?;
    if !orphans.is_empty() {
        warnings.push(format!(
            "set aside {} file(s) that no commit lists in {}/ (left by an interrupted run, or by a deleted commit: see vigil verify; delete them once you know which)",
            orphans.len(),
            super::QUARANTINE_DIR
        ));
    }
    match cleanup::tidy_checkpoints(store, log, lock) {
        Ok((_, set_aside)) if !set_aside.is_empty() => warnings.push(format!(
            "set aside {} checkpoint(s) numbered after the newest commit in {}/ (commits after it were deleted: see vigil verify)",
            set_aside.len(),
            super::QUARANTINE_DIR
        )),
        Ok(_) => {}
        Err(e) => warnings.push(format!(
            "could not tidy the checkpoints of an interrupted run: {e}"
        )),
    }
    // Held states older than the live one are spent (a crash can leave one behind).
    if let Err(e) = super::held::remove_stale(store, log) {
        warnings.push(format!("could not delete spent held-record files: {e}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long-running writer (the service) commits many times under one lock: each commit
    /// chains to the one before, and no other writer gets in meanwhile.
    #[test]
    fn commits_of_one_transaction_chain_and_hold_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut tx = Transaction::begin(&store, 0).unwrap();
        assert!(matches!(
            Transaction::begin(&store, 0),
            Err(StoreError::Locked(_))
        ));
        let first = tx.commit(Changes::default(), 1_000).unwrap();
        let second = tx.commit(Changes::default(), 2_000).unwrap();
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(tx.seq(), 3);
        drop(tx);
        let log = store.log().unwrap();
        assert_eq!(log.commits.len(), 2);
        assert_eq!(
            log.commits[1].commit.prev.as_deref(),
            Some(first.head.as_str())
        );
        assert_eq!(log.head().unwrap().hash, second.head);
        assert!(log.warnings.is_empty());
        // The lock went with the transaction.
        assert_eq!(Transaction::begin(&store, 0).unwrap().seq(), 3);
    }
}

//! Recording a detection run in the findings history, under the store's write lock, which a
//! [`Recorder`] holds until it is dropped: the caller writes the alerts it recorded to the
//! outbox before dropping it (and sends them after), so a second run cannot see an alert
//! recorded and not yet queued and queue it again.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use thiserror::Error;

use super::triage::{self, Alerting, Plan};
use super::{merge, migrate, query, stage, ts, FindingRow};
use crate::detect::Finding;
use crate::query::findings_table as table;
use crate::store::transaction::{Changes, Transaction};
use crate::store::{Store, StoreError};

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the findings history: {0}")]
    History(String),
    #[error("{0}")]
    Clock(String),
}

impl From<datafusion::error::DataFusionError> for RecordError {
    fn from(e: datafusion::error::DataFusionError) -> RecordError {
        RecordError::History(e.to_string())
    }
}

/// A writer of the findings history.
pub struct Recorder<'s> {
    store: &'s Store,
    tx: Transaction<'s>,
    now: i64,
    memory_limit: usize,
    /// Alert records migrated from the outbox by [`Recorder::begin`].
    pub migrated: usize,
}

impl<'s> Recorder<'s> {
    /// Takes the store's write lock, waiting up to `wait` for another writer (an ingest) to
    /// finish (`waiting` is called if it has to). A store that has never recorded findings
    /// first takes over the alert state the outbox kept (`migrate`), in a commit of its own.
    /// `memory_limit` is `[query] memory_limit`; `outbox` the alert outbox's directory.
    pub fn begin(
        store: &'s Store,
        memory_limit: usize,
        outbox: &std::path::Path,
        wait: Duration,
        waiting: impl FnOnce(),
    ) -> Result<Recorder<'s>, RecordError> {
        let clock = || crate::clock::now_nanos().map_err(RecordError::Clock);
        let tx = Transaction::begin_within(store, clock()?, wait, waiting)?;
        // The time of the rows: after the wait, not before it.
        let mut r = Recorder {
            store,
            tx,
            now: clock()?,
            memory_limit,
            migrated: 0,
        };
        if r.tx.log().state.findings.is_empty() {
            let rows = migrate::from_outbox(outbox);
            r.migrated = rows.len();
            r.commit(rows)?;
        }
        if let Some(files) = merge::due(&r.tx.log().state) {
            let (merged, removed) = merge::merge(store, r.tx.seq(), r.now, &files)?;
            r.tx.commit(
                Changes {
                    findings: Some(merged),
                    removed,
                    ..Changes::default()
                },
                r.now,
            )?;
        }
        Ok(r)
    }

    /// The time the rows are recorded at.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// What cleaning up the store at the start of the transaction had to say.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.tx.take_warnings()
    }

    /// The history as the store holds it now.
    pub async fn history(&self) -> Result<SessionContext, RecordError> {
        Ok(table::session(self.store, self.tx.log(), self.memory_limit).await?)
    }

    /// Decides and records what the run that found `found` (sorted) adds to the history (see
    /// `triage`); `alerting` when the run notifies.
    pub async fn record(
        &mut self,
        found: &[Finding],
        alerting: Option<Alerting>,
    ) -> Result<Plan, RecordError> {
        // Unique to this store's history: a store rebuilt, or another store sharing the
        // outbox, never reuses an id the outbox already holds.
        let alert_id = format!(
            "alert-{:06}-{}",
            self.tx.seq(),
            self.tx
                .log()
                .head()
                .map_or("0", |c| &c.hash[..c.hash.len().min(12)])
        );
        let history = self.history().await?;
        let mut plan = triage::plan(&history, found, self.now, alerting, &alert_id)
            .await
            .map_err(RecordError::History)?;
        self.commit(std::mem::take(&mut plan.rows))?;
        crate::fault::crash_point("after_findings_commit");
        Ok(plan)
    }

    /// Appends `rows` in one commit (none when there are no rows).
    pub fn commit(&mut self, rows: Vec<FindingRow>) -> Result<(), RecordError> {
        let seq = self.tx.seq();
        let Some(file) = stage(self.store, seq, self.now, rows)? else {
            return Ok(());
        };
        let first = self.tx.log().state.findings.is_empty();
        self.tx.commit(
            Changes {
                findings: Some(file),
                checkpoint: first,
                ..Changes::default()
            },
            self.now,
        )?;
        Ok(())
    }

    /// Every alert recorded at or after `since`, by id, with its findings (sorted as detection
    /// sorts them): what must be in the outbox. Rows no detector of this vigil made, or migrated
    /// without their findings, are left out.
    pub async fn alerts_since(
        &self,
        since: i64,
    ) -> Result<BTreeMap<String, Vec<Finding>>, RecordError> {
        let rows = query(
            &self.history().await?,
            &format!(
                "SELECT * FROM finding_history WHERE status = 'alerted' AND alert_id IS NOT NULL AND status_at >= {}",
                ts(since)
            ),
        )
        .await
        .map_err(RecordError::History)?;
        let mut out: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
        for r in rows {
            if let (Some(id), Some(f)) = (r.alert_id.clone(), r.to_finding()) {
                out.entry(id).or_default().push(f);
            }
        }
        for findings in out.values_mut() {
            crate::detect::sort_findings(findings);
        }
        Ok(out)
    }
}

//! The findings history: every finding a `vigil detect` run produced and every status it was
//! given since, as Parquet files of the store (`findings/date=<D>/<seq>.parquet`), each committed
//! through the write transaction like data files, so verify checks them and a crash leaves no
//! half-recorded run.
//!
//! Rows are only ever appended. A finding is identified by (`key`, `window_start`, `window_end`):
//! recording it again adds nothing, and a status change (alerted, acknowledged, benign, ...)
//! appends a row whose `commit_seq` is higher, so the latest row of a finding is its status
//! (table `findings` in `vigil sql`; `finding_history` has every row). The table is the one
//! source of truth for alert suppression and for analysts' verdicts: the outbox only delivers.

pub mod merge;
pub mod migrate;
pub mod record;
pub mod row;
pub mod triage;
pub mod verdict;

use std::fmt;

use datafusion::prelude::SessionContext;

pub use row::FindingRow;

use crate::store::commit::FindingsFile;
use crate::store::{Store, StoreError, FINDINGS_DIR};

/// `status_by` of the rows detection writes.
pub const VIGIL: &str = "vigil";

/// What became of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Recorded; not alerted (below `[alerts] min_severity`, or a run without `--notify`).
    New,
    /// Sent in an alert (`alert_id` names it).
    Alerted,
    /// Not sent: the same keys were sent within `suppress_for`, or a benign verdict covers it.
    Suppressed,
    /// An analyst has seen it.
    Acknowledged,
    /// An analyst judged it benign: the key is suppressed until `status_until`.
    Benign,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Alerted,
        Status::Suppressed,
        Status::Acknowledged,
        Status::Benign,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Alerted => "alerted",
            Status::Suppressed => "suppressed",
            Status::Acknowledged => "acknowledged",
            Status::Benign => "benign",
        }
    }

    pub fn parse(text: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "'{text}' is not a finding status ({})",
                    Status::ALL.map(Status::as_str).join(", ")
                )
            })
    }

    /// An analyst has decided about it: detection never changes it again.
    pub fn is_verdict(self) -> bool {
        matches!(self, Status::Acknowledged | Status::Benign)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `rows` as the findings file of commit `seq` made at `now` (each row's `commit_seq`
/// set to `seq`), staged for the transaction to commit; `None` when there is nothing to record.
pub fn stage(
    store: &Store,
    seq: u64,
    now: i64,
    mut rows: Vec<FindingRow>,
) -> Result<Option<FindingsFile>, StoreError> {
    if rows.is_empty() {
        return Ok(None);
    }
    for r in &mut rows {
        r.commit_seq = seq;
    }
    let relative = file_name(store, seq, now);
    let batch = row::to_batch(&rows).map_err(|e| StoreError::Parquet {
        path: store.absolute(&relative),
        message: e.to_string(),
    })?;
    crate::store::writer::write_table(store, relative, &batch).map(Some)
}

/// `findings/date=<D>/<seq>.parquet`: the findings file of commit `seq` made at `now`.
pub fn file_name(store: &Store, seq: u64, now: i64) -> String {
    format!(
        "{FINDINGS_DIR}/date={}/{}.parquet",
        &crate::timerange::rfc3339(now)[..10],
        store.file_stem(seq)
    )
}

/// The rows a query over `findings` or `finding_history` returns.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<FindingRow>, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(row::from_batch(b)?);
    }
    Ok(out)
}

/// A timestamp literal for SQL text (vigil's own instants, never user text).
pub fn ts(nanos: i64) -> String {
    format!("TIMESTAMP '{}'", crate::timerange::rfc3339(nanos))
}

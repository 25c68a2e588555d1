//! An analyst's verdict on a finding key (`vigil findings ack|benign KEY`): one row per finding
//! with that key, appended, so the history keeps who decided what and when.

use datafusion::prelude::SessionContext;

use super::{query, FindingRow, Status};
use crate::detect::finding::sql_str;

/// Who gives a verdict and why.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub status: Status,
    pub by: String,
    pub reason: Option<String>,
    /// Until when a benign verdict holds (nanoseconds; none: for good).
    pub until: Option<i64>,
}

/// The rows that record `verdict` at `now` on every finding with `key`; an error naming the key
/// when the history has none. Findings that already carry the verdict are left as they are
/// (a benign verdict given again replaces the reason and expiry).
pub async fn rows(
    history: &SessionContext,
    key: &str,
    verdict: &Verdict,
    now: i64,
) -> Result<Vec<FindingRow>, String> {
    let found = query(
        history,
        &format!(
            "SELECT * FROM findings WHERE key = {} ORDER BY window_start",
            sql_str(key)
        ),
    )
    .await?;
    if found.is_empty() {
        return Err(format!(
            "no finding has the key '{key}' (vigil findings list shows the keys; a finding is recorded by vigil detect)"
        ));
    }
    Ok(found
        .iter()
        .filter(|r| match verdict.status {
            // An acknowledgement never undoes a benign verdict.
            Status::Acknowledged => !r.status.is_verdict(),
            _ => {
                r.status != verdict.status
                    || r.status_reason != verdict.reason
                    || r.status_until != verdict.until
            }
        })
        .map(|r| {
            let mut row = r.with_status(verdict.status, now);
            row.status_by = Some(verdict.by.clone());
            row.status_reason = verdict.reason.clone();
            row.status_until = verdict.until;
            row
        })
        .collect())
}

//! One detection run's findings into the history, and its alert (with any a crash left
//! unqueued) into the outbox, under the store's write lock: what `vigil detect` and
//! `vigil serve` share. Sending is [`super::send`]'s, after the lock.

use std::time::Duration;

use thiserror::Error;

use super::{queue, Alert, Queued};
use crate::config::Config;
use crate::detect::Finding;
use crate::findings::record::{RecordError, Recorder};
use crate::findings::triage::{Alerting, Plan};
use crate::mail::MailError;
use crate::store::Store;
use crate::timerange::NANOS_PER_DAY;

/// How far back a run looks for alerts recorded and never queued (a crash between the two):
/// `suppress_for`, and never less than this, so a short `suppress_for` loses none.
const RECOVER_FOR: i64 = 7 * NANOS_PER_DAY;

#[derive(Debug, Error)]
pub enum DeliverError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Queue(#[from] MailError),
}

/// What recording one run did.
#[derive(Debug)]
pub struct Recorded {
    pub plan: Plan,
    /// What went to the outbox (when the run notifies).
    pub queued: Option<Queued>,
    /// What tidying the store at the start of the transaction had to say.
    pub warnings: Vec<String>,
    /// Alert records taken over from an outbox that predates the findings history.
    pub migrated: usize,
}

/// Records `findings` (sorted, found over `period`) and, with `notify`, queues the alerts they
/// make. Waits up to `wait` for another writer (`waiting` is called if it has to).
pub async fn record_and_queue(
    store: &Store,
    config: &Config,
    findings: &[Finding],
    period: &str,
    notify: bool,
    wait: Duration,
    waiting: impl FnOnce(),
) -> Result<Recorded, DeliverError> {
    let mut r = Recorder::begin(
        store,
        config.query.memory_limit,
        &config.outbox(store.root()),
        wait,
        waiting,
    )?;
    let warnings = r.take_warnings();
    let suppress_for = i64::try_from(config.alerts.suppress_for.as_nanos()).unwrap_or(i64::MAX);
    let alerting = notify.then_some(Alerting {
        min_severity: config.alerts.min_severity,
        suppress_for,
    });
    let plan = r.record(findings, alerting).await?;
    let queued = if notify {
        Some(queue_recorded(config, store, &r, &plan, period, suppress_for).await?)
    } else {
        None
    };
    Ok(Recorded {
        plan,
        queued,
        warnings,
        migrated: r.migrated,
    })
}

/// Writes this run's alert, and any alert an interrupted run recorded and never queued, to the
/// outbox (under the lock the recorder holds).
async fn queue_recorded(
    config: &Config,
    store: &Store,
    r: &Recorder<'_>,
    plan: &Plan,
    period: &str,
    suppress_for: i64,
) -> Result<Queued, DeliverError> {
    let since = r.now().saturating_sub(suppress_for.max(RECOVER_FOR));
    let recorded = r.alerts_since(since).await?;
    let alerts: Vec<Alert> = recorded
        .into_iter()
        .map(|(id, findings)| Alert {
            window: if id == plan.alert_id {
                period.to_owned()
            } else {
                recorded_period(&findings)
            },
            id,
            findings,
        })
        .collect();
    Ok(queue(config, store.root(), &alerts, r.now())?)
}

/// The period an earlier run's alert covers, from its findings' windows.
fn recorded_period(findings: &[Finding]) -> String {
    let start = findings.iter().map(|f| f.window_start.as_str()).min();
    let end = findings.iter().map(|f| f.window_end.as_str()).max();
    format!("{} to {}", start.unwrap_or("?"), end.unwrap_or("?"))
}

//! Running one slot of a `[[serve.schedule]]`: a report run queued as mail, a compaction, or
//! a verification mailed when it finds a problem. Mail goes to the outbox here (under an id
//! that names the schedule and the slot, so it is queued once) and is sent with the alerts.

use crate::config::Config;
use crate::mail::{self, Mail};
use crate::report::{self, catalog};
use crate::store::compact::{compact, CompactOptions};
use crate::store::Store;
use crate::timerange::{rfc3339, TimeRange};

use super::schedule::{Schedule, Task};

/// How long files a scheduled compaction replaces stay for queries that listed them (as
/// `vigil compact`'s default).
const COMPACT_GRACE: i64 = crate::timerange::NANOS_PER_HOUR;

/// What a task did, in a few words; `flagged` when it found a problem (and mailed it).
pub struct Ran {
    pub text: String,
    pub flagged: bool,
}

impl From<String> for Ran {
    fn from(text: String) -> Ran {
        Ran {
            text,
            flagged: false,
        }
    }
}

/// Runs `s` for `slot` (nanoseconds). An error means the task could not run (tried again).
pub async fn run(store: &Store, config: &Config, s: &Schedule, slot: i64) -> Result<Ran, String> {
    match &s.task {
        Task::Report {
            names,
            since,
            params,
            format,
        } => {
            let id = format!("report-{}-{}", s.name, rfc3339(slot));
            let outbox = config.outbox(store.root());
            if mail::alert_ids(&outbox).contains(&id) {
                return Ok(Ran::from("already queued".to_owned()));
            }
            let all = catalog::shipped()?;
            let since = i64::try_from(since.as_nanos()).unwrap_or(i64::MAX);
            let range = TimeRange {
                from: slot.saturating_sub(since),
                to: slot,
            };
            let ctx = crate::query::session(store, &config.query)
                .await
                .map_err(|e| e.to_string())?;
            let limits = config.query.limits();
            let evidence = report::evidence(&store.log().map_err(|e| e.to_string())?, range);
            let mut runs = Vec::new();
            for name in names {
                let r = catalog::find(&all, name)?;
                let mut run = report::run(&ctx, r, range, params, limits)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                run.evidence = evidence.clone();
                runs.push(run);
            }
            let rows: usize = runs.iter().map(|r| r.rows()).sum();
            let message =
                report::mail::message(&runs, s.email_to.clone(), &rfc3339(slot), *format, Some(id))
                    .map_err(|e| e.to_string())?;
            queue(store, config, &message)?;
            Ok(Ran::from(format!(
                "{} report(s), {rows} row(s), queued for {}",
                runs.len(),
                s.email_to.join(", ")
            )))
        }
        Task::Compact => {
            let store = store.clone();
            let now = crate::clock::now_nanos()?;
            let r = tokio::task::spawn_blocking(move || {
                compact(
                    &store,
                    &CompactOptions {
                        now,
                        grace_nanos: COMPACT_GRACE,
                        sources: Vec::new(),
                    },
                )
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            Ok(Ran::from(match r.commit {
                Some(seq) => format!(
                    "commit {seq}: {} file(s) merged into {}",
                    r.files_before, r.files_after
                ),
                None => "nothing to compact".into(),
            }))
        }
        Task::Verify => {
            let root = store.clone();
            let v = tokio::task::spawn_blocking(move || crate::store::verify::verify(&root, None))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if v.problems.is_empty() {
                return Ok(Ran::from(format!(
                    "valid: {} commit(s), {} file(s)",
                    v.commits, v.files
                )));
            }
            let to = if s.email_to.is_empty() {
                config.alerts.email_to.clone()
            } else {
                s.email_to.clone()
            };
            let text = format!(
                "vigil verify found {} problem(s) in the store {} at {}:\n\n{}\n\nRun `vigil verify` there for the details.\n",
                v.problems.len(),
                store.root().display(),
                rfc3339(slot),
                v.problems.join("\n")
            );
            let message = Mail {
                alert_id: Some(format!("verify-{}-{}", s.name, rfc3339(slot))),
                to: if to.is_empty() {
                    vec!["secops@localhost".to_owned()]
                } else {
                    to
                },
                subject: format!("vigil verify: {} problem(s) in the store", v.problems.len()),
                html: format!("<pre>{}</pre>", report::html::escape(&text)),
                text,
                attachments: Vec::new(),
            };
            queue(store, config, &message)?;
            Ok(Ran {
                text: format!("INVALID: {} problem(s) found, mailed", v.problems.len()),
                flagged: true,
            })
        }
    }
}

fn queue(store: &Store, config: &Config, message: &Mail) -> Result<(), String> {
    let outbox = config.outbox(store.root());
    if message
        .alert_id
        .as_ref()
        .is_some_and(|id| mail::alert_ids(&outbox).contains(id))
    {
        return Ok(());
    }
    mail::queue(config.smtp.as_ref(), &outbox, message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

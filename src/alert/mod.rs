//! Alerts: the findings of a `vigil detect --notify` run that are at or above
//! `[alerts] min_severity` and were not sent within `suppress_for`, grouped into one email per
//! run (by principal), through the same outbox as reports. Suppression state is the outbox itself
//! (every queued message records its findings' keys and time), so a re-run, a restart or a crash
//! after queueing never sends an alert twice, and an SMTP outage delays alerts without losing one.

mod render;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{AlertSettings, Config};
use crate::detect::Finding;
use crate::mail::{self, Delivered, Mail, MailError};

/// What `notify` did.
#[derive(Debug)]
pub struct Notified {
    /// Findings in the message (0: nothing new to send).
    pub sent_findings: usize,
    /// Findings left out because the same key was sent within `suppress_for`.
    pub suppressed: usize,
    /// Below `min_severity`.
    pub below_threshold: usize,
    /// Waiting messages from earlier runs that this run delivered.
    pub flushed: usize,
    pub delivered: Option<Delivered>,
    /// The webhook's outcome when `[alerts] webhook_url_env` is set and something was waiting
    /// to be posted (this run's findings or an earlier run's).
    pub webhook: Option<webhook::Posted>,
}

/// Keys sent (queued) after `since`, from the outbox.
fn recent_keys(outbox: &Path, since: i64) -> BTreeMap<String, i64> {
    let mut keys = BTreeMap::new();
    for env in mail::envelopes(outbox) {
        if env.queued_at >= since {
            for k in env.keys {
                let e = keys.entry(k).or_insert(env.queued_at);
                *e = (*e).max(env.queued_at);
            }
        }
    }
    keys
}

/// Whether every part of `f` was sent recently or is in this run's message already: a grouped
/// finding with one new part is sent again (the new part is news).
fn already_sent(f: &Finding, recent: &BTreeMap<String, i64>, send: &[&Finding]) -> bool {
    f.alert_keys()
        .iter()
        .all(|k| recent.contains_key(k) || send.iter().any(|s| s.alert_keys().contains(k)))
}

/// Sends what is new in `findings` (already sorted) as one message.
pub fn notify(
    config: &Config,
    store_root: &Path,
    findings: &[Finding],
    now: i64,
    window: &str,
) -> Result<Notified, MailError> {
    let outbox = mail::outbox_dir(config, store_root);
    let smtp = config.smtp.as_ref();
    let flushed = mail::flush_pending(smtp, &outbox)?;
    let settings = &config.alerts;
    let suppress = i64::try_from(settings.suppress_for.as_nanos()).unwrap_or(i64::MAX);
    let recent = recent_keys(&outbox, now.saturating_sub(suppress));
    let mut below = 0;
    let mut suppressed = 0;
    let mut send: Vec<&Finding> = Vec::new();
    for f in findings {
        if f.severity < settings.min_severity {
            below += 1;
        } else if already_sent(f, &recent, &send) {
            suppressed += 1;
        } else {
            send.push(f);
        }
    }
    let mut out = Notified {
        sent_findings: send.len(),
        suppressed,
        below_threshold: below,
        flushed: flushed.sent,
        delivered: None,
        webhook: None,
    };
    if !send.is_empty() {
        let message = message(settings, &send, window);
        out.delivered = Some(mail::deliver(smtp, &outbox, &message)?);
        if settings.webhook_url_env.is_some() {
            let body = serde_json::json!({
                "text": message.subject,
                "window": window,
                "findings": send,
            });
            webhook::queue(&outbox, now, &serde_json::to_vec(&body).unwrap_or_default()).map_err(
                |source| MailError::Outbox {
                    path: outbox.join("webhook"),
                    source,
                },
            )?;
        }
    }
    if let Some(var) = &settings.webhook_url_env {
        let url = std::env::var(var).map_err(|_| {
            format!("environment variable {var} ([alerts] webhook_url_env) is not set")
        });
        out.webhook = webhook::flush(&outbox, url);
    }
    Ok(out)
}

/// The alert email for the findings to send.
fn message(settings: &AlertSettings, send: &[&Finding], window: &str) -> Mail {
    let to = if settings.email_to.is_empty() {
        vec!["secops@localhost".to_owned()]
    } else {
        settings.email_to.clone()
    };
    Mail {
        keys: send
            .iter()
            .flat_map(|f| f.alert_keys().iter().cloned())
            .collect(),
        to,
        subject: render::subject(send),
        text: render::text(send, window),
        html: render::html(send, window),
        attachments: vec![mail::Attachment {
            filename: "findings.json".into(),
            content_type: "application/json",
            body: serde_json::to_vec_pretty(send).unwrap_or_default(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(key: &str, parts: &[&str]) -> Finding {
        let mut f = crate::detect::Finding::for_tests(key);
        f.part_keys = parts.iter().map(|p| (*p).to_owned()).collect();
        f
    }

    #[test]
    fn a_grouped_finding_is_suppressed_only_when_every_part_was_sent() {
        let recent: BTreeMap<String, i64> =
            [("VG001:a:s1".to_owned(), 1), ("VG001:a:s2".to_owned(), 1)].into();
        // The same two secrets again, in a window that overlaps the last one: suppressed.
        assert!(already_sent(
            &finding("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2"]),
            &recent,
            &[]
        ));
        // A third secret joined the group: sent, though its first secret (the key) was sent.
        assert!(!already_sent(
            &finding("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2", "VG001:a:s3"]),
            &recent,
            &[]
        ));
        // The first secret slid out of the window: the rest were sent, nothing new.
        assert!(already_sent(
            &finding("VG001:a:s2", &["VG001:a:s2"]),
            &recent,
            &[]
        ));
        // A plain finding goes by its key.
        assert!(!already_sent(&finding("VG009:b", &[]), &recent, &[]));
        let sent = finding("VG009:b", &[]);
        assert!(already_sent(&finding("VG009:b", &[]), &recent, &[&sent]));
    }
}

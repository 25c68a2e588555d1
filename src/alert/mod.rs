//! Alerts: delivery of the alerts the findings history decided (`crate::findings::triage`), one
//! email per alert (grouped by principal) and a webhook post when configured, through the
//! durable outbox, so an SMTP outage delays alerts without losing one. Which findings are sent
//! and which are suppressed is the findings history's to say, not the outbox's: the history
//! records an alert (with its id) before it is queued here, and a run that finds a recorded
//! alert missing from the outbox (a crash between the two) queues it then.

pub mod deliver;
mod render;
pub mod webhook;

use std::path::Path;

use crate::config::{AlertSettings, Config};
use crate::detect::Finding;
use crate::mail::{self, Mail, MailError};

/// An alert to deliver: its id in the findings history, its findings (sorted), and the period
/// they were found in.
#[derive(Debug)]
pub struct Alert {
    pub id: String,
    pub findings: Vec<Finding>,
    pub window: String,
}

/// What `queue` did.
#[derive(Debug, Default)]
pub struct Queued {
    /// Alerts queued by this run (this run's, and any a crash kept from the outbox).
    pub alerts: usize,
    /// Messages waiting in `pending/` under these names, for `send`.
    pub pending: Vec<String>,
    /// Without `[smtp]`: the `.eml` files written.
    pub written: Vec<std::path::PathBuf>,
}

/// Writes each of `alerts` that is not in the outbox yet (by id) to the outbox, as a webhook
/// body (when `[alerts] webhook_url_env` is set) and then as an email, without sending anything:
/// quick and local, done under the store's lock, so that no other run sees an alert recorded
/// and not queued. The webhook body goes first: an alert whose email is in the outbox has been
/// queued whole, and one turned on later does not post alerts mailed before it existed.
pub fn queue(
    config: &Config,
    store_root: &Path,
    alerts: &[Alert],
    now: i64,
) -> Result<Queued, MailError> {
    let outbox = config.outbox(store_root);
    let settings = &config.alerts;
    let mailed = mail::alert_ids(&outbox);
    let posted = webhook::alert_ids(&outbox);
    let mut out = Queued::default();
    for alert in alerts {
        let send: Vec<&Finding> = alert.findings.iter().collect();
        if send.is_empty() || mailed.contains(&alert.id) {
            continue;
        }
        let message = message(settings, &send, &alert.window, &alert.id);
        if settings.webhook_url_env.is_some() && !posted.contains(&alert.id) {
            let body = serde_json::json!({
                "text": message.subject,
                "window": alert.window,
                "alert_id": alert.id,
                "findings": send,
            });
            webhook::queue(
                &outbox,
                now,
                &alert.id,
                &serde_json::to_vec(&body).unwrap_or_default(),
            )
            .map_err(|source| MailError::Outbox {
                path: outbox.join("webhook"),
                error: source,
            })?;
        }
        match mail::queue(config.smtp.as_ref(), &outbox, &message)? {
            mail::Queued::Pending(name) => out.pending.push(name),
            mail::Queued::Local(path) => out.written.push(path),
        }
        out.alerts += 1;
    }
    Ok(out)
}

/// What `send` did.
#[derive(Debug)]
pub struct Sent {
    pub mail: mail::Flushed,
    /// The webhook's outcome when `[alerts] webhook_url_env` is set and something was waiting.
    pub webhook: Option<webhook::Posted>,
}

/// Sends every message and webhook body waiting in the outbox (this run's and earlier runs'):
/// network I/O, done after the store's lock is released.
pub fn send(config: &Config, store_root: &Path) -> Result<Sent, MailError> {
    let outbox = config.outbox(store_root);
    let flushed = mail::flush_pending(config.smtp.as_ref(), &outbox)?;
    let webhook = config.alerts.webhook_url_env.as_ref().and_then(|var| {
        let url = std::env::var(var).map_err(|_| {
            format!("environment variable {var} ([alerts] webhook_url_env) is not set")
        });
        webhook::flush(&outbox, url)
    });
    Ok(Sent {
        mail: flushed,
        webhook,
    })
}

/// The alert email for the findings to send.
fn message(settings: &AlertSettings, send: &[&Finding], window: &str, id: &str) -> Mail {
    let to = if settings.email_to.is_empty() {
        vec!["secops@localhost".to_owned()]
    } else {
        settings.email_to.clone()
    };
    Mail {
        alert_id: Some(id.to_owned()),
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

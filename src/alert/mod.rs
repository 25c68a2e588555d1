//! Alerts: delivery of the alerts the findings history decided (`crate::findings::triage`), one
//! email per alert (grouped by principal) and a webhook post when configured, through the
//! durable outbox, so an SMTP outage delays alerts without losing one. Which findings are sent
//! and which are suppressed is the findings history's to say, not the outbox's: the history
//! records an alert (with its id) before it is queued here, and a run that finds a recorded
//! alert missing from the outbox (a crash between the two) queues it then.

mod render;
pub mod webhook;

use std::path::Path;

use crate::config::{AlertSettings, Config};
use crate::detect::Finding;
use crate::mail::{self, Delivered, Mail, MailError};

/// An alert to deliver: its id in the findings history, its findings (sorted), and the period
/// they were found in.
#[derive(Debug)]
pub struct Alert {
    pub id: String,
    pub findings: Vec<Finding>,
    pub window: String,
}

/// What `deliver` did.
#[derive(Debug, Default)]
pub struct Notified {
    /// Alerts queued by this run (this run's, and any a crash kept from the outbox).
    pub queued: usize,
    /// Waiting messages from earlier runs that this run delivered.
    pub flushed: usize,
    /// What became of each message queued now.
    pub delivered: Vec<Delivered>,
    /// The webhook's outcome when `[alerts] webhook_url_env` is set and something was waiting
    /// to be posted (this run's findings or an earlier run's).
    pub webhook: Option<webhook::Posted>,
}

/// Flushes what earlier runs left waiting, then queues and sends each of `alerts` that is not
/// in the outbox yet (by id), as email and, when configured, as a webhook post.
pub fn deliver(
    config: &Config,
    store_root: &Path,
    alerts: &[Alert],
    now: i64,
) -> Result<Notified, MailError> {
    let outbox = mail::outbox_dir(config, store_root);
    let smtp = config.smtp.as_ref();
    let flushed = mail::flush_pending(smtp, &outbox)?;
    let settings = &config.alerts;
    let mut out = Notified {
        flushed: flushed.sent,
        ..Notified::default()
    };
    let mailed = mail::alert_ids(&outbox);
    let posted = webhook::alert_ids(&outbox);
    for alert in alerts {
        let send: Vec<&Finding> = alert.findings.iter().collect();
        if send.is_empty() {
            continue;
        }
        let message = message(settings, &send, &alert.window, &alert.id);
        let mut queued = false;
        if !mailed.contains(&alert.id) {
            out.delivered.push(mail::deliver(smtp, &outbox, &message)?);
            queued = true;
        }
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
                source,
            })?;
            queued = true;
        }
        out.queued += usize::from(queued);
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

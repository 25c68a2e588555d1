//! Mail for reports and alerts: one message shape (HTML with a plain-text alternative, files
//! attached), delivered over SMTP with lettre, or written to the outbox.
//!
//! Outbox: without `[smtp]`, messages are written as `.eml` files to
//! `<outbox>/local/` and never sent. With `[smtp]`, each message is first written durably to
//! `<outbox>/pending/` (the message and its envelope), then sent; sent messages move to
//! `<outbox>/sent/`; a message that could not be sent stays pending and is retried by every later
//! run that sends mail, so an outage delays mail but loses none.

pub mod settings;
mod smtp;

use std::path::{Path, PathBuf};

use lettre::message::header::ContentType;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fsutil::write_atomic;
pub use settings::SmtpSettings;

pub use smtp::send_raw;

#[derive(Debug, Error)]
pub enum MailError {
    #[error("'{0}' is not an email address")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("outbox {path}: {error}")]
    Outbox {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Password(String),
    #[error("SMTP {server}: {reason}")]
    Smtp { server: String, reason: String },
}

pub struct Attachment {
    pub filename: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A message before addressing details are checked.
pub struct Mail {
    /// The alert this message carries (none for reports): the findings history names it, and a
    /// run that finds an alert recorded but not in the outbox (a crash between the two) queues
    /// it again.
    pub alert_id: Option<String>,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted by the SMTP server.
    Sent,
    /// Not sent now (the reason); waits in the outbox for the next run.
    Queued { path: PathBuf, reason: String },
    /// No `[smtp]`: written as a local `.eml` file.
    Written(PathBuf),
}

/// The sender and recipients, stored beside every message in the outbox (`<stem>.json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
    /// Alert keys, as vigil wrote them before the findings history kept alert state; read once
    /// to migrate that state (`findings::migrate`), never written now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// When the message entered the outbox (nanoseconds UTC).
    #[serde(default)]
    pub queued_at: i64,
}

fn mailbox(text: &str) -> Result<Mailbox, MailError> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|_| MailError::Address(text.to_owned()))
}

/// Splits `a@x,b@y` and checks every address.
pub fn parse_recipients(list: &str) -> Result<Vec<String>, MailError> {
    let to: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if to.is_empty() {
        return Err(MailError::Address(list.to_owned()));
    }
    for t in &to {
        mailbox(t)?;
    }
    Ok(to)
}

/// Keeps header text on one line: log content never adds a header.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The RFC 5322 bytes of `mail` from `from`.
fn build(mail: &Mail, from: &str) -> Result<(Envelope, Vec<u8>), MailError> {
    let from_box = mailbox(from)?;
    // A Message-ID of our own lets receivers (and tests) tell a retry from a new message.
    let mut builder = Message::builder()
        .message_id(None)
        .from(from_box.clone())
        .subject(one_line(&mail.subject));
    let mut to = Vec::new();
    for t in &mail.to {
        let b = mailbox(t)?;
        to.push(b.email.to_string());
        builder = builder.to(b);
    }
    let mut body = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(
        mail.text.clone(),
        mail.html.clone(),
    ));
    for a in &mail.attachments {
        let ct = ContentType::parse(a.content_type).map_err(|e| MailError::Build(e.to_string()))?;
        let part: SinglePart =
            LettreAttachment::new(one_line(&a.filename)).body(a.body.clone(), ct);
        body = body.singlepart(part);
    }
    let message = builder
        .multipart(body)
        .map_err(|e| MailError::Build(e.to_string()))?;
    let envelope = Envelope {
        from: from_box.email.to_string(),
        to,
        keys: Vec::new(),
        alert_id: mail.alert_id.clone(),
        queued_at: crate::clock::now_nanos().unwrap_or(0),
    };
    Ok((envelope, message.formatted()))
}

/// A file name that sorts by time and names the alert or the subject:
/// `20260306T140500.123456Z-weekly-report`. The wall clock, not a fixed `VIGIL_NOW`, so two
/// messages never take one name.
fn file_stem(subject: &str, alert_id: Option<&str>) -> String {
    let now = crate::clock::wall_nanos();
    let stamp = chrono::DateTime::from_timestamp_nanos(now).format("%Y%m%dT%H%M%S%.6fZ");
    let slug: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .take(8)
        .collect::<Vec<_>>()
        .join("-");
    match alert_id {
        Some(id) => format!("{stamp}-{id}"),
        None => format!(
            "{stamp}-{}",
            if slug.is_empty() { "message" } else { &slug }
        ),
    }
}

fn outbox_io(path: &Path) -> impl FnOnce(std::io::Error) -> MailError + '_ {
    move |source| MailError::Outbox {
        path: path.to_owned(),
        error: source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), MailError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(outbox_io(dir))?;
    }
    write_atomic(path, bytes).map_err(outbox_io(path))
}

/// Delivers `mail`: sends it when `[smtp]` is set (queueing it when that fails), else writes it
/// to `<outbox>/local/`.
pub fn deliver(
    smtp: Option<&SmtpSettings>,
    outbox: &Path,
    mail: &Mail,
) -> Result<Delivered, MailError> {
    let (queued, envelope, bytes) = stage(smtp, outbox, mail)?;
    let (Some(settings), Queued::Pending(stem)) = (smtp, &queued) else {
        return Ok(match queued {
            Queued::Local(path) => Delivered::Written(path),
            Queued::Pending(stem) => Delivered::Queued {
                path: outbox.join("pending").join(format!("{stem}.eml")),
                reason: "no [smtp] settings".into(),
            },
        });
    };
    match send_raw(settings, &envelope.from, &envelope.to, &bytes) {
        Ok(()) => {
            mark_sent(outbox, stem)?;
            Ok(Delivered::Sent)
        }
        Err(e) => Ok(Delivered::Queued {
            path: outbox.join("pending").join(format!("{stem}.eml")),
            reason: e.to_string(),
        }),
    }
}

/// Where `queue` put a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// No `[smtp]`: the `.eml` file written to `<outbox>/local/`, never sent.
    Local(PathBuf),
    /// Waiting in `<outbox>/pending/` under this name, sent by [`flush_pending`].
    Pending(String),
}

/// Writes `mail` durably to the outbox without sending it: to `pending/` when `[smtp]` is set,
/// else to `local/`. Quick and local, so a writer can do it under the store's lock.
pub fn queue(smtp: Option<&SmtpSettings>, outbox: &Path, mail: &Mail) -> Result<Queued, MailError> {
    stage(smtp, outbox, mail).map(|(queued, _, _)| queued)
}

fn stage(
    smtp: Option<&SmtpSettings>,
    outbox: &Path,
    mail: &Mail,
) -> Result<(Queued, Envelope, Vec<u8>), MailError> {
    let from = smtp.map_or("vigil@localhost", |s| s.from.as_str());
    let (envelope, bytes) = build(mail, from)?;
    let stem = file_stem(&mail.subject, mail.alert_id.as_deref());
    let queued = if smtp.is_some() {
        let pending = outbox.join("pending");
        // The message first, then its envelope: a pending entry counts only with both.
        write_file(&pending.join(format!("{stem}.eml")), &bytes)?;
        write_envelope(&pending, &stem, &envelope)?;
        Queued::Pending(stem)
    } else {
        let local = outbox.join("local");
        let path = local.join(format!("{stem}.eml"));
        write_file(&path, &bytes)?;
        write_envelope(&local, &stem, &envelope)?;
        Queued::Local(path)
    };
    Ok((queued, envelope, bytes))
}

fn read_envelope(path: &Path) -> Option<Envelope> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn write_envelope(dir: &Path, stem: &str, envelope: &Envelope) -> Result<(), MailError> {
    let json = serde_json::to_vec(envelope).map_err(|e| MailError::Build(e.to_string()))?;
    write_file(&dir.join(format!("{stem}.json")), &json)
}

/// Moves a delivered message and its envelope from `pending/` to `sent/`.
fn mark_sent(outbox: &Path, stem: &str) -> Result<(), MailError> {
    let sent = outbox.join("sent");
    std::fs::create_dir_all(&sent).map_err(outbox_io(&sent))?;
    let pending = outbox.join("pending");
    let eml = pending.join(format!("{stem}.eml"));
    std::fs::rename(&eml, sent.join(format!("{stem}.eml"))).map_err(outbox_io(&eml))?;
    mark_sent_envelope(outbox, stem)
}

/// The second half of [`mark_sent`]: the envelope follows its message to `sent/`.
fn mark_sent_envelope(outbox: &Path, stem: &str) -> Result<(), MailError> {
    let pending = outbox.join("pending");
    let json = pending.join(format!("{stem}.json"));
    std::fs::rename(&json, outbox.join("sent").join(format!("{stem}.json")))
        .map_err(outbox_io(&json))?;
    crate::fsutil::sync_dir(&pending).map_err(outbox_io(&pending))
}

/// Every envelope in the outbox (local, pending and sent).
pub fn envelopes(outbox: &Path) -> Vec<Envelope> {
    let mut out = Vec::new();
    for dir in ["local", "pending", "sent"] {
        let Ok(rd) = std::fs::read_dir(outbox.join(dir)) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Some(env) = read_envelope(&p) {
                    out.push(env);
                }
            }
        }
    }
    out
}

/// The ids of the alerts whose messages are in the outbox (local, pending or sent).
pub fn alert_ids(outbox: &Path) -> std::collections::HashSet<String> {
    envelopes(outbox)
        .into_iter()
        .filter_map(|e| e.alert_id)
        .collect()
}

/// Result of retrying the pending messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    /// The names of the messages sent (`Queued::Pending`).
    pub sent_names: Vec<String>,
    pub still_pending: usize,
    /// Why the first failure failed.
    pub error: Option<String>,
}

/// Retries every pending message (oldest first); stops at the first failure, since the server is
/// then most likely still down. One process sends at a time (`vigil serve` and a `vigil report
/// run --email` beside it would otherwise both send a message): while another holds the
/// outbox's send lock, this one leaves the messages to it.
pub fn flush_pending(smtp: Option<&SmtpSettings>, outbox: &Path) -> Result<Flushed, MailError> {
    let pending = outbox.join("pending");
    let _sending = match smtp {
        Some(_) if pending.is_dir() => {
            let path = outbox.join(".send.lock");
            let file = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(outbox_io(&path))?;
            match file.try_lock() {
                Ok(()) => Some(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    let waiting = std::fs::read_dir(&pending)
                        .map(|rd| {
                            rd.filter_map(|e| e.ok())
                                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                                .count()
                        })
                        .unwrap_or(0);
                    return Ok(Flushed {
                        still_pending: waiting,
                        ..Flushed::default()
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(outbox_io(&path)(e)),
            }
        }
        _ => None,
    };
    let mut stems: Vec<String> = match std::fs::read_dir(&pending) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Flushed::default()),
        Err(e) => return Err(outbox_io(&pending)(e)),
    };
    stems.sort();
    let mut out = Flushed::default();
    let Some(settings) = smtp else {
        out.still_pending = stems.len();
        return Ok(out);
    };
    for stem in &stems {
        if out.error.is_some() {
            out.still_pending += 1;
            continue;
        }
        let json_path = pending.join(format!("{stem}.json"));
        let eml_path = pending.join(format!("{stem}.eml"));
        let envelope: Envelope = match read_envelope(&json_path) {
            Some(e) => e,
            None => {
                out.still_pending += 1;
                continue;
            }
        };
        let sent_eml = outbox.join("sent").join(format!("{stem}.eml"));
        if !eml_path.exists() && sent_eml.exists() {
            // Sent, and stopped between moving the message and its envelope: finish the move.
            mark_sent_envelope(outbox, stem)?;
            continue;
        }
        let bytes = std::fs::read(&eml_path).map_err(outbox_io(&eml_path))?;
        match send_raw(settings, &envelope.from, &envelope.to, &bytes) {
            Ok(()) => {
                mark_sent(outbox, stem)?;
                out.sent += 1;
                out.sent_names.push(stem.clone());
            }
            Err(e) => {
                out.error = Some(e.to_string());
                out.still_pending += 1;
            }
        }
    }
    Ok(out)
}

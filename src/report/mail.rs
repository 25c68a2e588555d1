//! Report runs as one email: an HTML page of every report as the body, the plain-text tables
//! beside it, and each report attached in one file format (CSV unless told otherwise). What
//! `vigil report run --email` and the service's scheduled reports send.

use std::io;

use super::{extension, html, plain_text, write_run, Format, ReportRun};
use crate::mail::{Attachment, Mail};

/// The HTML page of `runs`, one section each.
pub fn page(runs: &[ReportRun], generated: &str) -> io::Result<String> {
    let sections: Vec<_> = runs.iter().map(|r| r.section()).collect();
    let heading = if runs.len() == 1 {
        runs[0].report.title.clone()
    } else {
        format!("vigil reports, {}", runs[0].period())
    };
    html::page(&heading, &sections, generated)
}

/// One run rendered in `format` (tables as wide as they need: files and mail have no width).
pub fn render(run: &ReportRun, format: Format, generated: &str) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    write_run(&mut buf, run, format, generated, None)?;
    Ok(buf)
}

/// The email of `runs` (at least one) to `to`; `id`, when given, keeps the outbox from
/// queueing the same message twice.
pub fn message(
    runs: &[ReportRun],
    to: Vec<String>,
    generated: &str,
    attach: Format,
    id: Option<String>,
) -> io::Result<Mail> {
    let subject = if runs.len() == 1 {
        format!(
            "vigil report: {} ({})",
            runs[0].report.title,
            runs[0].period()
        )
    } else {
        format!(
            "vigil reports: {} ({})",
            runs.iter()
                .map(|r| r.report.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            runs[0].period()
        )
    };
    let content_type = match attach {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Json => "application/json",
        Format::Jsonl => "application/x-ndjson",
        Format::Html => "text/html; charset=utf-8",
        Format::Markdown => "text/markdown; charset=utf-8",
        Format::Table => "text/plain; charset=utf-8",
    };
    let mut attachments = Vec::new();
    for run in runs {
        attachments.push(Attachment {
            filename: format!("{}.{}", run.report.name, extension(attach)),
            content_type,
            body: render(run, attach, generated)?,
        });
    }
    Ok(Mail {
        alert_id: id,
        to,
        subject,
        text: plain_text(runs)?,
        html: page(runs, generated)?,
        attachments,
    })
}

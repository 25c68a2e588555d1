//! Reports: the shipped `queries/*.sql` (catalog), running one over a period with bound
//! parameters, and writing results in every output format.

pub mod catalog;
pub mod format;
pub mod html;
pub mod mail;

use std::collections::HashMap;
use std::io::{self, Write};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;
use thiserror::Error;

pub use catalog::Report;
pub use format::{terminal_width, write_batches, write_batches_fitted, Format};

use crate::query::{self, Limits, QueryError};
use crate::timerange::{rfc3339, TimeRange};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0}")]
    Usage(String),
    #[error("report {name}: {error}")]
    Query { name: String, error: QueryError },
}

/// One report's result over a period.
pub struct ReportRun {
    pub report: Report,
    pub range: TimeRange,
    /// The parameters as used, defaults included, in header order.
    pub params: Vec<(String, String)>,
    pub batches: Vec<RecordBatch>,
    /// What the result rests on (the store's history and head), shown with the facts so that an
    /// empty result reads as "nothing happened" only when the history covers the period.
    pub evidence: Vec<(String, String)>,
}

impl ReportRun {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    pub fn period(&self) -> String {
        format!("{} to {}", rfc3339(self.range.from), rfc3339(self.range.to))
    }

    /// Period, parameters and control, as shown above the table.
    pub fn facts(&self) -> Vec<(String, String)> {
        let mut facts = vec![(
            "Period".to_owned(),
            format!("{} (end excluded)", self.period()),
        )];
        if !self.params.is_empty() {
            let p: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            facts.push(("Parameters".into(), p.join(", ")));
        }
        if let Some(c) = &self.report.control {
            facts.push(("Control".into(), c.clone()));
        }
        facts.extend(self.evidence.iter().cloned());
        facts.push(("Rows".into(), self.rows().to_string()));
        facts
    }

    pub fn section(&self) -> html::Section<'_> {
        html::Section {
            title: &self.report.title,
            description: Some(&self.report.description),
            facts: self.facts(),
            batches: &self.batches,
            chart: self.report.chart.as_ref(),
        }
    }
}

/// Checks `--param k=v` pairs against the selected reports: a name no selected report declares
/// is an error that lists the valid ones.
pub fn parse_params(
    given: &[String],
    reports: &[&Report],
) -> Result<Vec<(String, String)>, ReportError> {
    let mut out = Vec::new();
    for g in given {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| ReportError::Usage(format!("--param '{g}' is not name=value")))?;
        let k = k.trim();
        if !reports.iter().any(|r| r.params.iter().any(|p| p.name == k)) {
            let mut valid: Vec<String> = reports
                .iter()
                .flat_map(|r| {
                    r.params.iter().map(move |p| {
                        format!("{} ({}, default {}) of {}", p.name, p.ty, p.default, r.name)
                    })
                })
                .collect();
            valid.dedup();
            return Err(ReportError::Usage(if valid.is_empty() {
                format!("unknown parameter '{k}': the selected reports take none besides the period (--since or --from/--to)")
            } else {
                format!(
                    "unknown parameter '{k}'; the parameters are: {}",
                    valid.join("; ")
                )
            }));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Runs `report` over `range` with `given` parameter values (others take their defaults). Values
/// are bound to placeholders; the SQL text never changes.
pub async fn run(
    ctx: &SessionContext,
    report: &Report,
    range: TimeRange,
    given: &[(String, String)],
    limits: Limits,
) -> Result<ReportRun, ReportError> {
    let mut values: HashMap<String, ScalarValue> = HashMap::new();
    let ts = |n: i64| ScalarValue::TimestampNanosecond(Some(n), Some("UTC".into()));
    values.insert("from".into(), ts(range.from));
    values.insert("to".into(), ts(range.to));
    let mut used = Vec::new();
    for spec in &report.params {
        let text = given
            .iter()
            .rev()
            .find(|(k, _)| *k == spec.name)
            .map(|(_, v)| v.as_str())
            .unwrap_or(&spec.default);
        let value = spec
            .value(text)
            .map_err(|e| ReportError::Usage(format!("report {}: {e}", report.name)))?;
        values.insert(spec.name.clone(), value);
        used.push((spec.name.clone(), text.to_owned()));
    }
    let err = |source| ReportError::Query {
        name: report.name.clone(),
        error: source,
    };
    let df = query::plan(ctx, &report.sql, Some(ParamValues::from(values)))
        .await
        .map_err(err)?;
    let batches = query::collect(df, limits).await.map_err(err)?;
    Ok(ReportRun {
        report: report.clone(),
        range,
        params: used,
        batches,
        evidence: Vec::new(),
    })
}

/// Writes one report's result: data only for csv/json/jsonl, with its title and facts for
/// table and markdown, as a page for html.
/// A table fits `width` when given (a terminal).
pub fn write_run(
    out: &mut dyn Write,
    run: &ReportRun,
    format: Format,
    generated_at: &str,
    width: Option<u16>,
) -> io::Result<()> {
    match format {
        Format::Table => {
            writeln!(out, "{} — {}", run.report.title, run.period())?;
            for (k, v) in run.facts().iter().skip(1) {
                // The head hash is for the kept copies (HTML, Markdown, mail), not the terminal.
                if k != "Rows" && k != "Store head" {
                    writeln!(out, "{k}: {v}")?;
                }
            }
            write_batches_fitted(out, &run.batches, format, width)
        }
        Format::Markdown => {
            writeln!(
                out,
                "## {}\n\n{}\n",
                run.report.title, run.report.description
            )?;
            for (k, v) in run.facts() {
                writeln!(out, "- **{k}**: {v}")?;
            }
            writeln!(out)?;
            write_batches(out, &run.batches, format)
        }
        Format::Html => {
            let page = html::page(&run.report.title, &[run.section()], generated_at)?;
            out.write_all(page.as_bytes())
        }
        Format::Csv | Format::Json | Format::Jsonl => write_batches(out, &run.batches, format),
    }
}

/// Plain text of several reports (the text part of a report email).
pub fn plain_text(runs: &[ReportRun]) -> io::Result<String> {
    let mut buf = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if i > 0 {
            writeln!(buf)?;
        }
        writeln!(
            buf,
            "{}\n{}",
            run.report.title,
            "=".repeat(run.report.title.chars().count())
        )?;
        writeln!(buf, "{}", run.report.description)?;
        for (k, v) in run.facts() {
            writeln!(buf, "{k}: {v}")?;
        }
        writeln!(buf)?;
        if run.rows() == 0 {
            writeln!(buf, "No rows in this period.")?;
        } else {
            // Markdown: narrower than box drawing, and readable as plain text in a mail client.
            write_batches(&mut buf, &run.batches, Format::Markdown)?;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Extension of a file in `format`.
pub fn extension(format: Format) -> &'static str {
    match format {
        Format::Table => "txt",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Jsonl => "jsonl",
        Format::Markdown => "md",
        Format::Html => "html",
    }
}

/// The store's history and head hash, from the commit log (no data is read).
pub fn evidence(log: &crate::store::CommitLog, range: TimeRange) -> Vec<(String, String)> {
    let times = |f: fn(&crate::store::commit::DataFile) -> &str| {
        log.files()
            .filter_map(move |d| crate::timerange::parse_instant(f(d)).ok())
    };
    let (Some(first), Some(last)) = (times(|d| &d.min_time).min(), times(|d| &d.max_time).max())
    else {
        return vec![("History".into(), "the store holds no events".into())];
    };
    let mut history = format!("{} to {}", rfc3339(first), rfc3339(last));
    if first > range.from || last < range.to {
        history.push_str(" (does not cover the whole period)");
    }
    let mut out = vec![("History".into(), history)];
    if let Some(head) = log.head() {
        out.push((
            "Store head".into(),
            format!("commit {} {}", head.commit.seq, head.hash),
        ));
    }
    out
}

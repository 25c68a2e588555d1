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
use crate::timerange::{
    rfc3339, TimeRange, NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE, NANOS_PER_SECOND,
};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0}")]
    Usage(String),
    #[error("report {name}: {error}")]
    Query { name: String, error: QueryError },
    /// The rows of a `-- per_day:` query are not a day and a number (a bug in the report).
    #[error("report {name}: its per_day query gives {error}")]
    PerDay { name: String, error: String },
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
    /// The report's per-day series (`-- per_day:`), when it has one.
    pub per_day: Option<PerDay>,
}

/// A number per UTC day of the period, for a chart: the days without a row are zero.
#[derive(Debug, Clone, PartialEq)]
pub struct PerDay {
    /// What is counted (the query's second column).
    pub name: String,
    /// (start of the UTC day in nanoseconds, value), in day order.
    pub points: Vec<(i64, f64)>,
}

impl ReportRun {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// The period for people: "2026-03-01 00:00 to 2026-03-08 00:00 UTC" (seconds, and their
    /// fraction, only when a bound has them).
    pub fn period(&self) -> String {
        let (from, to) = (self.range.from, self.range.to);
        let text = |t: i64, format: &str| {
            chrono::DateTime::from_timestamp_nanos(t)
                .format(format)
                .to_string()
        };
        if from % NANOS_PER_MINUTE == 0 && to % NANOS_PER_MINUTE == 0 {
            let f = "%Y-%m-%d %H:%M";
            format!("{} to {} UTC", text(from, f), text(to, f))
        } else if from % NANOS_PER_SECOND == 0 && to % NANOS_PER_SECOND == 0 {
            let f = "%Y-%m-%d %H:%M:%S";
            format!("{} to {} UTC", text(from, f), text(to, f))
        } else {
            format!("{} to {}", rfc3339(from), rfc3339(to))
        }
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
            per_day: self.per_day.as_ref().map(|p| (p, self.range)),
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
    let per_day = match &report.per_day {
        Some(sql) => {
            let df = query::plan(ctx, sql, Some(ParamValues::from(values.clone())))
                .await
                .map_err(err)?;
            let batches = query::collect(df, limits).await.map_err(err)?;
            Some(
                per_day_points(&batches).map_err(|error| ReportError::PerDay {
                    name: report.name.clone(),
                    error,
                })?,
            )
        }
        None => None,
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
        per_day,
    })
}

/// The rows of a per-day query (a timestamp, then a number) as points in day order.
fn per_day_points(batches: &[RecordBatch]) -> Result<PerDay, String> {
    use datafusion::arrow::array::{Array, Float64Array, TimestampNanosecondArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    let mut name = String::new();
    let mut points = Vec::new();
    for b in batches {
        if b.num_columns() != 2 {
            return Err(format!(
                "{} columns, not a day and a number",
                b.num_columns()
            ));
        }
        name = b.schema().field(1).name().clone();
        let day = cast(
            b.column(0),
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
        )
        .map_err(|e| format!("its first column is not a time: {e}"))?;
        let value = cast(b.column(1), &DataType::Float64)
            .map_err(|e| format!("its second column is not a number: {e}"))?;
        let (Some(day), Some(value)) = (
            day.as_any().downcast_ref::<TimestampNanosecondArray>(),
            value.as_any().downcast_ref::<Float64Array>(),
        ) else {
            return Err("cast gave an unexpected array".into());
        };
        for i in 0..b.num_rows() {
            if day.is_valid(i) {
                let v = if value.is_valid(i) {
                    value.value(i)
                } else {
                    0.0
                };
                let start = day.value(i).div_euclid(crate::timerange::NANOS_PER_DAY)
                    * crate::timerange::NANOS_PER_DAY;
                points.push((start, v));
            }
        }
    }
    points.sort_by_key(|p| p.0);
    // Rows of one day (the query grouped by something finer) add up.
    points.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
        }
        same
    });
    Ok(PerDay { name, points })
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

/// A gap between an edge of the period and the history, in hours up to two days, else days.
fn span_text(nanos: i64) -> String {
    if nanos < 2 * NANOS_PER_DAY {
        format!("{:.0} h", nanos as f64 / NANOS_PER_HOUR as f64)
    } else {
        format!("{:.1} days", nanos as f64 / NANOS_PER_DAY as f64)
    }
}

/// How the history from `first` to `last` falls short of `range`. Events are instants, a period
/// is a span: events within an hour of an edge cover it (a quiet estate logs nothing at
/// 23:59:59); a wider gap is stated, so the reader can tell a quiet night from logs that stopped.
fn coverage_gaps(first: i64, last: i64, range: TimeRange) -> Vec<String> {
    let mut gaps = Vec::new();
    if first - range.from > NANOS_PER_HOUR {
        gaps.push(format!(
            "the first event is {} after its start",
            span_text(first - range.from)
        ));
    }
    if range.to - last > NANOS_PER_HOUR {
        gaps.push(format!(
            "the last event is {} before its end",
            span_text(range.to - last)
        ));
    }
    gaps
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
    // To the second: the fraction digits of the two extreme events say nothing here.
    let seconds = |t: i64| rfc3339(t.div_euclid(NANOS_PER_SECOND) * NANOS_PER_SECOND);
    let mut history = format!("{} to {}", seconds(first), seconds(last));
    let gaps = coverage_gaps(first, last, range);
    if !gaps.is_empty() {
        history.push_str(&format!(
            " (does not cover the whole period: {})",
            gaps.join("; ")
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timerange::parse_instant;

    fn t(s: &str) -> i64 {
        parse_instant(s).unwrap()
    }

    #[test]
    fn a_period_is_covered_by_events_near_its_edges() {
        let week = TimeRange {
            from: t("2026-03-01T00:00:00Z"),
            to: t("2026-03-08T00:00:00Z"),
        };
        // The last event at 23:59:57 of the last day: covered.
        assert!(
            coverage_gaps(t("2026-03-01T00:00:04Z"), t("2026-03-07T23:59:57Z"), week).is_empty()
        );
        // Logs that stopped two days and a half early, and began five hours late, are said so.
        assert_eq!(
            coverage_gaps(t("2026-03-01T05:00:00Z"), t("2026-03-05T12:00:00Z"), week),
            vec![
                "the first event is 5 h after its start".to_owned(),
                "the last event is 2.5 days before its end".to_owned()
            ]
        );
    }

    #[test]
    fn per_day_rows_become_day_points() {
        use datafusion::arrow::array::{Int64Array, TimestampNanosecondArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "day",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new("denied", DataType::Int64, true),
        ]));
        let days = TimestampNanosecondArray::from(vec![
            Some(t("2026-03-02T00:00:00Z")),
            Some(t("2026-03-01T00:00:00Z")),
            Some(t("2026-03-02T00:00:00Z")),
            None,
        ])
        .with_timezone("UTC");
        let counts = Int64Array::from(vec![Some(3), Some(5), Some(4), Some(9)]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(days), Arc::new(counts)]).unwrap();
        let p = per_day_points(&[batch]).unwrap();
        assert_eq!(p.name, "denied");
        assert_eq!(
            p.points,
            vec![
                (t("2026-03-01T00:00:00Z"), 5.0),
                (t("2026-03-02T00:00:00Z"), 7.0)
            ]
        );
    }
}

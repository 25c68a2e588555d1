//! `[[serve.schedule]]`: tasks the service runs at the slots of a cron expression (5 fields, or
//! 6 with leading seconds) in an IANA time zone, so daylight saving time moves a 07:00 report
//! with the clocks. A task is a report run mailed to `email_to`, a compaction, or a
//! verification (mailed only when it finds a problem). This module reads and checks them; the
//! service's `schedule` module runs them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::Deserialize;

use crate::report::{catalog, Format};
use crate::timerange::parse_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    name: String,
    cron: String,
    timezone: Option<String>,
    #[serde(default)]
    report: Vec<String>,
    task: Option<String>,
    since: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    format: Option<String>,
    #[serde(default)]
    email_to: Vec<String>,
    missed: Option<String>,
}

/// What a schedule does at each slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Runs the reports over the `since` before the slot and mails them, attached in `format`.
    Report {
        names: Vec<String>,
        since: Duration,
        params: Vec<(String, String)>,
        format: Format,
    },
    Compact,
    Verify,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub cron: Cron,
    /// `None`: the `[calendar] timezone`.
    pub timezone: Option<Tz>,
    pub task: Task,
    pub email_to: Vec<String>,
    /// Run the latest missed slot at start (true) or skip it.
    pub run_missed: bool,
}

impl PartialEq for Schedule {
    fn eq(&self, o: &Schedule) -> bool {
        self.name == o.name
            && self.cron.pattern.to_string() == o.cron.pattern.to_string()
            && self.timezone == o.timezone
            && self.task == o.task
            && self.email_to == o.email_to
            && self.run_missed == o.run_missed
    }
}

pub fn parse(i: usize, raw: RawSchedule) -> Result<Schedule, String> {
    let key = |k: &str| format!("serve.schedule[{i}].{k}");
    if raw.name.trim().is_empty() || raw.name.contains(['/', '\n']) {
        return Err(format!("{} must be a name without '/'", key("name")));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(&raw.cron)
        .map_err(|e| {
            format!(
                "{}: '{}': {e} (the fields: [second] minute hour day-of-month month day-of-week)",
                key("cron"),
                raw.cron
            )
        })?;
    // A pattern that never matches (February 30) would make every look search for years.
    if cron
        .find_next_occurrence(
            &DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            false,
        )
        .is_err()
    {
        return Err(format!(
            "{}: '{}' never matches a date",
            key("cron"),
            raw.cron
        ));
    }
    let timezone = raw
        .timezone
        .map(|t| crate::calendar::parse_tz(&t).map_err(|e| format!("{}: {e}", key("timezone"))))
        .transpose()?;
    for to in &raw.email_to {
        crate::mail::parse_recipients(to).map_err(|e| format!("{}: {e}", key("email_to")))?;
    }
    let run_missed = match raw.missed.as_deref() {
        None | Some("latest") => true,
        Some("skip") => false,
        Some(m) => return Err(format!("{}: '{m}' is not latest or skip", key("missed"))),
    };
    let task = match (raw.report.is_empty(), raw.task.as_deref()) {
        (false, None) => {
            let all = catalog::shipped()?;
            let mut selected = Vec::new();
            for name in &raw.report {
                selected.push(
                    catalog::find(&all, name).map_err(|e| format!("{}: {e}", key("report")))?,
                );
            }
            let given: Vec<String> = raw.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let params = crate::report::parse_params(&given, &selected)
                .map_err(|e| format!("{}: {e}", key("params")))?;
            if raw.email_to.is_empty() {
                return Err(format!(
                    "{}: a scheduled report needs recipients",
                    key("email_to")
                ));
            }
            let format = match raw.format.as_deref() {
                None | Some("csv") => Format::Csv,
                Some("html") => Format::Html,
                Some("json") => Format::Json,
                Some("markdown") => Format::Markdown,
                Some(f) => {
                    return Err(format!(
                        "{}: '{f}' is not csv, html, json or markdown",
                        key("format")
                    ))
                }
            };
            let since = match raw.since.as_deref() {
                Some(s) => parse_duration(s).map_err(|e| format!("{}: {e}", key("since")))?,
                None => Duration::from_secs(7 * 86_400),
            };
            Task::Report {
                names: selected.iter().map(|r| r.name.clone()).collect(),
                since,
                params,
                format,
            }
        }
        (true, Some("compact")) => Task::Compact,
        (true, Some("verify")) => Task::Verify,
        (true, Some(t)) => return Err(format!("{}: '{t}' is not compact or verify", key("task"))),
        (true, None) => {
            return Err(format!(
                "serve.schedule[{i}] needs report = [...] or task = \"compact\" | \"verify\""
            ))
        }
        (false, Some(_)) => {
            return Err(format!(
                "serve.schedule[{i}] has both report and task: give one"
            ))
        }
    };
    if !matches!(task, Task::Report { .. })
        && (raw.since.is_some() || !raw.params.is_empty() || raw.format.is_some())
    {
        return Err(format!(
            "serve.schedule[{i}]: since, params and format are for reports"
        ));
    }
    Ok(Schedule {
        name: raw.name,
        cron,
        timezone,
        task,
        email_to: raw.email_to,
        run_missed,
    })
}

/// Compaction when no schedule says otherwise: nightly, when little else runs.
pub fn default_compaction() -> Schedule {
    Schedule {
        name: "nightly-compaction".into(),
        cron: CronParser::builder()
            .build()
            .parse("17 3 * * *")
            .expect("a valid cron expression"),
        timezone: None,
        task: Task::Compact,
        email_to: Vec::new(),
        run_missed: true,
    }
}

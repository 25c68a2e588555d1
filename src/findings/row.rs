//! One row of the findings history and its Arrow form: a finding's fields (as `vigil detect
//! --format json` prints them, `observed`/`baseline` as JSON text) and one status it was given.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimestampNanosecondType, UInt64Type};
use datafusion::arrow::error::ArrowError;

use super::Status;
use crate::detect::{Finding, Severity};
pub use crate::query::findings_table::schema;
use crate::query::findings_table::{strings, utc};
use crate::timerange::parse_instant;

/// A finding with one of its statuses. A finding is identified by (`key`, `window_start`,
/// `window_end`); its latest row (highest `commit_seq`) holds its status.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub key: String,
    /// Nanoseconds UTC.
    pub window_start: i64,
    pub window_end: i64,
    pub code: String,
    pub detector: String,
    /// `None` only for rows migrated from an outbox, which kept keys and not findings.
    pub severity: Option<Severity>,
    pub actor_id: String,
    pub actor_name: Option<String>,
    pub resources: Vec<String>,
    pub score: Option<f64>,
    /// JSON objects of named numbers.
    pub observed: Option<String>,
    pub baseline: Option<String>,
    pub explanation: String,
    pub investigate_sql: Option<String>,
    pub cold_start: bool,
    /// The keys alert suppression looks at (`Finding::alert_keys`).
    pub part_keys: Vec<String>,
    /// When vigil first recorded the finding.
    pub detected_at: i64,
    pub status: Status,
    /// Who set the status: `vigil` for detection runs, else the analyst.
    pub status_by: Option<String>,
    pub status_reason: Option<String>,
    pub status_at: i64,
    /// Until when a `benign` verdict holds (none: for good).
    pub status_until: Option<i64>,
    /// The alert message a finding went out in (`alerted` rows).
    pub alert_id: Option<String>,
    /// The commit that recorded the row: the latest row of a finding is its status.
    pub commit_seq: u64,
}

impl FindingRow {
    /// The first row of a finding this run found.
    pub fn of(f: &Finding, detected_at: i64, status: Status) -> Result<FindingRow, String> {
        let instant = |text: &str, what: &str| {
            parse_instant(text).map_err(|e| format!("finding {}: {what}: {e}", f.key))
        };
        Ok(FindingRow {
            key: f.key.clone(),
            window_start: instant(&f.window_start, "window_start")?,
            window_end: instant(&f.window_end, "window_end")?,
            code: f.code.to_owned(),
            detector: f.detector.to_owned(),
            severity: Some(f.severity),
            actor_id: f.actor_id.clone(),
            actor_name: f.actor_name.clone(),
            resources: f.resources.clone(),
            score: Some(f.score),
            observed: serde_json::to_string(&f.observed).ok(),
            baseline: serde_json::to_string(&f.baseline).ok(),
            explanation: f.explanation.clone(),
            investigate_sql: Some(f.investigate_sql.clone()),
            cold_start: f.cold_start,
            part_keys: f.alert_keys().to_vec(),
            detected_at,
            status,
            status_by: Some(super::VIGIL.to_owned()),
            status_reason: None,
            status_at: detected_at,
            status_until: None,
            alert_id: None,
            commit_seq: 0,
        })
    }

    /// The same finding with a new status set at `at`.
    pub fn with_status(&self, status: Status, at: i64) -> FindingRow {
        FindingRow {
            status,
            status_at: at,
            status_by: Some(super::VIGIL.to_owned()),
            status_reason: None,
            status_until: None,
            alert_id: None,
            ..self.clone()
        }
    }

    /// (`key`, `window_start`, `window_end`).
    pub fn id(&self) -> (String, i64, i64) {
        (self.key.clone(), self.window_start, self.window_end)
    }

    /// The finding again, for an alert that must be sent again; `None` for a row no detector of
    /// this vigil made (or one migrated without its finding).
    pub fn to_finding(&self) -> Option<Finding> {
        let det = crate::detect::all()
            .into_iter()
            .find(|d| d.code() == self.code)?;
        let object = |text: &Option<String>| {
            text.as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default()
        };
        Some(Finding {
            code: det.code(),
            detector: det.name(),
            severity: self.severity?,
            actor_id: self.actor_id.clone(),
            actor_name: self.actor_name.clone(),
            resources: self.resources.clone(),
            window_start: crate::timerange::rfc3339(self.window_start),
            window_end: crate::timerange::rfc3339(self.window_end),
            score: self.score.unwrap_or(0.0),
            observed: object(&self.observed),
            baseline: object(&self.baseline),
            explanation: self.explanation.clone(),
            investigate_sql: self.investigate_sql.clone().unwrap_or_default(),
            key: self.key.clone(),
            part_keys: if self.part_keys == [self.key.clone()] {
                Vec::new()
            } else {
                self.part_keys.clone()
            },
            cold_start: self.cold_start,
        })
    }
}

/// The rows as one batch of [`schema`].
pub fn to_batch(rows: &[FindingRow]) -> Result<RecordBatch, ArrowError> {
    let text = |get: &dyn Fn(&FindingRow) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::new();
        for r in rows {
            b.append_option(get(r));
        }
        Arc::new(b.finish())
    };
    let time = |get: &dyn Fn(&FindingRow) -> Option<i64>| -> ArrayRef {
        let mut b = TimestampNanosecondBuilder::new().with_timezone("UTC");
        for r in rows {
            b.append_option(get(r));
        }
        Arc::new(b.finish())
    };
    let list = |get: &dyn Fn(&FindingRow) -> &[String]| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for r in rows {
            for s in get(r) {
                b.values().append_value(s);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let mut score = Float64Builder::new();
    let mut cold = BooleanBuilder::new();
    let mut seq = UInt64Builder::new();
    for r in rows {
        score.append_option(r.score);
        cold.append_value(r.cold_start);
        seq.append_value(r.commit_seq);
    }
    let severity: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.severity.map(|s| s.to_string()))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        text(&|r| Some(&r.key)),
        time(&|r| Some(r.window_start)),
        time(&|r| Some(r.window_end)),
        text(&|r| Some(&r.code)),
        text(&|r| Some(&r.detector)),
        Arc::new(datafusion::arrow::array::StringArray::from(severity)),
        text(&|r| Some(&r.actor_id)),
        text(&|r| r.actor_name.as_deref()),
        list(&|r| &r.resources),
        Arc::new(score.finish()),
        text(&|r| r.observed.as_deref()),
        text(&|r| r.baseline.as_deref()),
        text(&|r| Some(&r.explanation)),
        text(&|r| r.investigate_sql.as_deref()),
        Arc::new(cold.finish()),
        list(&|r| &r.part_keys),
        time(&|r| Some(r.detected_at)),
        text(&|r| Some(r.status.as_str())),
        text(&|r| r.status_by.as_deref()),
        text(&|r| r.status_reason.as_deref()),
        time(&|r| Some(r.status_at)),
        time(&|r| r.status_until),
        text(&|r| r.alert_id.as_deref()),
        Arc::new(seq.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// Rows of a batch with the columns of [`schema`] (any order, strings plain or as views): a
/// missing or mistyped column, or a status this vigil does not know, is an error naming it,
/// never a silent default.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<FindingRow>, String> {
    let column = |name: &str, t: &DataType| -> Result<ArrayRef, String> {
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| format!("the findings rows have no column {name}"))?;
        cast(c, t).map_err(|e| format!("findings column {name}: {e}"))
    };
    let text = |name: &str| -> Result<Vec<Option<String>>, String> {
        let c = column(name, &DataType::Utf8)?;
        Ok(c.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    };
    let time = |name: &str| -> Result<Vec<Option<i64>>, String> {
        let c = column(name, &utc())?;
        Ok(c.as_primitive::<TimestampNanosecondType>().iter().collect())
    };
    let list = |name: &str| -> Result<Vec<Vec<String>>, String> {
        let c = column(name, &strings())?;
        Ok(c.as_list::<i32>()
            .iter()
            .map(|l| {
                l.map(|a| {
                    a.as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
            })
            .collect())
    };
    let required =
        |v: Option<String>, name: &str| v.ok_or_else(|| format!("findings column {name} is null"));
    let at =
        |v: Option<i64>, name: &str| v.ok_or_else(|| format!("findings column {name} is null"));
    let (keys, starts, ends) = (text("key")?, time("window_start")?, time("window_end")?);
    let (codes, detectors, severities) = (text("code")?, text("detector")?, text("severity")?);
    let (actors, names, resources) = (text("actor_id")?, text("actor_name")?, list("resources")?);
    let score = column("score", &DataType::Float64)?;
    let score = score.as_primitive::<Float64Type>();
    let (observed, baseline) = (text("observed")?, text("baseline")?);
    let (explanations, sqls) = (text("explanation")?, text("investigate_sql")?);
    let cold = column("cold_start", &DataType::Boolean)?;
    let cold = cold.as_boolean();
    let parts = list("part_keys")?;
    let detected = time("detected_at")?;
    let (statuses, by, reasons) = (text("status")?, text("status_by")?, text("status_reason")?);
    let (status_at, until, alert_ids) =
        (time("status_at")?, time("status_until")?, text("alert_id")?);
    let seq = column("commit_seq", &DataType::UInt64)?;
    let seq = seq.as_primitive::<UInt64Type>();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let status = required(statuses[i].clone(), "status")?;
        out.push(FindingRow {
            key: required(keys[i].clone(), "key")?,
            window_start: at(starts[i], "window_start")?,
            window_end: at(ends[i], "window_end")?,
            code: required(codes[i].clone(), "code")?,
            detector: required(detectors[i].clone(), "detector")?,
            severity: severities[i].as_deref().map(Severity::parse).transpose()?,
            actor_id: required(actors[i].clone(), "actor_id")?,
            actor_name: names[i].clone(),
            resources: resources[i].clone(),
            score: score.is_valid(i).then(|| score.value(i)),
            observed: observed[i].clone(),
            baseline: baseline[i].clone(),
            explanation: explanations[i].clone().unwrap_or_default(),
            investigate_sql: sqls[i].clone(),
            cold_start: cold.is_valid(i) && cold.value(i),
            part_keys: parts[i].clone(),
            detected_at: at(detected[i], "detected_at")?,
            status: Status::parse(&status)?,
            status_by: by[i].clone(),
            status_reason: reasons[i].clone(),
            status_at: at(status_at[i], "status_at")?,
            status_until: until[i],
            alert_id: alert_ids[i].clone(),
            commit_seq: if seq.is_valid(i) { seq.value(i) } else { 0 },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_arrow() {
        let mut f = crate::detect::Finding::for_tests("VG001:a:s1");
        f.window_start = "2026-03-02T10:00:00Z".into();
        f.window_end = "2026-03-02T11:00:00Z".into();
        f.part_keys = vec!["VG001:a:s1".into(), "VG001:a:s2".into()];
        f.observed = crate::detect::finding::numbers([("reads", serde_json::json!(3))]);
        let mut row = FindingRow::of(&f, 7, Status::New).unwrap();
        let mut benign = row.with_status(Status::Benign, 9);
        benign.status_until = Some(99);
        benign.status_reason = Some("batch job".into());
        benign.commit_seq = 4;
        row.commit_seq = 3;
        let batch = to_batch(&[row.clone(), benign.clone()]).unwrap();
        assert_eq!(from_batch(&batch).unwrap(), vec![row, benign]);
        // A column missing is an error, not a default.
        let cut = batch.project(&[0, 1, 2]).unwrap();
        assert!(from_batch(&cut).unwrap_err().contains("no column code"));
    }
}

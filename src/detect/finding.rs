//! A finding as `vigil detect` prints it and alerts carry it; its JSON fields are an interface (README, Detection).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Result<Severity, String> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "'{text}' is not a severity (info, low, medium, high, critical)"
                ))
            }
        })
    }

    /// One level up (capped at critical).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub detector: &'static str,
    pub severity: Severity,
    pub actor_id: String,
    pub actor_name: Option<String>,
    pub resources: Vec<String>,
    pub window_start: String,
    pub window_end: String,
    /// 0–1, higher is more anomalous.
    pub score: f64,
    pub observed: BTreeMap<String, Value>,
    pub baseline: BTreeMap<String, Value>,
    pub explanation: String,
    pub investigate_sql: String,
    /// `<code>:<actor_id>[:<resource_id>]`: the dedup key.
    pub key: String,
    /// Keys of the parts a grouped finding stands for (VG001: one per new secret), when there
    /// are several: alerts suppress the finding only when every part was sent recently, and
    /// record all of them, so windows that overlap neither hide a new part nor repeat an old
    /// one. Not part of the finding's JSON.
    #[serde(skip)]
    pub part_keys: Vec<String>,
    /// The detector had less history than it wants (it then uses a static rule, or says so).
    pub cold_start: bool,
}

impl Finding {
    /// A finding with only its key set, for tests of what is done with findings.
    #[cfg(test)]
    pub fn for_tests(key: &str) -> Finding {
        Finding {
            code: "VG000",
            detector: "test",
            severity: Severity::High,
            actor_id: "a".into(),
            actor_name: None,
            resources: Vec::new(),
            window_start: String::new(),
            window_end: String::new(),
            score: 1.0,
            observed: BTreeMap::new(),
            baseline: BTreeMap::new(),
            explanation: String::new(),
            investigate_sql: String::new(),
            key: key.to_owned(),
            part_keys: Vec::new(),
            cold_start: false,
        }
    }

    /// The keys alert suppression looks at: the parts' keys, or the finding's own.
    pub fn alert_keys(&self) -> &[String] {
        if self.part_keys.is_empty() {
            std::slice::from_ref(&self.key)
        } else {
            &self.part_keys
        }
    }
}

/// A SQL string literal: quotes doubled, so log content stays a value.
pub fn sql_str(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `SELECT ... FROM events WHERE actor_id = ... AND event_time in [start, end) ...`.
pub fn investigate(actor_id: &str, start: &str, end: &str, extra: &str) -> String {
    format!(
        "SELECT event_time, source, operation, action, outcome, resource_id, src_ip, user_agent FROM events \
         WHERE actor_id = {} AND event_time >= TIMESTAMP {} AND event_time < TIMESTAMP {}{extra} ORDER BY event_time",
        sql_str(actor_id),
        sql_str(start),
        sql_str(end)
    )
}

/// Named numbers for `observed` / `baseline`.
pub fn numbers<const N: usize>(pairs: [(&str, Value); N]) -> BTreeMap<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A float rounded for people (and stable in snapshots).
pub fn round(v: f64, digits: i32) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    let m = 10f64.powi(digits);
    serde_json::Number::from_f64((v * m).round() / m)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A p-value printed with two significant digits (`2e-12`).
pub fn p_value(p: f64) -> Value {
    if p <= 0.0 || !p.is_finite() {
        return serde_json::json!(0.0);
    }
    let text = format!("{p:.1e}");
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

//! Detector settings from `[detectors.VGnnn]`: `enabled`, `severity`, and the detector's own
//! numeric parameters. Unknown detectors and keys are errors that name them.

use std::collections::BTreeMap;

use super::DetectConfig;
use super::{Detector, Severity};

/// A tunable number with its default.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub default: f64,
    pub doc: &'static str,
}

#[derive(Debug, Clone)]
pub struct DetectorSettings {
    pub enabled: bool,
    /// Overrides the detector's own severity for every finding.
    pub severity: Option<Severity>,
    values: BTreeMap<&'static str, f64>,
}

impl DetectorSettings {
    /// The parameter's value (the default unless configured). Detectors name their parameters
    /// by constant, so a misspelt name does not compile; one the detector does not declare
    /// in `params()` is a bug, caught by the detection run as such.
    pub fn get(&self, param: Param) -> f64 {
        *self
            .values
            .get(param.name)
            .unwrap_or_else(|| panic!("detector parameter {} is not declared", param.name))
    }

    /// A day count as nanoseconds.
    pub fn days_nanos(&self, param: Param) -> i64 {
        (self.get(param) * crate::timerange::NANOS_PER_DAY as f64) as i64
    }

    /// A minute count as nanoseconds.
    pub fn minutes_nanos(&self, param: Param) -> i64 {
        (self.get(param) * crate::timerange::NANOS_PER_MINUTE as f64) as i64
    }
}

/// Settings of one detector: its defaults overlaid with its `[detectors.CODE]` table, which
/// `validate` has checked when the config was read.
pub fn settings(config: &DetectConfig, det: &dyn Detector) -> DetectorSettings {
    let mut values: BTreeMap<&'static str, f64> =
        det.params().iter().map(|p| (p.name, p.default)).collect();
    let mut enabled = true;
    let mut severity = None;
    if let Some(table) = config.detectors.get(det.code()) {
        for (k, v) in table {
            match k.as_str() {
                "enabled" => enabled = v.as_bool().unwrap_or(true),
                "severity" => severity = v.as_str().and_then(|s| Severity::parse(s).ok()),
                other => {
                    if let (Some(p), Some(n)) =
                        (det.params().iter().find(|p| p.name == other), number(v))
                    {
                        values.insert(p.name, n);
                    }
                }
            }
        }
    }
    DetectorSettings {
        enabled,
        severity,
        values,
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// Checks `[detectors]`: every table names a known detector, every key is `enabled`, `severity`
/// or one of its parameters, with a value of the right type.
pub fn validate(table: &toml::Table) -> Result<BTreeMap<String, toml::Table>, String> {
    let registry = super::detectors::all();
    let mut out = BTreeMap::new();
    for (code, v) in table {
        let Some(det) = registry.iter().find(|d| d.code() == code) else {
            return Err(format!(
                "detectors.{code}: no such detector (the codes are {})",
                registry
                    .iter()
                    .map(|d| d.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let Some(t) = v.as_table() else {
            return Err(format!("detectors.{code} must be a table"));
        };
        for (k, val) in t {
            let key = format!("detectors.{code}.{k}");
            match k.as_str() {
                "enabled" => {
                    if val.as_bool().is_none() {
                        return Err(format!("{key} must be true or false"));
                    }
                }
                "severity" => {
                    let s = val
                        .as_str()
                        .ok_or_else(|| format!("{key} must be a string"))?;
                    Severity::parse(s).map_err(|e| format!("{key}: {e}"))?;
                }
                other => {
                    let Some(p) = det.params().iter().find(|p| p.name == other) else {
                        let names: Vec<&str> = ["enabled", "severity"]
                            .into_iter()
                            .chain(det.params().iter().map(|p| p.name))
                            .collect();
                        return Err(format!(
                            "{key}: {code} ({}) has no parameter '{other}'; its keys are {}",
                            det.name(),
                            names.join(", ")
                        ));
                    };
                    let n = number(val).ok_or_else(|| format!("{key} must be a number"))?;
                    if !n.is_finite() || n < 0.0 {
                        return Err(format!("{key} must be a non-negative number ({})", p.doc));
                    }
                }
            }
        }
        out.insert(code.clone(), t.clone());
    }
    Ok(out)
}

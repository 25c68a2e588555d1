//! Detection: detectors compare a window `[from, to)` with baselines computed from the store's
//! history before `from` (DataFusion queries, never state kept in the process), so a restart or
//! a fresh install over old history raises nothing new, and a past window can be replayed.

pub mod allowlist;
pub mod detectors;
pub mod finding;
pub mod params;
pub mod peers;
pub mod rows;

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;
use thiserror::Error;

pub use detectors::all;
pub use finding::{Finding, Severity};

/// How a principal is named for people: an AWS role as `role/<name>` (its `actor_name` is a
/// session name), others by `actor_name` when present, else the id.
pub fn display_name(actor_id: &str, actor_name: Option<&str>) -> String {
    if let Some(rest) = actor_id.strip_prefix("arn:aws:iam::") {
        if let Some((account, path)) = rest.split_once(':') {
            if path.starts_with("role/") {
                return path.to_owned();
            }
            // "root" alone reads like Vault's root token or a Unix user.
            if path == "root" {
                return format!("root user of AWS account {account}");
            }
        }
    }
    actor_name
        .filter(|n| !n.is_empty())
        .unwrap_or(if actor_id.is_empty() {
            "unknown principal"
        } else {
            actor_id
        })
        .to_owned()
}

pub use params::{DetectorSettings, Param};

use futures::FutureExt;

use crate::query::{Limits, QueryError, QuerySettings};
use crate::timerange::TimeRange;

#[derive(Debug, Error)]
pub enum DetectError {
    #[error("detector {code}: {error}")]
    Query {
        code: &'static str,
        error: QueryError,
    },
    /// A detector failed in a way that is a bug in vigil (a query result without a column it
    /// reads): reported as the run's failure, never as "nothing found".
    #[error("detector {code} failed (a bug in vigil, please report it): {message}")]
    Bug { code: &'static str, message: String },
    #[error("{0}")]
    Usage(String),
}

/// What detection needs of the configuration beyond what queries need (assembled by
/// `crate::config`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectConfig {
    /// `[detectors.CODE]` tables, checked against the registry.
    pub detectors: std::collections::BTreeMap<String, toml::Table>,
    /// `[[allowlist]]`: findings teams have said are expected.
    pub allowlist: Vec<allowlist::Entry>,
}

/// What a detector sees: the session over the store, the window, the settings.
pub struct DetectContext<'a> {
    pub ctx: &'a SessionContext,
    pub window: TimeRange,
    /// The calendar, peer groups and canaries queries also use, and the limits.
    pub query: &'a QuerySettings,
    pub config: &'a DetectConfig,
    pub limits: Limits,
    /// What detectors say about themselves (cold start: quiet or on a static rule, and why).
    pub notes: std::sync::Mutex<Vec<String>>,
    /// Baselines several detectors share, computed once per run.
    pub(crate) cache: detectors::Cache,
    /// Time and findings per detector, for `-v`.
    pub timings: std::sync::Mutex<Vec<(&'static str, std::time::Duration, usize)>>,
}

impl<'a> DetectContext<'a> {
    pub fn new(
        ctx: &'a SessionContext,
        window: TimeRange,
        query: &'a QuerySettings,
        config: &'a DetectConfig,
    ) -> DetectContext<'a> {
        DetectContext {
            ctx,
            window,
            query,
            config,
            limits: query.limits(),
            notes: std::sync::Mutex::new(Vec::new()),
            cache: detectors::Cache::default(),
            timings: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn note(&self, text: String) {
        if let Ok(mut n) = self.notes.lock() {
            if !n.contains(&text) {
                n.push(text);
            }
        }
    }

    pub fn take_notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

/// One detection rule. Each lives in its own file under `detectors/`, with its stable code (the
/// README's detector table) and a documentation text that `vigil detectors CODE` prints.
#[async_trait::async_trait]
pub trait Detector: Send + Sync {
    /// `VG001` ...
    fn code(&self) -> &'static str;
    /// Kebab-case name (`new-caller-for-secret`), also the label kind it is meant to find.
    fn name(&self) -> &'static str;
    /// One line for `vigil detectors`.
    fn summary(&self) -> &'static str;
    /// What it detects, why it matters, an example, tuning, false positives.
    fn doc(&self) -> &'static str;
    fn default_severity(&self) -> Severity;
    /// Tunable parameters with defaults (`[detectors.VGnnn]` in vigil.toml).
    fn params(&self) -> &'static [Param];
    /// For a detector that counts in buckets shorter than an hour (or, like a canary, in none):
    /// how often, in nanoseconds, `vigil serve` looks at the hour so far with it before the
    /// hour closes, so that its alert does not wait for the hour's end. `None`: whole hours.
    fn look_every(&self, _s: &DetectorSettings) -> Option<i64> {
        None
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError>;
}

/// Runs the enabled detectors (all, or `only`) over the window, applies severity overrides and
/// the allowlist, and returns the findings ordered by window start, severity, code and key.
pub async fn run(
    d: &DetectContext<'_>,
    only: Option<&[String]>,
) -> Result<Vec<Finding>, DetectError> {
    let registry = detectors::all();
    if let Some(only) = only {
        for code in only {
            if !registry.iter().any(|r| r.code() == code) {
                return Err(DetectError::Usage(format!(
                    "no detector {code}; the detectors are {}",
                    registry
                        .iter()
                        .map(|r| r.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let allow = allowlist::Allowlist::from_config(d.config);
    let now = crate::clock::now_nanos().unwrap_or(i64::MAX);
    let mut findings = Vec::new();
    for det in &registry {
        if only.is_some_and(|o| !o.iter().any(|c| c == det.code())) {
            continue;
        }
        let settings = params::settings(d.config, det.as_ref());
        if !settings.enabled {
            continue;
        }
        let started = std::time::Instant::now();
        // A panic (a column a detector reads that its query lacks) fails the run loudly
        // instead of taking the process down without the detector's name.
        let mut found = std::panic::AssertUnwindSafe(det.detect(d, &settings))
            .catch_unwind()
            .await
            .map_err(|panic| DetectError::Bug {
                code: det.code(),
                message: panic_message(panic.as_ref()),
            })?
            .map_err(|source| DetectError::Query {
                code: det.code(),
                error: source,
            })?;
        for f in &mut found {
            if let Some(sev) = settings.severity {
                f.severity = sev;
            }
        }
        found.retain(|f| !allow.suppresses(f, now));
        if let Ok(mut t) = d.timings.lock() {
            t.push((det.code(), started.elapsed(), found.len()));
        }
        findings.extend(found);
    }
    combine_off_hours_bursts(&mut findings);
    sort_findings(&mut findings);
    Ok(findings)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".into())
}

/// The order findings are printed and sent in: window start, severity (highest first), code,
/// key.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (
            a.window_start.as_str(),
            std::cmp::Reverse(a.severity),
            a.code,
            a.key.as_str(),
        )
            .cmp(&(
                b.window_start.as_str(),
                std::cmp::Reverse(b.severity),
                b.code,
                b.key.as_str(),
            ))
    });
}

/// An off-hours burst (VG008) is one alert: the plain burst (VG007) and the off-hours read
/// (VG005) of the same principal on the same day are folded into it.
fn combine_off_hours_bursts(findings: &mut Vec<Finding>) {
    let combined: BTreeMap<(String, String), ()> = findings
        .iter()
        .filter(|f| f.code == "VG008")
        .map(|f| ((f.actor_id.clone(), f.window_start[..10].to_owned()), ()))
        .collect();
    if combined.is_empty() {
        return;
    }
    findings.retain(|f| {
        !((f.code == "VG007" || f.code == "VG005")
            && combined.contains_key(&(f.actor_id.clone(), f.window_start[..10].to_owned())))
    });
}

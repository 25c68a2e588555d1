//! `vigil.toml`: parsed once at the edge into typed settings. Unknown keys are errors.
//!
//! Every section of the configuration (README, Configuration): `[store]`, `[ingest]`, `[sources]`, `[calendar]`,
//! `[[environments]]`, `[[peer_groups]]`, `[canaries]`, `[query]`, `[smtp]`, `[alerts]`, `[detectors.CODE]`,
//! `[[allowlist]]`, `[object_store]`, and `[serve]` with its inputs and schedules (the `serve`
//! and `schedule` submodules: the service runs what they describe, and this module depends on
//! no part of the service). Errors name the key.

pub mod schedule;
pub mod serve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::calendar::{parse_hours, parse_tz, parse_weekday, Calendar};
pub use crate::detect::allowlist::Entry as AllowEntry;
use crate::detect::DetectConfig;
use crate::detect::Severity;
use crate::environments::{Environment, Environments, Facet, Rule};
use crate::mail::settings::RawSmtp;
use crate::mail::settings::SmtpSettings;
use crate::peer_groups::{PeerGroup, PeerGroups};
use crate::query::QuerySettings;
use crate::timerange::parse_duration;

/// Default `--store`.
pub const DEFAULT_STORE: &str = "./vigil-data";
/// Default config file, read when present.
pub const DEFAULT_CONFIG: &str = "vigil.toml";
/// Default limit on one input record.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    sources: RawSources,
    calendar: Option<RawCalendar>,
    #[serde(default)]
    environments: Vec<RawEnvironment>,
    #[serde(default)]
    peer_groups: Vec<RawEnvironment>,
    canaries: Option<RawCanaries>,
    #[serde(default)]
    query: RawQuery,
    smtp: Option<RawSmtp>,
    alerts: Option<RawAlerts>,
    detectors: Option<toml::Table>,
    #[serde(default)]
    allowlist: Vec<RawAllow>,
    serve: Option<serve::RawServe>,
    #[serde(default)]
    object_store: crate::object_storage::settings::RawObjectStore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default)]
    email_to: Vec<String>,
    min_severity: Option<String>,
    suppress_for: Option<String>,
    webhook_url_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    detectors: Vec<String>,
    actor: Option<String>,
    resource: Option<String>,
    network: Option<String>,
    expires: Option<String>,
    reason: Option<String>,
}

/// `[alerts]`: where findings go and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    pub email_to: Vec<String>,
    /// Findings below it are printed by `vigil detect`, not sent.
    pub min_severity: Severity,
    /// A finding with the same (detector, key) is not sent again within this time.
    pub suppress_for: Duration,
    /// Name of the environment variable holding a webhook URL.
    pub webhook_url_env: Option<String>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            email_to: Vec::new(),
            min_severity: Severity::Medium,
            suppress_for: Duration::from_secs(24 * 3600),
            webhook_url_env: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    keep_raw: Option<bool>,
    outbox_dir: Option<PathBuf>,
    checkpoint_every: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_line_bytes: Option<usize>,
    hold_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    vault_cluster: Option<String>,
    k8s_cluster: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    timezone: Option<String>,
    business_hours: Option<String>,
    workdays: Option<Vec<String>>,
    holidays: Option<Vec<String>>,
    #[serde(default)]
    principal_timezones: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    name: String,
    #[serde(rename = "match")]
    rules: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanaries {
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    memory_limit: Option<String>,
    timeout: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[store] path`, if set (the CLI and `VIGIL_STORE` take precedence).
    pub store_path: Option<PathBuf>,
    pub keep_raw: bool,
    /// `[store] outbox_dir`, if set (default `<store>/state/outbox`).
    pub outbox_dir: Option<PathBuf>,
    /// `[store] checkpoint_every`: commits between commit-log checkpoints (0: none).
    pub checkpoint_every: u64,
    pub max_line_bytes: usize,
    /// `[ingest] hold_for`: how long a file's unfinished last line waits for its end.
    pub hold_for: Duration,
    pub vault_cluster: String,
    pub k8s_cluster: String,
    /// `[query]`, `[calendar]`, `[[environments]]`, `[[peer_groups]]`, `[canaries]`.
    pub query: QuerySettings,
    pub smtp: Option<SmtpSettings>,
    pub alerts: AlertSettings,
    /// `[detectors.CODE]`, `[[allowlist]]`.
    pub detect: DetectConfig,
    /// `[serve]`, when the file has one (`vigil serve` needs its inputs).
    pub serve: Option<serve::ServeSettings>,
    /// `[object_store]`: the endpoint, region and plain-HTTP rule for `s3://` paths.
    pub object_store: crate::object_storage::ObjectStoreSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store_path: None,
            keep_raw: true,
            outbox_dir: None,
            checkpoint_every: crate::store::checkpoint::DEFAULT_CHECKPOINT_EVERY,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            hold_for: crate::ingest::run::DEFAULT_HOLD_FOR,
            vault_cluster: "default".into(),
            k8s_cluster: "default".into(),
            query: QuerySettings::default(),
            smtp: None,
            alerts: AlertSettings::default(),
            detect: DetectConfig::default(),
            serve: None,
            object_store: Default::default(),
        }
    }
}

impl Config {
    /// `[store] outbox_dir`, else `<store>/state/outbox`: where mail and webhook bodies wait.
    pub fn outbox(&self, store_root: &std::path::Path) -> PathBuf {
        self.outbox_dir
            .clone()
            .unwrap_or_else(|| store_root.join("state").join("outbox"))
    }

    /// How an ingest at `now` reads its inputs under these settings (`source` forces a format).
    pub fn ingest_options(
        &self,
        source: Option<crate::event::SourceKind>,
        strict: bool,
        now: i64,
    ) -> crate::ingest::IngestOptions {
        crate::ingest::IngestOptions {
            source,
            strict,
            max_record_bytes: self.max_line_bytes,
            parse: crate::ingest::ParseOptions {
                keep_raw: self.keep_raw,
                vault_cluster: self.vault_cluster.clone(),
                k8s_cluster: self.k8s_cluster.clone(),
            },
            progress: false,
            now,
            dedupe_budget: crate::store::dedupe::DEFAULT_BUDGET,
            hold_for: i64::try_from(self.hold_for.as_nanos()).unwrap_or(i64::MAX),
            discard_held: false,
            object_store: self.object_store.clone(),
            max_records: None,
        }
    }

    /// Reads `path`; with `explicit = false` a missing file means the defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default())
            }
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    error: e,
                })
            }
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let d = Config::default();
        let max_line_bytes = raw.ingest.max_line_bytes.unwrap_or(d.max_line_bytes);
        if max_line_bytes < 1024 {
            return Err("ingest.max_line_bytes must be at least 1024".into());
        }
        let name = |v: Option<String>, key: &str, default: String| -> Result<String, String> {
            match v {
                Some(s) if s.is_empty() || s.contains(['/', ':', ' ']) => Err(format!(
                    "{key} must be a non-empty name without '/', ':' or spaces"
                )),
                Some(s) => Ok(s),
                None => Ok(default),
            }
        };
        let query_memory_limit = match raw.query.memory_limit {
            Some(t) => parse_size(&t).map_err(|e| format!("query.memory_limit: {e}"))?,
            None => d.query.memory_limit,
        };
        if query_memory_limit < 16 << 20 {
            return Err("query.memory_limit must be at least 16MiB".into());
        }
        let hold_for = match raw.ingest.hold_for {
            Some(t) => parse_duration(&t).map_err(|e| format!("ingest.hold_for: {e}"))?,
            None => d.hold_for,
        };
        let query_timeout = match raw.query.timeout {
            Some(t) => parse_duration(&t).map_err(|e| format!("query.timeout: {e}"))?,
            None => d.query.timeout,
        };
        if query_timeout.is_zero() {
            return Err("query.timeout must be more than 0s".into());
        }
        Ok(Config {
            store_path: raw.store.path,
            keep_raw: raw.store.keep_raw.unwrap_or(d.keep_raw),
            outbox_dir: raw.store.outbox_dir,
            checkpoint_every: raw.store.checkpoint_every.unwrap_or(d.checkpoint_every),
            query: QuerySettings {
                memory_limit: query_memory_limit,
                timeout: query_timeout,
                calendar: match raw.calendar {
                    Some(c) => calendar(c)?,
                    None => d.query.calendar,
                },
                environments: environments(raw.environments)?,
                peer_groups: peer_groups(raw.peer_groups)?,
                canaries: raw.canaries.map(|c| c.resources).unwrap_or_default(),
            },
            smtp: raw.smtp.map(crate::mail::settings::parse).transpose()?,
            alerts: raw.alerts.map(alerts).transpose()?.unwrap_or_default(),
            detect: DetectConfig {
                detectors: match raw.detectors {
                    Some(t) => crate::detect::params::validate(&t)?,
                    None => BTreeMap::new(),
                },
                allowlist: raw
                    .allowlist
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| allow(i, a))
                    .collect::<Result<_, _>>()?,
            },
            serve: raw.serve.map(serve::parse).transpose()?,
            object_store: crate::object_storage::settings::parse(raw.object_store)?,
            max_line_bytes,
            hold_for,
            vault_cluster: name(
                raw.sources.vault_cluster,
                "sources.vault_cluster",
                d.vault_cluster,
            )?,
            k8s_cluster: name(
                raw.sources.k8s_cluster,
                "sources.k8s_cluster",
                d.k8s_cluster,
            )?,
        })
    }
}

/// A TOML error as its place and message, never quoting the line: the line may hold a secret
/// (a password written without quotes), and this text reaches logs.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Parses `512MiB`, `2GiB`, `1GB`, `1048576`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n
        .parse()
        .map_err(|_| format!("'{text}' is not a size like 512MiB or 2GiB"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return Err(format!("'{text}': unit must be B, KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{text}' is too large"))
}

fn calendar(raw: RawCalendar) -> Result<Calendar, String> {
    let mut c = Calendar::default();
    if let Some(tz) = raw.timezone {
        c.timezone = parse_tz(&tz).map_err(|e| format!("calendar.timezone: {e}"))?;
    }
    if let Some(h) = raw.business_hours {
        (c.start, c.end) = parse_hours(&h).map_err(|e| format!("calendar.business_hours: {e}"))?;
    }
    if let Some(days) = raw.workdays {
        c.workdays = [false; 7];
        for d in days {
            let wd = parse_weekday(&d).map_err(|e| format!("calendar.workdays: {e}"))?;
            c.workdays[wd.num_days_from_monday() as usize] = true;
        }
    }
    for h in raw.holidays.unwrap_or_default() {
        let day = chrono::NaiveDate::parse_from_str(&h, "%Y-%m-%d")
            .map_err(|_| format!("calendar.holidays: '{h}' is not a date YYYY-MM-DD"))?;
        c.holidays.push(day);
    }
    for (who, tz) in raw.principal_timezones {
        let zone = parse_tz(&tz).map_err(|e| format!("calendar.principal_timezones.{who}: {e}"))?;
        c.principal_timezones.insert(who, zone);
    }
    Ok(c)
}

fn environments(raw: Vec<RawEnvironment>) -> Result<Environments, String> {
    let mut configured = Vec::new();
    for (i, e) in raw.into_iter().enumerate() {
        let rules = named_rules("environments", i, &e)?;
        if rules.iter().any(|r| r.facet == Facet::Group) {
            return Err(format!(
                "environments[{i}] ({}).match: group: rules apply to principals in [[peer_groups]], not to environments",
                e.name
            ));
        }
        configured.push(Environment {
            name: e.name,
            rules,
        });
    }
    Ok(Environments { configured })
}

fn peer_groups(raw: Vec<RawEnvironment>) -> Result<PeerGroups, String> {
    let mut configured = Vec::new();
    for (i, g) in raw.into_iter().enumerate() {
        let rules = named_rules("peer_groups", i, &g)?;
        if rules.is_empty() {
            return Err(format!("peer_groups[{i}] ({}).match is empty", g.name));
        }
        configured.push(PeerGroup {
            name: g.name,
            rules,
        });
    }
    Ok(PeerGroups { configured })
}

/// The rules of a `name` + `match` table of array `key`, with errors naming the entry.
fn named_rules(key: &str, i: usize, e: &RawEnvironment) -> Result<Vec<Rule>, String> {
    if e.name.trim().is_empty() {
        return Err(format!("{key}[{i}].name is empty"));
    }
    e.rules
        .iter()
        .map(|r| Rule::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| format!("{key}[{i}] ({}).match: {m}", e.name))
}

fn alerts(raw: RawAlerts) -> Result<AlertSettings, String> {
    let d = AlertSettings::default();
    for to in &raw.email_to {
        crate::mail::parse_recipients(to).map_err(|e| format!("alerts.email_to: {e}"))?;
    }
    Ok(AlertSettings {
        email_to: raw.email_to,
        min_severity: match raw.min_severity {
            Some(s) => Severity::parse(&s).map_err(|e| format!("alerts.min_severity: {e}"))?,
            None => d.min_severity,
        },
        suppress_for: match raw.suppress_for {
            Some(t) => parse_duration(&t).map_err(|e| format!("alerts.suppress_for: {e}"))?,
            None => d.suppress_for,
        },
        webhook_url_env: raw.webhook_url_env,
    })
}

fn allow(i: usize, raw: RawAllow) -> Result<AllowEntry, String> {
    let key = |k: &str| format!("allowlist[{i}].{k}");
    let codes: Vec<&'static str> = crate::detect::all().iter().map(|d| d.code()).collect();
    for d in &raw.detectors {
        if !codes.contains(&d.as_str()) {
            return Err(format!(
                "{}: no detector {d} (the codes are {})",
                key("detectors"),
                codes.join(", ")
            ));
        }
    }
    let reason = raw.reason.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
        format!(
            "{} is required: say why these findings are accepted",
            key("reason")
        )
    })?;
    if raw.actor.is_none() && raw.resource.is_none() && raw.network.is_none() {
        return Err(format!(
            "allowlist[{i}] needs at least one of actor, resource, network (an entry matching everything would silence the detectors)"
        ));
    }
    let network = raw
        .network
        .map(|n| crate::net::parse_cidr(&n).map_err(|e| format!("{}: {e}", key("network"))))
        .transpose()?;
    let expires = raw
        .expires
        .map(|e| {
            chrono::NaiveDate::parse_from_str(&e, "%Y-%m-%d")
                .map(|d| {
                    d.succ_opt()
                        .unwrap_or(d)
                        .and_hms_opt(0, 0, 0)
                        .expect("midnight")
                        .and_utc()
                        .timestamp_nanos_opt()
                        .unwrap_or(i64::MAX)
                })
                .map_err(|_| format!("{}: '{e}' is not a date YYYY-MM-DD", key("expires")))
        })
        .transpose()?;
    Ok(AllowEntry {
        detectors: raw.detectors,
        actor: raw.actor,
        resource: raw.resource,
        network,
        expires,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[store]\nkeep_rwa = false\n").unwrap_err();
        assert!(err.contains("keep_rwa"), "{err}");
    }

    /// A syntax error says where, and never repeats the line: it may hold a secret.
    #[test]
    fn a_syntax_error_does_not_quote_its_line() {
        let err = Config::parse("[smtp]\nhost = \"h\"\npassword = Hunter2Secret\n").unwrap_err();
        assert!(!err.contains("Hunter2Secret"), "{err}");
        assert!(err.starts_with("line 3, column 12: "), "{err}");
    }

    #[test]
    fn values_are_read_and_checked() {
        let c = Config::parse("[store]\nkeep_raw = false\n[ingest]\nmax_line_bytes = 4096\n[sources]\nvault_cluster = \"eu1\"\n").unwrap();
        assert!(!c.keep_raw);
        assert_eq!(c.max_line_bytes, 4096);
        assert_eq!(c.vault_cluster, "eu1");
        assert!(Config::parse("[ingest]\nmax_line_bytes = 10\n")
            .unwrap_err()
            .contains("max_line_bytes"));
        assert!(Config::parse("[sources]\nvault_cluster = \"a/b\"\n").is_err());
    }

    #[test]
    fn report_sections_are_validated() {
        let c = Config::parse(
            "[calendar]\ntimezone = \"Europe/Paris\"\nbusiness_hours = \"09:00-17:30\"\nworkdays = [\"mon\", \"tue\"]\nholidays = [\"2026-12-25\"]\nprincipal_timezones = { alice = \"America/New_York\" }\n\
             [[environments]]\nname = \"prod\"\nmatch = [\"path:*/prod/*\"]\n\
             [[peer_groups]]\nname = \"payments\"\nmatch = [\"group:payments-*\", \"namespace:payments\"]\n\
             [query]\nmemory_limit = \"512MiB\"\ntimeout = \"30s\"\n\
             [smtp]\nhost = \"smtp.example.com\"\nfrom = \"vigil@example.com\"\nusername = \"v\"\npassword_env = \"P\"\n",
        )
        .unwrap();
        assert_eq!(c.query.calendar.timezone.name(), "Europe/Paris");
        assert!(c.query.calendar.workdays[1] && !c.query.calendar.workdays[2]);
        assert_eq!(c.query.environments.configured[0].name, "prod");
        assert_eq!(c.query.peer_groups.configured[0].name, "payments");
        assert_eq!(c.query.peer_groups.configured[0].rules.len(), 2);
        assert_eq!(c.query.memory_limit, 512 << 20);
        assert_eq!(c.query.timeout, Duration::from_secs(30));
        let smtp = c.smtp.unwrap();
        assert_eq!(
            (smtp.port, smtp.tls),
            (587, crate::mail::settings::SmtpTls::Starttls)
        );
        for (bad, key) in [
            (
                "[calendar]\ntimezone = \"Mars/Olympus\"\n",
                "calendar.timezone",
            ),
            (
                "[calendar]\nbusiness_hours = \"9-5\"\n",
                "calendar.business_hours",
            ),
            (
                "[[environments]]\nname = \"p\"\nmatch = [\"host:x\"]\n",
                "environments[0]",
            ),
            (
                "[[environments]]\nname = \"p\"\nmatch = [\"group:x\"]\n",
                "apply to principals in [[peer_groups]]",
            ),
            (
                "[[peer_groups]]\nname = \"p\"\nmatch = []\n",
                "peer_groups[0] (p).match is empty",
            ),
            (
                "[[peer_groups]]\nname = \"p\"\nmatch = [\"team:x\"]\n",
                "peer_groups[0] (p).match",
            ),
            ("[query]\ntimeout = \"soon\"\n", "query.timeout"),
            (
                "[smtp]\nhost = \"mail.example.com\"\ntls = \"none\"\nfrom = \"a@b\"\n",
                "only allowed to localhost",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"a@b\"\npassword = \"hunter2\"\n",
                "smtp.password is not allowed",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"a@b\"\nusername = \"u\"\n",
                "smtp.username",
            ),
        ] {
            let err = Config::parse(bad).unwrap_err();
            assert!(err.contains(key), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(
            Config::parse("[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"a@b\"\n").is_ok()
        );
    }

    #[test]
    fn later_sections_are_accepted() {
        assert!(Config::parse(
            "[calendar]\ntimezone = \"UTC\"\n[[allowlist]]\nactor = \"ci-*\"\nreason = \"CI\"\n"
        )
        .is_ok());
    }
}

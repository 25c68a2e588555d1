//! `[serve]` and `[[serve.inputs]]` in `vigil.toml`: what `vigil serve` reads, how often it
//! commits and looks for findings, and where it answers health checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::schedule::{self, Schedule, Task};
use crate::event::SourceKind;
use crate::object_storage::ObjectUrl;
use crate::timerange::parse_duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServe {
    listen: Option<String>,
    commit_interval: Option<String>,
    commit_records: Option<i64>,
    stuck_after: Option<String>,
    detect_every: Option<String>,
    detect_delay: Option<String>,
    detect_backfill: Option<String>,
    #[serde(default)]
    inputs: Vec<RawInput>,
    #[serde(default)]
    schedule: Vec<super::schedule::RawSchedule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    path: String,
    source: Option<String>,
    poll_every: Option<String>,
}

/// Validated `[serve]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    /// Where `/healthz` and `/metrics` answer.
    pub listen: SocketAddr,
    /// How often what arrived is committed (one commit per interval that read something).
    pub commit_interval: Duration,
    /// A commit is made as soon as about this many records wait (estimated from the bytes
    /// appended), and holds at most about this many: a backlog is read in several commits, one
    /// right after the other, each step short enough for a stop request to be seen soon.
    pub commit_records: u64,
    /// A step (a commit, a detection, a scheduled task) or a send of alerts running longer than
    /// this makes `/healthz` answer 503: the service is stuck, not just slow.
    pub stuck_after: Duration,
    /// How often the service looks for closed hours to run the detectors over.
    pub detect_every: Duration,
    /// How long after an hour ends it is judged: events that arrive late (CloudTrail delivers
    /// 5 to 15 minutes after the call) still count in their hour.
    pub detect_delay: Duration,
    /// On a first start over a store with history, the hours before the start judged at most
    /// this far back (a service started over a year of history must not mail a year of alerts).
    pub detect_backfill: Duration,
    pub inputs: Vec<ServeInput>,
    /// `[[serve.schedule]]`, plus a nightly compaction unless one of them compacts.
    pub schedules: Vec<Schedule>,
}

/// One `[[serve.inputs]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeInput {
    /// A file, a directory (read recursively), or a file-name pattern (`*`, `?`) in a directory.
    pub path: PathBuf,
    /// An object-store prefix instead of a local path (`path = "s3://bucket/prefix/"`).
    pub object: Option<ObjectUrl>,
    /// Read as this source whatever the content looks like.
    pub source: Option<SourceKind>,
    /// How often the input is looked at: listing a bucket costs requests, so object inputs
    /// are polled every [`DEFAULT_OBJECT_POLL`] by default; files at every commit interval.
    pub poll_every: Option<Duration>,
}

/// `poll_every` of an object input unless set.
pub const DEFAULT_OBJECT_POLL: Duration = Duration::from_secs(60);

impl ServeInput {
    /// How the input is named in logs, health and metrics.
    pub fn name(&self) -> String {
        match &self.object {
            Some(u) => u.to_string(),
            None => self.path.display().to_string(),
        }
    }

    /// The least time between two looks at it.
    pub fn poll_every(&self) -> Duration {
        match (self.poll_every, &self.object) {
            (Some(d), _) => d,
            (None, Some(_)) => DEFAULT_OBJECT_POLL,
            (None, None) => Duration::ZERO,
        }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            commit_interval: Duration::from_secs(10),
            commit_records: 100_000,
            stuck_after: Duration::from_secs(15 * 60),
            detect_every: Duration::from_secs(5 * 60),
            detect_delay: Duration::from_secs(2 * 60),
            detect_backfill: Duration::from_secs(24 * 3600),
            inputs: Vec::new(),
            schedules: vec![schedule::default_compaction()],
        }
    }
}

/// Checks `[serve]`; errors name the key.
pub fn parse(raw: RawServe) -> Result<ServeSettings, String> {
    let d = ServeSettings::default();
    let duration = |v: Option<String>, key: &str, default: Duration| -> Result<Duration, String> {
        match v {
            None => Ok(default),
            Some(t) => {
                let d = parse_duration(&t).map_err(|e| format!("serve.{key}: {e}"))?;
                if d.is_zero() {
                    return Err(format!("serve.{key} must be more than 0s"));
                }
                Ok(d)
            }
        }
    };
    let listen = match raw.listen {
        None => d.listen,
        Some(a) => a.parse().map_err(|_| {
            format!("serve.listen: '{a}' is not an address like 127.0.0.1:9464 or [::1]:9464")
        })?,
    };
    let inputs = raw
        .inputs
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.path.trim().is_empty() {
                return Err(format!("serve.inputs[{i}].path is empty"));
            }
            let poll_every = r
                .poll_every
                .map(|t| match parse_duration(&t) {
                    Ok(d) if d.is_zero() => {
                        Err(format!("serve.inputs[{i}].poll_every must be more than 0s"))
                    }
                    Ok(d) => Ok(d),
                    Err(e) => Err(format!("serve.inputs[{i}].poll_every: {e}")),
                })
                .transpose()?;
            let object =
                ObjectUrl::parse(&r.path).map_err(|e| format!("serve.inputs[{i}].path: {e}"))?;
            let source = r
                .source
                .map(|s| {
                    SourceKind::parse(&s).ok_or_else(|| {
                        format!(
                            "serve.inputs[{i}].source: '{s}' is not a source ({})",
                            SourceKind::names()
                        )
                    })
                })
                .transpose()?;
            let path = PathBuf::from(&r.path);
            let parent_has_pattern = path
                .parent()
                .is_some_and(|p| p.to_string_lossy().contains(['*', '?']))
                || (object.is_some() && r.path.contains(['*', '?']));
            if parent_has_pattern {
                return Err(format!(
                    "serve.inputs[{i}].path: '{}': only the file name may hold * or ?",
                    r.path
                ));
            }
            Ok(ServeInput {
                path,
                object,
                source,
                poll_every,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut schedules = raw
        .schedule
        .into_iter()
        .enumerate()
        .map(|(i, r)| schedule::parse(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, s) in schedules.iter().enumerate() {
        if schedules[..i].iter().any(|o| o.name == s.name) {
            return Err(format!(
                "serve.schedule[{i}].name: '{}' is used twice (the name keeps its slots)",
                s.name
            ));
        }
    }
    if !schedules.iter().any(|s| s.task == Task::Compact) {
        schedules.extend(d.schedules);
    }
    Ok(ServeSettings {
        schedules,
        listen,
        commit_interval: duration(raw.commit_interval, "commit_interval", d.commit_interval)?,
        commit_records: match raw.commit_records {
            None => d.commit_records,
            Some(n) if n >= 1 => n as u64,
            Some(n) => return Err(format!("serve.commit_records must be at least 1, not {n}")),
        },
        stuck_after: duration(raw.stuck_after, "stuck_after", d.stuck_after)?,
        detect_every: duration(raw.detect_every, "detect_every", d.detect_every)?,
        detect_delay: match raw.detect_delay {
            None => d.detect_delay,
            Some(t) => parse_duration(&t).map_err(|e| format!("serve.detect_delay: {e}"))?,
        },
        detect_backfill: match raw.detect_backfill {
            None => d.detect_backfill,
            Some(t) => parse_duration(&t).map_err(|e| format!("serve.detect_backfill: {e}"))?,
        },
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_toml(text: &str) -> Result<ServeSettings, String> {
        let raw: RawServe = toml::from_str(text).map_err(|e| e.to_string())?;
        parse(raw)
    }

    #[test]
    fn defaults_and_inputs() {
        let s = parse_toml(
            r#"
commit_interval = "2s"
[[inputs]]
path = "/var/log/vault/audit*.log"
source = "vault"
[[inputs]]
path = "/var/log/k8s"
"#,
        )
        .unwrap();
        assert_eq!(s.commit_interval, Duration::from_secs(2));
        assert_eq!(s.detect_every, Duration::from_secs(300));
        assert_eq!(s.commit_records, 100_000);
        assert_eq!(s.stuck_after, Duration::from_secs(900));
        assert_eq!(s.listen.port(), 9464);
        assert_eq!(s.inputs[0].source, Some(SourceKind::Vault));
        assert_eq!(s.inputs[1].source, None);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse_toml("[[inputs]]\npath = \"/x\"\nsource = \"splunk\"").unwrap_err();
        assert!(e.starts_with("serve.inputs[0].source: 'splunk'"), "{e}");
        let e = parse_toml("commit_records = 0").unwrap_err();
        assert_eq!(e, "serve.commit_records must be at least 1, not 0");
        let e = parse_toml("commit_interval = \"0s\"").unwrap_err();
        assert_eq!(e, "serve.commit_interval must be more than 0s");
        let e = parse_toml("listen = \"localhost\"").unwrap_err();
        assert!(e.starts_with("serve.listen:"), "{e}");
        let s = parse_toml("[[inputs]]\npath = \"s3://trail/AWSLogs/\"\n[[inputs]]\npath = \"/var/log/a.log\"\npoll_every = \"30s\"").unwrap();
        assert_eq!(s.inputs[0].object.as_ref().unwrap().prefix, "AWSLogs");
        assert_eq!(s.inputs[0].poll_every(), DEFAULT_OBJECT_POLL);
        assert_eq!(s.inputs[1].poll_every(), Duration::from_secs(30));
        let e = parse_toml("[[inputs]]\npath = \"gs://trail/AWSLogs/\"").unwrap_err();
        assert!(
            e.contains("serve.inputs[0].path") && e.contains("not supported yet"),
            "{e}"
        );
        let e = parse_toml("[[inputs]]\npath = \"/x\"\npoll_every = \"0s\"").unwrap_err();
        assert!(e.contains("poll_every must be more than 0s"), "{e}");
        let e = parse_toml("[[inputs]]\npath = \"/var/*/audit.log\"").unwrap_err();
        assert!(e.contains("only the file name"), "{e}");
    }
}

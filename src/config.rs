//! `vigil.toml`: parsed once at the edge into typed settings. Unknown keys are errors.
//!
//! Sections read today: `[store]`, `[ingest]`, `[sources]`. The other sections of the design
//! (`calendar`, `environments`, `canaries`, `query`, `smtp`, `alerts`, `detectors`, `allowlist`)
//! are accepted as tables so one file serves every vigil version, and are validated by the
//! features that use them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Default `--store`.
pub const DEFAULT_STORE: &str = "./vigil-data";
/// Default config file, read when present.
pub const DEFAULT_CONFIG: &str = "vigil.toml";
/// Default limit on one input record.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "sections for later features are accepted, not yet read"
)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    sources: RawSources,
    calendar: Option<toml::Table>,
    environments: Option<Vec<toml::Table>>,
    canaries: Option<toml::Table>,
    query: Option<toml::Table>,
    smtp: Option<toml::Table>,
    alerts: Option<toml::Table>,
    detectors: Option<toml::Table>,
    allowlist: Option<Vec<toml::Table>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "outbox_dir is read by the mail features")]
struct RawStore {
    path: Option<PathBuf>,
    keep_raw: Option<bool>,
    outbox_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_line_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    vault_cluster: Option<String>,
    k8s_cluster: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[store] path`, if set (the CLI and `VIGIL_STORE` take precedence).
    pub store_path: Option<PathBuf>,
    pub keep_raw: bool,
    pub max_line_bytes: usize,
    pub vault_cluster: String,
    pub k8s_cluster: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store_path: None,
            keep_raw: true,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            vault_cluster: "default".into(),
            k8s_cluster: "default".into(),
        }
    }
}

impl Config {
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
                    source: e,
                })
            }
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
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
        Ok(Config {
            store_path: raw.store.path,
            keep_raw: raw.store.keep_raw.unwrap_or(d.keep_raw),
            max_line_bytes,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[store]\nkeep_rwa = false\n").unwrap_err();
        assert!(err.contains("keep_rwa"), "{err}");
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
    fn later_sections_are_accepted() {
        assert!(
            Config::parse("[calendar]\ntimezone = \"UTC\"\n[[allowlist]]\nactor = \"ci-*\"\n")
                .is_ok()
        );
    }
}

//! `[smtp]` in `vigil.toml`: the settings mail is sent with, checked when the config is read.

use std::path::PathBuf;

use serde::Deserialize;

use crate::net::is_loopback_host;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<String>,
    from: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    /// Refused with a sentence: passwords never live in the config file.
    password: Option<toml::Value>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// No TLS: only to a loopback host.
    None,
}

/// Where the SMTP password comes from; the value is read when a message is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    /// User name and where its password is.
    pub auth: Option<(String, PasswordSource)>,
    pub ca_file: Option<PathBuf>,
}

/// The `[smtp]` section checked: what `vigil.toml` may say about mail, and what it may not
/// (a password, plain SMTP to a remote host).
pub fn parse(raw: RawSmtp) -> Result<SmtpSettings, String> {
    if raw.password.is_some() {
        return Err(
            "smtp.password is not allowed: put the password in a file named by \
                    smtp.password_file, or in an environment variable named by smtp.password_env"
                .into(),
        );
    }
    let tls = match raw.tls.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpTls::Starttls,
        "implicit" => SmtpTls::Implicit,
        "none" => SmtpTls::None,
        other => {
            return Err(format!(
                "smtp.tls: '{other}' is not one of starttls, implicit, none"
            ))
        }
    };
    if raw.host.trim().is_empty() {
        return Err("smtp.host is empty".into());
    }
    if tls == SmtpTls::None && !is_loopback_host(&raw.host) {
        return Err(format!(
            "smtp.tls = \"none\" is only allowed to localhost, not {}: use \"starttls\" or \"implicit\"",
            raw.host
        ));
    }
    if !raw.from.contains('@') || raw.from.contains(['\r', '\n']) {
        return Err(format!("smtp.from: '{}' is not an email address", raw.from));
    }
    let password = match (raw.password_file, raw.password_env) {
        (Some(_), Some(_)) => {
            return Err("give smtp.password_file or smtp.password_env, not both".into())
        }
        (Some(f), None) => Some(PasswordSource::File(f)),
        (None, Some(e)) => Some(PasswordSource::Env(e)),
        (None, None) => None,
    };
    let auth = match (raw.username, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        (Some(_), None) => {
            return Err("smtp.username needs smtp.password_file or smtp.password_env".into())
        }
        (None, Some(_)) => return Err("smtp.password_file/password_env need smtp.username".into()),
    };
    let port = raw.port.unwrap_or(match tls {
        SmtpTls::Implicit => 465,
        SmtpTls::Starttls => 587,
        SmtpTls::None => 25,
    });
    Ok(SmtpSettings {
        host: raw.host,
        port,
        tls,
        from: raw.from,
        auth,
        ca_file: raw.ca_file,
    })
}

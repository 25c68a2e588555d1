//! The SMTP client: TLS as configured (implicit, STARTTLS required, or plain to loopback only),
//! AUTH with a password read from a file or an environment variable at send time.

use std::time::Duration;

use lettre::address::Envelope as LettreEnvelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, SmtpTransport, Transport};

use super::settings::{PasswordSource, SmtpSettings, SmtpTls};
use super::MailError;
use crate::net::is_loopback_host;

fn server(s: &SmtpSettings) -> String {
    format!("{}:{}", s.host, s.port)
}

fn smtp_err(s: &SmtpSettings, reason: impl std::fmt::Display) -> MailError {
    MailError::Smtp {
        server: server(s),
        reason: reason.to_string(),
    }
}

/// Reads the password; errors name where it should be, never what it is.
fn password(source: &PasswordSource) -> Result<String, MailError> {
    match source {
        PasswordSource::File(path) => std::fs::read_to_string(path)
            .map(|p| p.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| {
                MailError::Password(format!(
                    "cannot read the SMTP password file {}: {}",
                    path.display(),
                    e.kind()
                ))
            }),
        PasswordSource::Env(name) => std::env::var(name).map_err(|_| {
            MailError::Password(format!(
                "environment variable {name} (smtp.password_env) is not set"
            ))
        }),
    }
}

fn transport(s: &SmtpSettings) -> Result<SmtpTransport, MailError> {
    let tls_parameters = || -> Result<TlsParameters, MailError> {
        let mut b = TlsParameters::builder(s.host.clone());
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                smtp_err(s, format!("cannot read smtp.ca_file {}: {e}", ca.display()))
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| smtp_err(s, format!("smtp.ca_file {}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| smtp_err(s, e))
    };
    let tls = match s.tls {
        SmtpTls::Implicit => Tls::Wrapper(tls_parameters()?),
        SmtpTls::Starttls => Tls::Required(tls_parameters()?),
        SmtpTls::None => {
            // Checked when the config was read; checked again here because it guards credentials.
            if !is_loopback_host(&s.host) {
                return Err(smtp_err(s, "plain SMTP is only allowed to localhost"));
            }
            Tls::None
        }
    };
    let mut b = SmtpTransport::builder_dangerous(&s.host)
        .port(s.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    if let Some((user, source)) = &s.auth {
        b = b.credentials(Credentials::new(user.clone(), password(source)?));
    }
    Ok(b.build())
}

/// Sends bytes that `super::build` formatted (lettre made them; nothing else is sent raw).
pub fn send_raw(
    s: &SmtpSettings,
    from: &str,
    to: &[String],
    bytes: &[u8],
) -> Result<(), MailError> {
    let addr = |t: &str| {
        t.parse::<Address>()
            .map_err(|_| MailError::Address(t.to_owned()))
    };
    let to = to.iter().map(|t| addr(t)).collect::<Result<Vec<_>, _>>()?;
    let envelope =
        LettreEnvelope::new(Some(addr(from)?), to).map_err(|e| MailError::Build(e.to_string()))?;
    let t = transport(s)?;
    t.send_raw(&envelope, bytes).map_err(|e| smtp_err(s, e))?;
    Ok(())
}

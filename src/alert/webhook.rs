//! The webhook notifier: one JSON POST per run (`{"text": ..., "findings": [...]}`, the `text`
//! field is what Slack and Mattermost incoming webhooks show). HTTP/1.1 over rustls for `https`
//! (system trust store), plain TCP only to a loopback host. The URL comes from the environment
//! variable named by `[alerts] webhook_url_env`, since it usually embeds a token: errors name
//! the host only.
//!
//! Like mail, a body is written durably to `<outbox>/webhook/pending/` before it is posted and
//! moved to `webhook/sent/` after a 2xx answer; every run posts what waits first, in order, and
//! stops at the first failure. The URL is never written down.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::net::is_loopback_host;

#[derive(Debug)]
struct Url {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Url, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("the webhook URL must start with https:// (or http:// to localhost)".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || authority.is_empty() {
        return Err("the webhook URL has no usable host".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.to_owned(), p),
            Err(_) => (authority.to_owned(), if tls { 443 } else { 80 }),
        },
        _ => (authority.to_owned(), if tls { 443 } else { 80 }),
    };
    if !tls && !is_loopback_host(&host) {
        return Err(format!(
            "plain http is only allowed to localhost, not {host}: use https"
        ));
    }
    Ok(Url {
        tls,
        host: host.trim_matches(['[', ']']).to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// POSTs `body` as JSON; Ok when the server answers 2xx.
pub fn post(url: &str, body: &[u8]) -> Result<(), String> {
    let u = parse(url)?;
    let place = format!("{}:{}", u.host, u.port);
    let fail = |e: &dyn std::fmt::Display| format!("webhook {place}: {e}");
    let addr = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| fail(&e))?
        .next()
        .ok_or_else(|| fail(&"no address"))?;
    let timeout = Duration::from_secs(15);
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(&e))?;
    tcp.set_read_timeout(Some(timeout)).map_err(|e| fail(&e))?;
    tcp.set_write_timeout(Some(timeout)).map_err(|e| fail(&e))?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vigil/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        u.path,
        u.host,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let mut response = Vec::new();
    if u.tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(u.host.clone()).map_err(|e| fail(&e))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| fail(&e))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(request.as_bytes()).map_err(|e| fail(&e))?;
        s.write_all(body).map_err(|e| fail(&e))?;
        s.flush().map_err(|e| fail(&e))?;
        let _ = s.read_to_end(&mut response);
    } else {
        let mut s = tcp;
        s.write_all(request.as_bytes()).map_err(|e| fail(&e))?;
        s.write_all(body).map_err(|e| fail(&e))?;
        let _ = s.read_to_end(&mut response);
    }
    let status = String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if (200..300).contains(&code) {
        Ok(())
    } else if code == 0 {
        Err(fail(&"no HTTP response"))
    } else {
        Err(fail(&format!("answered {code}")))
    }
}

/// What posting the waiting webhook bodies did.
#[derive(Debug)]
pub struct Posted {
    pub posted: usize,
    /// Bodies still waiting after this run.
    pub waiting: usize,
    pub dir: PathBuf,
    /// Why the first one still waiting was not posted.
    pub error: Option<String>,
}

fn pending_dir(outbox: &Path) -> PathBuf {
    outbox.join("webhook").join("pending")
}

/// Writes the body of alert `id` to be posted under `pending/`, named by `now` so waiting
/// bodies go out in the order they were queued.
pub fn queue(outbox: &Path, now: i64, id: &str, body: &[u8]) -> std::io::Result<PathBuf> {
    let dir = pending_dir(outbox);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{now:020}-{id}.json"));
    crate::fsutil::write_atomic(&path, body)?;
    Ok(path)
}

/// The ids of the alerts whose bodies are waiting or were posted (`<time>-<id>.json`).
pub fn alert_ids(outbox: &Path) -> std::collections::HashSet<String> {
    [pending_dir(outbox), outbox.join("webhook").join("sent")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let (_, rest) = name.split_once('-')?;
            Some(rest.strip_suffix(".json")?.to_owned())
        })
        .collect()
}

/// Posts the waiting bodies, oldest first, to `url` (or explains why there is no URL); `None`
/// when nothing waits.
pub fn flush(outbox: &Path, url: Result<String, String>) -> Option<Posted> {
    let dir = pending_dir(outbox);
    let mut waiting: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    if waiting.is_empty() {
        return None;
    }
    waiting.sort();
    let mut out = Posted {
        posted: 0,
        waiting: waiting.len(),
        dir: dir.clone(),
        error: None,
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            out.error = Some(e);
            return Some(out);
        }
    };
    let sent = outbox.join("webhook").join("sent");
    for path in waiting {
        let result = std::fs::read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|body| post(&url, &body))
            .and_then(|()| {
                std::fs::create_dir_all(&sent)
                    .and_then(|()| {
                        std::fs::rename(&path, sent.join(path.file_name().unwrap_or_default()))
                    })
                    .and_then(|()| crate::fsutil::sync_dir(&dir))
                    .map_err(|e| format!("{}: {e}", path.display()))
            });
        match result {
            Ok(()) => {
                out.posted += 1;
                out.waiting -= 1;
            }
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn urls() {
        let u = parse("https://hooks.example.com/services/T0/B0/xyz").unwrap();
        assert!(
            u.tls
                && u.port == 443
                && u.host == "hooks.example.com"
                && u.path == "/services/T0/B0/xyz"
        );
        let u = parse("http://127.0.0.1:8080/hook").unwrap();
        assert!(!u.tls && u.port == 8080 && u.path == "/hook");
        assert!(parse("http://hooks.example.com/x")
            .unwrap_err()
            .contains("only allowed to localhost"));
        assert!(parse("ftp://x").is_err());
        assert!(parse("https://user:pw@host/x").is_err());
    }
}

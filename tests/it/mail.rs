//! Report mail through a real SMTP server (aiosmtpd, started here): STARTTLS with AUTH against a
//! test CA, a server without STARTTLS, a wrong password, and an outage with the outbox.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

pub const PASSWORD: &str = "sentinel-smtp-pw-6f1d2c";

fn python() -> PathBuf {
    python_with("aiosmtpd")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA and a certificate for 127.0.0.1 signed by it (rustls refuses a self-signed leaf).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca = write(&dir.join("ca.pem"), ca_cert.pem());
    let cert = write(&dir.join("server.pem"), leaf.pem());
    let key = write(&dir.join("server.key"), leaf_key.serialize_pem());
    (ca, cert, key)
}

pub struct Server {
    child: Child,
    out: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(dir: &Path, port: u16, mode: &str, certs: &(PathBuf, PathBuf, PathBuf)) -> Server {
        Server::start_with(dir, port, mode, certs, &[])
    }

    /// [`Server::start`] with more arguments to `smtp_server.py` (`--stall`).
    pub fn start_with(
        dir: &Path,
        port: u16,
        mode: &str,
        certs: &(PathBuf, PathBuf, PathBuf),
        more: &[&str],
    ) -> Server {
        let out = dir.join(format!("received-{mode}-{port}-{}", more.join("")));
        std::fs::create_dir_all(&out).unwrap();
        let mut child = Command::new(python())
            .arg(repo().join("tests/support/smtp_server.py"))
            .args([
                "--port",
                &port.to_string(),
                "--mode",
                mode,
                "--user",
                "vigil",
                "--password",
                PASSWORD,
            ])
            .arg("--cert")
            .arg(&certs.1)
            .arg("--key")
            .arg(&certs.2)
            .arg("--out")
            .arg(&out)
            .args(more)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("smtp-{mode}-{port}.log"))).unwrap())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP server started");
        Server { child, out }
    }

    /// Whether a `--stall` server has begun to take a message's data (and hangs there).
    pub fn stalled(&self) -> bool {
        self.out.join("stalled").exists()
    }

    /// Delivered messages, oldest first, parsed by Python's email package.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let out = Command::new(python())
                    .arg(repo().join("tests/support/read_mail.py"))
                    .arg(p)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&out.stdout).unwrap()
            })
            .collect()
    }

    fn auth_log(&self) -> String {
        std::fs::read_to_string(self.out.join("auth.log")).unwrap_or_default()
    }
}

fn smtp_config(dir: &Path, port: u16, tls: &str, ca: &Path, password_file: &Path) -> PathBuf {
    config(
        dir,
        &format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nfrom = \"vigil@example.com\"\nusername = \"vigil\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
            password_file.display(),
            ca.display()
        ),
    )
}

fn mail_report(store: &Path, cfg: &Path, to: &str) -> Ran {
    let r = run(vigil(store).arg("--config").arg(cfg).args([
        "report",
        "run",
        "denied-access",
        "top-talkers",
        "--from",
        "2026-03-01",
        "--to",
        "2026-04-01",
        "--email",
        to,
    ]));
    assert!(
        !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
        "the password leaked"
    );
    r
}

fn pending(store: &Path) -> usize {
    std::fs::read_dir(store.join("state/outbox/pending"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "eml")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn report_mail_over_starttls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let certs = certificates(dir.path());
    let pw = write(&dir.path().join("smtp-password"), format!("{PASSWORD}\n"));
    let port = free_port();
    let server = Server::start(dir.path(), port, "starttls", &certs);
    let cfg = smtp_config(dir.path(), port, "starttls", &certs.0, &pw);
    let r = mail_report(&store, &cfg, "secops@example.com, auditor@example.org");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("mailed to secops@example.com, auditor@example.org"),
        "{}",
        r.stderr
    );
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(
        m["envelope"]["rcpt_tos"],
        serde_json::json!(["secops@example.com", "auditor@example.org"])
    );
    assert_eq!(m["envelope"]["tls"], true);
    assert_eq!(m["envelope"]["auth"], true);
    assert_eq!(m["from"], "vigil@example.com");
    assert_eq!(m["to"], "secops@example.com, auditor@example.org");
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .starts_with("vigil reports: denied-access, top-talkers (2026-03-01 00:00 to "),
        "{m}"
    );
    let parts = m["parts"].as_array().unwrap();
    let part = |ct: &str| {
        parts
            .iter()
            .find(|p| p["content_type"] == ct)
            .unwrap_or_else(|| panic!("no {ct} in {m}"))
    };
    let text = part("text/plain")["text"].as_str().unwrap();
    assert!(
        text.contains("Denied access attempts") && text.contains("mallory@acme.example"),
        "{text}"
    );
    let html = part("text/html")["text"].as_str().unwrap();
    assert!(html.contains("<h2>Top talkers</h2>") && html.contains("<svg"));
    let csvs: Vec<&Value> = parts
        .iter()
        .filter(|p| p["content_type"] == "text/csv")
        .collect();
    assert_eq!(csvs.len(), 2);
    assert_eq!(csvs[0]["filename"], "denied-access.csv");
    assert!(csvs[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("actor_id,actor_name,"));
    assert_eq!(csvs[1]["filename"], "top-talkers.csv");
    assert!(
        server.auth_log().contains("vigil ok tls=True"),
        "{}",
        server.auth_log()
    );
    assert_eq!(pending(&store), 0);
    assert_eq!(
        std::fs::read_dir(store.join("state/outbox/sent"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml"))
            .count(),
        1
    );
}

#[test]
fn no_starttls_offered_means_no_credentials_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let certs = certificates(dir.path());
    let pw = write(&dir.path().join("smtp-password"), PASSWORD);
    let port = free_port();
    let server = Server::start(dir.path(), port, "plain", &certs);
    let cfg = smtp_config(dir.path(), port, "starttls", &certs.0, &pw);
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("not mailed") && r.stderr.contains("127.0.0.1"),
        "{}",
        r.stderr
    );
    assert_eq!(server.auth_log(), "", "no AUTH over a plain connection");
    assert!(server.messages().is_empty());
    assert_eq!(pending(&store), 1, "the message waits in the outbox");
}

#[test]
fn wrong_password_fails_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let certs = certificates(dir.path());
    let pw = write(
        &dir.path().join("smtp-password"),
        format!("{PASSWORD}-wrong"),
    );
    let port = free_port();
    let server = Server::start(dir.path(), port, "starttls", &certs);
    let cfg = smtp_config(dir.path(), port, "starttls", &certs.0, &pw);
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("535") || r.stderr.to_lowercase().contains("auth"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("-wrong"));
    assert!(
        server.auth_log().contains("vigil fail tls=True"),
        "{} / {}",
        server.auth_log(),
        r.stderr
    );
    assert!(server.messages().is_empty());
}

#[test]
fn implicit_tls_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let certs = certificates(dir.path());
    let pw = write(&dir.path().join("smtp-password"), PASSWORD);
    let port = free_port();
    let server = Server::start(dir.path(), port, "implicit", &certs);
    let cfg = smtp_config(dir.path(), port, "implicit", &certs.0, &pw);
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["envelope"]["auth"], true);
}

/// A stop between moving a sent message to `sent/` and moving its envelope: the next run
/// finishes the move, sends nothing twice, and the messages after it go out.
#[test]
fn a_send_stopped_between_its_two_moves_is_finished_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let certs = certificates(dir.path());
    let pw = write(&dir.path().join("smtp-password"), PASSWORD);
    let port = free_port();
    let cfg = smtp_config(dir.path(), port, "starttls", &certs.0, &pw);
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 2, "{}", r.stderr);
    let outbox = store.join("state/outbox");
    let eml = walk(&outbox.join("pending"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "eml"))
        .unwrap();
    std::fs::create_dir_all(outbox.join("sent")).unwrap();
    std::fs::rename(&eml, outbox.join("sent").join(eml.file_name().unwrap())).unwrap();
    let server = Server::start(dir.path(), port, "starttls", &certs);
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.messages().len(), 1, "only this run's message");
    assert!(walk(&outbox.join("pending")).is_empty());
    assert_eq!(
        walk(&outbox.join("sent")).len(),
        4,
        "two messages, two envelopes"
    );
}

#[test]
fn smtp_down_then_back_delivers_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let certs = certificates(dir.path());
    let pw = write(&dir.path().join("smtp-password"), PASSWORD);
    let port = free_port();
    let cfg = smtp_config(dir.path(), port, "starttls", &certs.0, &pw);
    // Nothing listens: the message is queued, exit 2 tells cron.
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(pending(&store), 1);
    let server = Server::start(dir.path(), port, "starttls", &certs);
    // The next run sends the waiting message first, then its own.
    let started = Instant::now();
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("sent 1 message(s) that were waiting"),
        "{}",
        r.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(pending(&store), 0);
    let r = mail_report(&store, &cfg, "secops@example.com");
    assert_eq!(r.code, 0);
    let msgs = server.messages();
    assert_eq!(msgs.len(), 3, "queued one once, then two runs");
    let ids: std::collections::BTreeSet<&str> = msgs
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "no message sent twice");
}

#[test]
fn plain_smtp_is_refused_to_a_remote_host() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[smtp]\nhost = \"mail.example.com\"\ntls = \"none\"\nfrom = \"vigil@example.com\"\n",
    );
    let r = run(vigil(&dir.path().join("store"))
        .arg("--config")
        .arg(&cfg)
        .args(["report", "list"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("only allowed to localhost"),
        "{}",
        r.stderr
    );
}

/// The detection fixture plus hostile log content: a user agent that tries to add a Bcc header
/// and a canary path that tries to end the SMTP DATA section.
fn alert_store(dir: &Path) -> PathBuf {
    use crate::detect::{day, history, window, H};
    let mut l = history();
    window(&mut l);
    let w = day(21);
    l.read(
        w + 21 * H,
        "kubernetes-prod-api",
        "prod/app/db",
        "10.0.1.5",
        "evil/1.0\r\nBcc: x@example.com",
    );
    l.read(
        w + 22 * H,
        "oidc-bob",
        "prod/canary/x\n.\nMAIL FROM:<spoof@example.com>",
        "192.168.10.6",
        "vault-cli/1.15",
    );
    crate::detect::ingest_log(dir, &l)
}

fn alert_config(dir: &Path, port: u16, certs: &(PathBuf, PathBuf, PathBuf), pw: &Path) -> PathBuf {
    let smtp = std::fs::read_to_string(smtp_config(dir, port, "starttls", &certs.0, pw)).unwrap();
    config(
        dir,
        &format!("{smtp}{}[alerts]\nemail_to = [\"secops@example.com\"]\nmin_severity = \"low\"\nsuppress_for = \"24h\"\n", crate::detect::CONFIG),
    )
}

/// The alert config of a STARTTLS server on a free port (not started yet), with the
/// certificates to start it with: (config, port, certificates).
pub fn alert_setup(dir: &Path) -> (PathBuf, u16, (PathBuf, PathBuf, PathBuf)) {
    let certs = certificates(dir);
    let pw = write(&dir.join("smtp-password"), PASSWORD);
    let port = free_port();
    (alert_config(dir, port, &certs, &pw), port, certs)
}

/// The findings of a delivered alert's `findings.json` attachment.
pub fn attached_findings(m: &Value) -> Vec<Value> {
    let part = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["filename"] == "findings.json")
        .unwrap();
    serde_json::from_str(part["text"].as_str().unwrap()).unwrap()
}

fn notify(store: &Path, cfg: &Path) -> Ran {
    let r = run(vigil(store)
        .arg("--config")
        .arg(cfg)
        .args(["detect", "--notify", "--format", "jsonl"])
        .args(crate::detect::WINDOW));
    assert!(
        !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
        "the password leaked"
    );
    r
}

#[test]
fn alerts_are_sent_once_with_log_content_kept_out_of_headers() {
    let dir = tempfile::tempdir().unwrap();
    let store = alert_store(dir.path());
    let (cfg, port, certs) = alert_setup(dir.path());
    let server = Server::start(dir.path(), port, "starttls", &certs);
    let r = notify(&store, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("0 already sent"), "{}", r.stderr);
    // A re-run (a restart, a cron overlap) sends nothing new.
    let r = notify(&store, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
    // The findings history holds each finding once, alerted in the one message.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM (SELECT key FROM finding_history GROUP BY key, window_start, window_end HAVING count(*) > 1)"
        ),
        0,
        "one row per finding"
    );
    let alerted = sql(
        &store,
        "SELECT count(*) AS n, count(DISTINCT alert_id) AS ids FROM findings WHERE status = 'alerted'",
    );
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1, "one message per run, none for the re-run");
    let m = &msgs[0];
    assert_eq!(
        m["envelope"]["rcpt_tos"],
        json!(["secops@example.com"]),
        "no smuggled recipient"
    );
    let headers: Vec<String> = m["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_lowercase())
        .collect();
    assert!(!headers.contains(&"bcc".to_owned()), "{headers:?}");
    let subject = m["subject"].as_str().unwrap();
    assert!(subject.starts_with("[vigil] CRITICAL:"), "{subject}");
    let text = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "text/plain")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("prod/canary/x\n.\nMAIL FROM:<spoof@example.com>"),
        "the path arrives intact: {text}"
    );
    assert!(
        text.contains("VG013 canary-touched") && text.contains("VG008 off-hours-burst"),
        "{text}"
    );
    let html = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "text/html")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        html.contains("MAIL FROM:&lt;spoof@example.com&gt;"),
        "escaped in HTML"
    );
    let findings = attached_findings(m);
    assert_eq!(
        alerted[0],
        json!({"n": findings.len(), "ids": 1}),
        "every finding of the message is recorded as alerted, under one alert id"
    );
    assert!(
        findings
            .iter()
            .any(|f| f["observed"]["user_agent"] == "evil/1.0\r\nBcc: x@example.com"),
        "{findings:?}"
    );
}

#[test]
fn alerts_wait_in_the_outbox_while_smtp_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = alert_store(dir.path());
    let (cfg, port, certs) = alert_setup(dir.path());
    let r = notify(&store, &cfg);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("the alert was not sent"), "{}", r.stderr);
    assert_eq!(pending(&store), 1);
    // Still down: the waiting alert is not queued a second time.
    let r = notify(&store, &cfg);
    assert!(r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
    assert_eq!(pending(&store), 1);
    let server = Server::start(dir.path(), port, "starttls", &certs);
    let r = notify(&store, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("sent 1 alert message(s) that were waiting"),
        "{}",
        r.stderr
    );
    assert_eq!(pending(&store), 0);
    assert_eq!(server.messages().len(), 1, "delivered once");
}

/// Starts tests/support/webhook_server.py writing each POST body to `out`; returns it and its port
/// once it listens.
fn webhook_server(out: &Path) -> (std::process::Child, u16) {
    std::fs::create_dir_all(out).unwrap();
    let port = free_port();
    let mut child = Command::new(python())
        .arg(repo().join("tests/support/webhook_server.py"))
        .arg(port.to_string())
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, port)
}

/// The bodies the webhook server received.
fn posted(out: &Path) -> Vec<PathBuf> {
    let mut bodies: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    bodies.sort();
    bodies
}

#[test]
fn webhook_gets_the_new_findings_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = alert_store(dir.path());
    let out = dir.path().join("hooks");
    let (mut child, port) = webhook_server(&out);
    let cfg = config(
        dir.path(),
        &format!(
            "{}[alerts]\nmin_severity = \"high\"\nwebhook_url_env = \"VIGIL_TEST_WEBHOOK\"\n",
            crate::detect::CONFIG
        ),
    );
    let hook = |url: String| {
        run(vigil(&store)
            .arg("--config")
            .arg(&cfg)
            .env("VIGIL_TEST_WEBHOOK", url)
            .args(["detect", "--notify", "--format", "jsonl"])
            .args(crate::detect::WINDOW))
    };
    let r = hook(format!("http://127.0.0.1:{port}/hooks/secret-token-123"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("webhook: posted"), "{}", r.stderr);
    let r2 = hook(format!("http://127.0.0.1:{port}/hooks/secret-token-123"));
    assert!(r2.stderr.contains("alerts: 0 new"), "{}", r2.stderr);
    let _ = child.kill();
    let _ = child.wait();
    let bodies = posted(&out);
    assert_eq!(bodies.len(), 1, "posted once");
    let body: Value = serde_json::from_slice(&std::fs::read(&bodies[0]).unwrap()).unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("[vigil] CRITICAL:"),
        "{body}"
    );
    let codes: Vec<&str> = body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"VG013") && codes.iter().all(|c| *c != "VG002"),
        "only high and above: {codes:?}"
    );
    // A failing webhook names the host, never the URL's token, and exits 2; the body waits in
    // the outbox (without the URL) and the next run posts it once.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = alert_store(dir2.path());
    let down = free_port();
    let hook2 = |port: u16| {
        run(vigil(&store2)
            .arg("--config")
            .arg(&cfg)
            .env(
                "VIGIL_TEST_WEBHOOK",
                format!("http://127.0.0.1:{port}/hooks/secret-token-123"),
            )
            .args(["detect", "--notify"])
            .args(crate::detect::WINDOW))
    };
    let r = hook2(down);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("webhook 127.0.0.1:")
            && r.stderr.contains("1 webhook message(s) wait in")
            && !r.stderr.contains("secret-token-123"),
        "{}",
        r.stderr
    );
    let waiting = dir2.path().join("store/state/outbox/webhook/pending");
    let queued: Vec<PathBuf> = std::fs::read_dir(&waiting)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let text = std::fs::read_to_string(&queued[0]).unwrap();
    assert!(!text.contains("secret-token-123") && text.contains("VG013"));
    let out2 = dir2.path().join("hooks");
    let (mut child2, port2) = webhook_server(&out2);
    let r = hook2(port2);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
    assert!(
        r.stderr.contains("webhook: posted 1 message(s)"),
        "{}",
        r.stderr
    );
    let r = hook2(port2);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let _ = child2.kill();
    let _ = child2.wait();
    let bodies = posted(&out2);
    assert_eq!(bodies.len(), 1, "posted once after the outage");
    assert_eq!(std::fs::read_to_string(&bodies[0]).unwrap(), text);
    assert_eq!(std::fs::read_dir(&waiting).unwrap().count(), 0);
}

/// The detection fixture plus the same canary secret read on the two days after the window,
/// for alerts about one key in several windows.
fn canary_store(dir: &Path) -> PathBuf {
    use crate::detect::{day, history, window, H};
    let mut l = history();
    window(&mut l);
    for d in [22, 23] {
        l.read(
            day(d) + 9 * H,
            "oidc-bob",
            "prod/canary/aws-root-keys",
            "192.168.10.6",
            "vault-cli/1.15",
        );
    }
    crate::detect::ingest_log(dir, &l)
}

/// `vigil detect --notify --only VG013` over the day starting at `from`, with the clock at `now`.
fn canary_run(store: &Path, cfg: &Path, from: &str, to: &str, now: &str) -> Ran {
    let r = run(vigil(store)
        .env("VIGIL_NOW", now)
        .arg("--config")
        .arg(cfg)
        .args(["detect", "--notify", "--only", "VG013", "--format", "jsonl"])
        .args(["--from", from, "--to", to]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// The canary findings of each message, by subject.
fn canary_keys(server: &Server) -> Vec<usize> {
    server
        .messages()
        .iter()
        .map(|m| {
            attached_findings(m)
                .iter()
                .filter(|f| f["code"] == "VG013")
                .count()
        })
        .collect()
}

#[test]
fn a_benign_verdict_holds_the_key_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = canary_store(dir.path());
    let (cfg, port, certs) = alert_setup(dir.path());
    let server = Server::start(dir.path(), port, "starttls", &certs);
    canary_run(
        &store,
        &cfg,
        "2026-03-23",
        "2026-03-24",
        "2026-03-24T00:10:00Z",
    );
    assert_eq!(canary_keys(&server), [1], "the first touch is alerted");
    let key = sql(&store, "SELECT key FROM findings WHERE code = 'VG013'")[0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(vigil(&store)
        .env("VIGIL_NOW", "2026-03-24T01:00:00Z")
        .args(["findings", "benign", &key, "--by", "alice"])
        .args([
            "--reason",
            "red-team exercise RT-7",
            "--expires",
            "2026-03-25",
        ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("until 2026-03-26T00:00:00Z"),
        "{}",
        r.stderr
    );
    // The next day, past suppress_for: the verdict leaves the touch out, and says why.
    let r = canary_run(
        &store,
        &cfg,
        "2026-03-24",
        "2026-03-25",
        "2026-03-25T02:00:00Z",
    );
    assert!(r.stdout.is_empty(), "left out of the output: {}", r.stdout);
    assert!(
        r.stderr
            .contains("left out 1 finding(s) that benign verdicts cover")
            && r.stderr.contains(
                "judged benign by alice: red-team exercise RT-7 (until 2026-03-26T00:00:00Z)"
            ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
    assert_eq!(canary_keys(&server), [1]);
    let recorded = sql(
        &store,
        "SELECT status, status_reason FROM findings WHERE code = 'VG013' AND window_start >= TIMESTAMP '2026-03-24T00:00:00Z'",
    );
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["status"], "benign", "the verdict stands for it");
    assert!(
        recorded[0]["status_reason"]
            .as_str()
            .unwrap()
            .contains("red-team exercise RT-7"),
        "{recorded:?}"
    );
    // After the expiry the key alerts again.
    let r = canary_run(
        &store,
        &cfg,
        "2026-03-25",
        "2026-03-26",
        "2026-03-26T02:00:00Z",
    );
    assert!(!r.stderr.contains("benign"), "{}", r.stderr);
    assert_eq!(canary_keys(&server), [1, 1]);
    // The verdict, who gave it and the finding it stood for stay in the history.
    let verdicts = sql(
        &store,
        "SELECT status_by, status_until FROM finding_history WHERE status = 'benign'",
    );
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .all(|v| v["status_by"] == "alice" && v["status_until"] == "2026-03-26T00:00:00Z"),
        "{verdicts:?}"
    );
}

/// A crash after the findings are recorded and before the mail is queued (or before they are
/// recorded): the next run sends the alert once, and the one after sends nothing.
#[cfg(feature = "fault-injection")]
#[test]
fn a_crash_between_recording_and_queueing_neither_loses_nor_repeats_an_alert() {
    for fault in ["after_findings_commit", "before_commit"] {
        let dir = tempfile::tempdir().unwrap();
        let store = alert_store(dir.path());
        let (cfg, port, certs) = alert_setup(dir.path());
        let server = Server::start(dir.path(), port, "starttls", &certs);
        let r = run(vigil(&store)
            .env("VIGIL_FAULT", fault)
            .arg("--config")
            .arg(&cfg)
            .args(["detect", "--notify", "--format", "jsonl"])
            .args(crate::detect::WINDOW));
        assert_ne!(r.code, 0, "{fault}: the run crashed");
        assert!(
            r.stderr.contains(&format!("crashing at {fault}")),
            "{}",
            r.stderr
        );
        assert_eq!(server.messages().len(), 0, "{fault}: nothing was sent");
        let r = notify(&store, &cfg);
        assert_eq!(r.code, 0, "{fault}: {}", r.stderr);
        if fault == "after_findings_commit" {
            assert!(
                r.stderr
                    .contains("queued 1 alert(s) that an interrupted run recorded")
                    && r.stderr.contains("alerts: 0 new"),
                "{}",
                r.stderr
            );
        } else {
            assert!(!r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
        }
        let r = notify(&store, &cfg);
        assert!(r.stderr.contains("alerts: 0 new"), "{}", r.stderr);
        let msgs = server.messages();
        assert_eq!(msgs.len(), 1, "{fault}: one message");
        assert!(
            msgs[0]["subject"]
                .as_str()
                .unwrap()
                .starts_with("[vigil] CRITICAL:"),
            "{}",
            msgs[0]["subject"]
        );
        let v = run(vigil(&store).arg("verify"));
        assert_eq!(v.code, 0, "{fault}: {}{}", v.stdout, v.stderr);
        if fault == "before_commit" {
            // The findings file the crashed run staged was set aside, not counted.
            assert_eq!(
                walk(&store.join("_quarantine/findings")).len(),
                1,
                "{fault}"
            );
        }
    }
}

//! `vigil serve`: a writer appends to a tailed Vault log (with a rotation) while the service
//! runs; SIGTERM and `kill -9` lose and double nothing; a planted read reaches a real SMTP
//! server once; `/healthz` and `/metrics` say what the store says.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::mail::{alert_setup, attached_findings, free_port, Server, PASSWORD};

/// A running `vigil serve`, killed if a test fails before it stops it.
pub struct Service {
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Starts the service on `store` with `cfg`; `now` pins its clock (None: the real one).
    pub fn start(store: &Path, cfg: &Path, now: Option<&str>, port: u16, log: &Path) -> Service {
        Service::start_with(store, cfg, now, port, log, &[])
    }

    /// [`Service::start`] with more environment (`envs`).
    pub fn start_with(
        store: &Path,
        cfg: &Path,
        now: Option<&str>,
        port: u16,
        log: &Path,
        envs: &[(String, String)],
    ) -> Service {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.envs(envs.iter().map(|(k, v)| (k, v)));
        c.current_dir(repo())
            .env_remove("VIGIL_STORE")
            .env_remove("VIGIL_NOW")
            .arg("--store")
            .arg(store)
            .arg("--config")
            .arg(cfg)
            .args(["serve", "--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            );
        if let Some(now) = now {
            c.env("VIGIL_NOW", now);
        }
        let s = Service {
            child: Some(c.spawn().expect("vigil serve starts")),
            log: log.to_owned(),
        };
        wait_for(
            Duration::from_secs(60),
            "the service to answer /healthz",
            || get(port, "/healthz").is_some(),
        );
        s
    }

    /// SIGTERM; returns the exit code and how long the service took to stop.
    pub fn stop(&mut self) -> (i32, Duration) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let asked = Instant::now();
        // The shell's own kill: no procps needed on a bare machine.
        assert!(Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        (status.code().unwrap_or(-1), asked.elapsed())
    }

    fn kill_9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `GET path` on the service: (status, body), or None if nothing answers.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

pub fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn serve_config(dir: &Path, port: u16, inputs: &Path, extra: &str) -> PathBuf {
    config(
        dir,
        &format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\ncommit_interval = \"1s\"\ndetect_every = \"1s\"\n{extra}\n[[serve.inputs]]\npath = \"{}\"\nsource = \"vault\"\n",
            inputs.display()
        ),
    )
}

/// Appends request/response pairs to `dir/audit.log` at about `lines_per_sec` for `secs` from
/// another process (`tests/support/vault_writer.py`, buffered writes, so lines reach the file
/// in pieces), renaming the file to `audit.log.1` halfway (a rotation) and going on in a new
/// one; returns the request ids written.
fn write_vault_log(dir: &Path, lines_per_sec: u64, secs: u64, tag: &str) -> BTreeSet<String> {
    let ids = dir.join(format!("{tag}.ids"));
    let status = Command::new(python_with("json"))
        .arg(repo().join("tests/support/vault_writer.py"))
        .arg("--dir")
        .arg(dir)
        .args(["--rate", &lines_per_sec.to_string()])
        .args(["--secs", &secs.to_string()])
        .args(["--tag", tag])
        .args(["--request", &vault_request("{id}", "{time}")])
        .args(["--response", &vault_response("{id}", "{time}")])
        .arg("--ids")
        .arg(&ids)
        .status()
        .expect("python3 runs the writer");
    assert!(status.success(), "the writer process failed");
    std::fs::read_to_string(&ids)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `n` Vault request/response pairs at `time`, ids `<tag>-000000` on: (lines, request ids).
pub fn vault_pairs(tag: &str, n: usize, time: &str) -> (String, BTreeSet<String>) {
    let mut text = String::new();
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let id = format!("{tag}-{i:06}");
        text.push_str(&vault_request(&id, time));
        text.push('\n');
        text.push_str(&vault_response(&id, time));
        text.push('\n');
        ids.insert(id);
    }
    (text, ids)
}

/// Every request id stored in `store`, with how often.
fn stored_ids(store: &Path) -> Vec<(String, i64)> {
    sql(
        store,
        "SELECT request_id, count(*) AS n FROM events GROUP BY request_id ORDER BY request_id",
    )
    .iter()
    .map(|r| {
        (
            r["request_id"].as_str().unwrap_or("").to_owned(),
            r["n"].as_i64().unwrap(),
        )
    })
    .collect()
}

/// Every commit's accounting balances: read + resumed = stored + merged + duplicates +
/// rejected + held, per source; and the service committed more than once.
fn assert_commits_balance(store: &Path) {
    assert!(
        commits_balanced(store) > 1,
        "the service committed more than once"
    );
}

/// Checks that every commit's accounting balances; returns how many commits there are.
fn commits_balanced(store: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(store.join("_commits")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let commit: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for (source, t) in commit["counts"].as_object().into_iter().flatten() {
            let g = |k: &str| t[k].as_u64().unwrap_or(0);
            assert_eq!(
                g("read") + g("resumed"),
                g("stored") + g("merged") + g("duplicates") + g("rejected") + g("held"),
                "{}: {source}: {t}",
                p.display()
            );
            assert_ne!(source, "unknown", "{}", p.display());
        }
        n += 1;
    }
    n
}

fn assert_stored_once(store: &Path, written: &BTreeSet<String>) {
    let stored = stored_ids(store);
    let twice: Vec<&(String, i64)> = stored.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        twice.is_empty(),
        "stored more than once: {:?}",
        &twice[..twice.len().min(5)]
    );
    let ids: BTreeSet<String> = stored.into_iter().map(|(id, _)| id).collect();
    let missing: Vec<&String> = written.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "{} request(s) not stored, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(&ids, written, "rows no writer wrote");
}

fn wait_stored(store: &Path, n: usize) {
    wait_for(
        Duration::from_secs(120),
        "every request to be stored",
        || {
            store.join("_commits").is_dir()
                && count(store, "SELECT count(*) FROM events") as usize >= n
        },
    );
}

/// A service setup that tails `logs/audit.log*`: (logs, store, port, config).
fn tailed(dir: &Path) -> (PathBuf, PathBuf, u16, PathBuf) {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let port = free_port();
    let cfg = serve_config(dir, port, &logs.join("audit.log*"), "");
    (logs, dir.join("store"), port, cfg)
}

#[test]
fn tails_a_rotated_log_and_stops_on_sigterm_with_every_request_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, store, port, cfg) = tailed(dir.path());
    let mut service = Service::start(&store, &cfg, None, port, &dir.path().join("serve.log"));
    let written = write_vault_log(&logs, 2_000, 30, "tail");
    wait_stored(&store, written.len());
    let (code, took) = service.stop();
    assert_eq!(code, 0, "{}", service.log());
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    assert_stored_once(&store, &written);
    assert_commits_balance(&store);
    let unknown = count(
        &store,
        "SELECT count(*) FROM events WHERE source <> 'vault'",
    );
    assert_eq!(unknown, 0);
    let log = service.log();
    assert!(
        log.contains("\"SIGTERM: stopping after the step in progress\""),
        "{log}"
    );
    // A later run of ingest over the same files finds nothing new: the service's checkpoints
    // cover them.
    let (_, report) = ingest(&store, &[&logs], &[]);
    assert_eq!(report["total"]["stored"], 0, "{report}");
}

#[test]
fn kill_9_at_five_moments_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, store, port, cfg) = tailed(dir.path());
    let serve_log = dir.path().join("serve.log");
    let writer = {
        let logs = logs.clone();
        std::thread::spawn(move || write_vault_log(&logs, 2_000, 20, "kill"))
    };
    // Moments from the clock's nanoseconds: different each run, printed to replay one.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("kill -9 moments seeded with {seed}");
    let mut x = seed | 1;
    for _ in 0..5 {
        let mut service = Service::start(&store, &cfg, None, port, &serve_log);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(500 + x % 3_000));
        service.kill_9();
    }
    let written = writer.join().unwrap();
    let mut service = Service::start(&store, &cfg, None, port, &serve_log);
    wait_stored(&store, written.len());
    let (code, _) = service.stop();
    assert_eq!(code, 0, "{}", service.log());
    assert_stored_once(&store, &written);
    assert_commits_balance(&store);
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

#[test]
fn health_turns_503_when_an_input_goes_and_metrics_match_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let store = dir.path().join("store");
    let mut text = String::new();
    for i in 0..300 {
        let t = format!("2026-03-09T10:{:02}:{:02}Z", i / 60, i % 60);
        text.push_str(&vault_request(&format!("m-{i}"), &t));
        text.push('\n');
        text.push_str(&vault_response(&format!("m-{i}"), &t));
        text.push('\n');
    }
    text.push_str("{\"type\":\"response\",\"time\":\"not a time\"}\n");
    write(&logs.join("audit.log"), &text);
    let port = free_port();
    let cfg = serve_config(dir.path(), port, &logs, "");
    let mut service = Service::start(&store, &cfg, Some(NOW), port, &dir.path().join("serve.log"));
    wait_stored(&store, 300);
    wait_for(Duration::from_secs(30), "healthy", || {
        get(port, "/healthz") == Some((200, "ok\n".into()))
    });
    let (status, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, v) = l.rsplit_once(' ')?;
                (key == name).then(|| v.parse::<f64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    // Every sample line is `name{labels} value` with a number, and the text ends as OpenMetrics does.
    for l in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (key, v) = l.rsplit_once(' ').unwrap();
        assert!(key.starts_with("vigil_"), "{l}");
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }
    assert!(metrics.trim_end().ends_with("# EOF"));
    let stored = count(&store, "SELECT count(*) FROM events") as f64;
    assert_eq!(
        value("vigil_records_total{source=\"vault\",outcome=\"stored\"}"),
        stored
    );
    assert_eq!(
        value("vigil_records_total{source=\"vault\",outcome=\"read\"}"),
        601.0
    );
    assert_eq!(
        value("vigil_records_total{source=\"vault\",outcome=\"rejected\"}"),
        1.0
    );
    assert_eq!(value("vigil_inputs_unreadable"), 0.0);
    // The input directory goes away: unhealthy, saying which; back: healthy again.
    std::fs::rename(&logs, dir.path().join("logs-gone")).unwrap();
    wait_for(Duration::from_secs(30), "503", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 503)
    });
    let (_, why) = get(port, "/healthz").unwrap();
    assert!(why.starts_with("input unreadable: "), "{why}");
    assert!(why.contains(&logs.display().to_string()), "{why}");
    std::fs::rename(dir.path().join("logs-gone"), &logs).unwrap();
    wait_for(Duration::from_secs(30), "200 again", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(service.stop().0, 0);
}

#[test]
fn a_planted_canary_read_appended_while_serving_is_mailed_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let store = dir.path().join("store");
    let (smtp_cfg, smtp_port, certs) = alert_setup(dir.path());
    let smtp = std::fs::read_to_string(&smtp_cfg).unwrap();
    let server = Server::start(dir.path(), smtp_port, "starttls", &certs);
    // Three weeks of ordinary reads (the detector fixture's history), up to 2026-03-23.
    let l = crate::detect::history();
    write(&logs.join("audit.log"), &l.text);
    let port = free_port();
    let cfg = serve_config(
        dir.path(),
        port,
        &logs.join("audit.log"),
        &format!("detect_backfill = \"1h\"\n{smtp}"),
    );
    // Run 1, at 00:59: the history is committed and its last hour is judged; then the planted
    // read is appended at 00:30 and committed. Its hour has not closed.
    let serve_log = dir.path().join("serve.log");
    let mut service = Service::start(&store, &cfg, Some("2026-03-23T00:59:00Z"), port, &serve_log);
    wait_for(Duration::from_secs(120), "the history judged", || {
        std::fs::read_to_string(store.join("state/serve.json"))
            .is_ok_and(|s| s.contains("2026-03-23T00:00:00Z"))
    });
    let before = count(&store, "SELECT count(*) FROM events");
    let plant = "{\"time\":\"2026-03-23T00:30:00Z\",\"type\":\"response\",\"auth\":{\"display_name\":\"oidc-bob\",\"entity_id\":\"ent-oidc-bob\",\"policies\":[\"default\"]},\"request\":{\"id\":\"plant-1\",\"operation\":\"read\",\"path\":\"secret/data/prod/canary/x\",\"mount_point\":\"secret/\",\"mount_type\":\"kv\",\"remote_address\":\"192.168.10.6\"},\"response\":{\"data\":{\"data\":{\"password\":\"hmac-sha256:00\"}}}}\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("audit.log"))
        .unwrap()
        .write_all(plant.as_bytes())
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the planted read committed",
        || count(&store, "SELECT count(*) FROM events") == before + 1,
    );
    assert_eq!(service.stop().0, 0);
    // (The history's own last hour may have been worth an alert.)
    let earlier = server.messages().len();
    // Run 2, at 01:10: the hour closes and its alert is mailed (STARTTLS + AUTH).
    let mut service = Service::start(&store, &cfg, Some("2026-03-23T01:10:00Z"), port, &serve_log);
    wait_for(Duration::from_secs(120), "the alert mailed", || {
        server.messages().len() > earlier
    });
    // A late event: another principal's canary read at 00:50 arrives after its hour was
    // judged. The hour is judged again: her read is mailed, bob's is not mailed twice.
    let late = plant
        .replace("oidc-bob", "oidc-carol")
        .replace("plant-1", "plant-2")
        .replace("00:30:00", "00:50:00");
    std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("audit.log"))
        .unwrap()
        .write_all(late.as_bytes())
        .unwrap();
    wait_for(Duration::from_secs(120), "the late read mailed", || {
        server.messages().len() > earlier + 1
    });
    assert_eq!(service.stop().0, 0);
    assert!(service.log().contains("judged again"), "{}", service.log());
    // Run 3, an hour later: nothing is judged or sent twice.
    let mut service = Service::start(&store, &cfg, Some("2026-03-23T02:10:00Z"), port, &serve_log);
    wait_for(Duration::from_secs(120), "the next hour judged", || {
        std::fs::read_to_string(store.join("state/serve.json"))
            .is_ok_and(|s| s.contains("2026-03-23T02:00:00Z"))
    });
    assert_eq!(service.stop().0, 0);
    let messages = server.messages();
    assert_eq!(messages.len(), earlier + 2, "{messages:?}");
    let findings = attached_findings(&messages[earlier]);
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "VG013" && f["resources"].to_string().contains("prod/canary/x")),
        "{findings:?}"
    );
    let late_findings = attached_findings(&messages[earlier + 1]);
    assert!(
        late_findings
            .iter()
            .all(|f| !f["actor_id"].to_string().contains("oidc-bob"))
            && late_findings.iter().any(|f| {
                f["code"] == "VG013" && f["actor_id"].to_string().contains("oidc-carol")
            }),
        "{late_findings:?}"
    );
    let log = std::fs::read_to_string(&serve_log).unwrap();
    assert!(!log.contains(PASSWORD), "the SMTP password reached the log");
    let alerted = count(
        &store,
        "SELECT count(*) FROM findings WHERE status = 'alerted' AND window_start >= to_timestamp('2026-03-23T00:00:00Z')",
    );
    assert_eq!(alerted as usize, findings.len() + late_findings.len());
}

/// The `report-<schedule>-<slot>` ids of the report messages in the outbox (queued or sent).
fn report_ids(store: &Path) -> BTreeSet<String> {
    walk(&store.join("state/outbox"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
            let id = v["alert_id"].as_str()?.to_owned();
            id.starts_with("report-").then_some(id)
        })
        .collect()
}

#[test]
fn a_schedule_with_seconds_mails_each_slot_once_and_a_missed_slot_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let store = dir.path().join("store");
    let (smtp_cfg, smtp_port, certs) = alert_setup(dir.path());
    let smtp = std::fs::read_to_string(&smtp_cfg).unwrap();
    let server = Server::start(dir.path(), smtp_port, "starttls", &certs);
    write(&logs.join("audit.log"), crate::detect::history().text);
    let port = free_port();
    let every_3s = "\n[[serve.schedule]]\nname = \"every-3s\"\ncron = \"*/3 * * * * *\"\nreport = [\"denied-access\"]\nemail_to = [\"audit@example.com\"]\n";
    let daily = "\n[[serve.schedule]]\nname = \"daily\"\ncron = \"0 7 * * *\"\ntimezone = \"Europe/Paris\"\nreport = [\"access-summary\"]\nsince = \"1d\"\nemail_to = [\"audit@example.com\"]\n\
        [[serve.schedule]]\nname = \"daily-skip\"\ncron = \"0 7 * * *\"\ntimezone = \"Europe/Paris\"\nreport = [\"denied-access\"]\nemail_to = [\"audit@example.com\"]\nmissed = \"skip\"\n";
    // Detection judges only the last closed hour, which holds no event: no alert mail.
    let cfg = |name: &str, schedules: &str| {
        let c = serve_config(
            dir.path(),
            port,
            &logs.join("audit.log"),
            &format!("detect_backfill = \"1s\"\n{smtp}{schedules}"),
        );
        let named = c.with_file_name(name);
        std::fs::rename(&c, &named).unwrap();
        named
    };
    let serve_log = dir.path().join("serve.log");
    // The real clock: slots every 3 seconds, each mailed once.
    let mut service = Service::start(&store, &cfg("every.toml", every_3s), None, port, &serve_log);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(service.stop().0, 0);
    let every = report_ids(&store);
    assert!(every.len() >= 2, "{every:?}\n{}", service.log());
    // Slots are whole seconds on the pattern, whatever moment the service looked at them.
    for id in &every {
        let at = id
            .strip_prefix("report-every-3s-")
            .unwrap_or_else(|| panic!("{every:?}"));
        let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        assert!(!at.contains('.') && t.timestamp() % 3 == 0, "{id}");
    }
    // (Generous: under a full test run on two cores a report waits its turn for a core.)
    wait_for(Duration::from_secs(90), "the reports delivered", || {
        server.messages().len() >= every.len()
    });
    assert_eq!(server.messages().len(), every.len(), "one message per slot");
    // A pinned clock: the first start at 06:59 Paris only notes the daily slots; stopped over
    // 07:00, the next start runs the missed slot once (and "skip" does not).
    let before = server.messages().len();
    let daily_cfg = cfg("daily.toml", daily);
    let mut s1 = Service::start(
        &store,
        &daily_cfg,
        Some("2026-03-23T05:59:00Z"),
        port,
        &serve_log,
    );
    wait_for(Duration::from_secs(30), "the slots noted", || {
        std::fs::read_to_string(store.join("state/schedule.json"))
            .is_ok_and(|t| t.contains("daily-skip"))
    });
    assert_eq!(s1.stop().0, 0);
    let mut s2 = Service::start(
        &store,
        &daily_cfg,
        Some("2026-03-23T09:30:00Z"),
        port,
        &serve_log,
    );
    wait_for(Duration::from_secs(60), "the missed slot run", || {
        report_ids(&store).contains("report-daily-2026-03-23T06:00:00Z")
    });
    assert_eq!(s2.stop().0, 0);
    let mut s3 = Service::start(
        &store,
        &daily_cfg,
        Some("2026-03-23T09:30:00Z"),
        port,
        &serve_log,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s3.stop().0, 0);
    let ids = report_ids(&store);
    assert!(
        !ids.iter().any(|i| i.starts_with("report-daily-skip-")),
        "{ids:?}"
    );
    assert_eq!(ids.len(), every.len() + 1, "{ids:?}");
    wait_for(
        Duration::from_secs(30),
        "the missed report delivered",
        || server.messages().len() > before,
    );
    std::thread::sleep(Duration::from_secs(1));
    let messages = server.messages();
    assert_eq!(messages.len(), before + 1, "{messages:?}");
    let m = &messages[before];
    assert!(m.to_string().contains("access-summary"), "{m}");
}

/// (code, key, window start in seconds) of every finding, sorted.
type Found = Vec<(String, String, i64)>;

#[test]
fn the_service_finds_over_a_replayed_day_what_backtest_step_1h_finds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gen");
    let r = run(vigil(&dir.path().join("unused"))
        .args([
            "generate", "--source", "vault", "--events", "40000", "--seed", "3", "--out",
        ])
        .arg(&data));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = dir.path().join("store");
    let port = free_port();
    let generated = std::fs::read_to_string(data.join("vigil.toml")).unwrap();
    let cfg = serve_config(
        dir.path(),
        port,
        &data.join("vault-audit.log"),
        "detect_backfill = \"24h\"\ndetect_every = \"1h\"\n",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen("detect_every = \"1s\"\n", "", 1);
    std::fs::write(&cfg, format!("{text}\n{generated}")).unwrap();
    // The clock just after the generated month: the service judges its last day, hour by hour.
    let mut service = Service::start(
        &store,
        &cfg,
        Some("2026-04-02T00:10:00Z"),
        port,
        &dir.path().join("serve.log"),
    );
    wait_for(Duration::from_secs(600), "the last day judged", || {
        std::fs::read_to_string(store.join("state/serve.json"))
            .is_ok_and(|s| s.contains("2026-04-02T00:00:00Z"))
    });
    assert_eq!(service.stop().0, 0);
    let mut served: Found = sql(
        &store,
        "SELECT code, key, CAST(to_unixtime(window_start) AS BIGINT) AS at FROM findings",
    )
    .iter()
    .map(|r| {
        (
            r["code"].as_str().unwrap().to_owned(),
            r["key"].as_str().unwrap().to_owned(),
            r["at"].as_i64().unwrap(),
        )
    })
    .collect();
    served.sort();
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "backtest",
        "--from",
        "2026-04-01",
        "--to",
        "2026-04-02",
        "--step",
        "1h",
        "--json",
        "--list",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut replayed: Found = summary["findings_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let at = chrono::DateTime::parse_from_rfc3339(f["window_start"].as_str().unwrap())
                .unwrap()
                .timestamp();
            (
                f["code"].as_str().unwrap().to_owned(),
                f["key"].as_str().unwrap().to_owned(),
                at,
            )
        })
        .collect();
    replayed.sort();
    assert!(replayed.len() >= 3, "a day worth comparing: {replayed:?}");
    assert_eq!(served, replayed);
}

/// A store whose history ends with bob reading a canary at 00:30 on 2026-03-23, tailed by a
/// service configured to mail alerts (its SMTP server not started).
struct Canary {
    dir: PathBuf,
    store: PathBuf,
    log: PathBuf,
    serve_log: PathBuf,
    cfg: PathBuf,
    port: u16,
    smtp_port: u16,
    certs: (PathBuf, PathBuf, PathBuf),
}

impl Canary {
    /// `extra`: more `[serve]` keys.
    fn setup(dir: &Path, extra: &str) -> Canary {
        let (smtp_cfg, smtp_port, certs) = alert_setup(dir);
        let smtp = std::fs::read_to_string(&smtp_cfg).unwrap();
        let mut l = crate::detect::history();
        l.read(
            crate::detect::day(21) + 30 * 60,
            "oidc-bob",
            "prod/canary/x",
            "192.168.10.6",
            "vault-cli/1.15",
        );
        let log = write(&dir.join("logs/audit.log"), &l.text);
        let port = free_port();
        let cfg = serve_config(
            dir,
            port,
            &log,
            &format!("detect_backfill = \"1h\"\n{extra}{smtp}"),
        );
        Canary {
            dir: dir.to_owned(),
            store: dir.join("store"),
            log,
            serve_log: dir.join("serve.log"),
            cfg,
            port,
            smtp_port,
            certs,
        }
    }

    /// After a stop that left the canary's alert in the outbox: with the SMTP server up, a new
    /// start sends it, once, and is healthy.
    fn restart_sends_the_waiting_alert_once(&self) {
        let pending = walk(&self.store.join("state/outbox/pending")).len();
        assert!(pending >= 2, "the message and its envelope wait");
        let server = Server::start(&self.dir, self.smtp_port, "starttls", &self.certs);
        let mut service = Service::start(
            &self.store,
            &self.cfg,
            Some("2026-03-23T01:20:00Z"),
            self.port,
            &self.serve_log,
        );
        wait_for(Duration::from_secs(120), "the waiting alert sent", || {
            !server.messages().is_empty()
        });
        wait_for(Duration::from_secs(30), "healthy again", || {
            get(self.port, "/healthz").is_some_and(|(s, _)| s == 200)
        });
        assert_eq!(service.stop().0, 0);
        let messages = server.messages();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(attached_findings(&messages[0])
            .iter()
            .any(|f| f["code"] == "VG013"));
    }
}

/// SMTP down: the alert waits in the outbox (and /healthz says so); stopped and started again
/// once the server is up, the service sends it, once.
#[test]
fn an_alert_that_could_not_be_sent_waits_in_the_outbox_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = Canary::setup(dir.path(), "");
    let (store, port, serve_log) = (&c.store, c.port, &c.serve_log);
    // 01:10 on the canary's day: its hour [00:00, 01:00) is judged at once; nothing listens on
    // the SMTP port.
    let mut service = Service::start(store, &c.cfg, Some("2026-03-23T01:10:00Z"), port, serve_log);
    wait_for(Duration::from_secs(120), "503 for the outbox", || {
        get(port, "/healthz").is_some_and(|(s, body)| s == 503 && body.contains("outbox backlog"))
    });
    assert_eq!(service.stop().0, 0);
    c.restart_sends_the_waiting_alert_once();
}

/// A mail server that hangs in the middle of a message: commits go on while the alert is being
/// sent, `/healthz` says the send is stuck once `stuck_after` has passed, SIGTERM still stops
/// the service within 10 s, and the message, never accepted, is sent once at the next start.
#[test]
fn a_mail_server_that_hangs_mid_message_neither_blocks_commits_nor_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let c = Canary::setup(dir.path(), "stuck_after = \"2s\"\n");
    let (store, port, serve_log, log) = (&c.store, c.port, &c.serve_log, &c.log);
    let hanging = Server::start_with(dir.path(), c.smtp_port, "starttls", &c.certs, &["--stall"]);
    let mut service = Service::start(store, &c.cfg, Some("2026-03-23T01:10:00Z"), port, serve_log);
    wait_for(Duration::from_secs(120), "the alert's data sent", || {
        hanging.stalled()
    });
    wait_for(Duration::from_secs(30), "503 for the stuck send", || {
        get(port, "/healthz")
            .is_some_and(|(s, body)| s == 503 && body.contains("stuck: sending alerts"))
    });
    // Commits go on meanwhile (an event of the hour not closed yet: no alert of its own).
    let before = count(store, "SELECT count(*) FROM events");
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    writeln!(
        f,
        "{}",
        vault_response("while-stuck", "2026-03-23T01:05:00Z")
    )
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        "a commit while the send hangs",
        || count(store, "SELECT count(*) FROM events") > before,
    );
    let (code, took) = service.stop();
    assert_eq!(code, 0, "{}", service.log());
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    assert!(
        service
            .log()
            .contains("stopping while alerts are being sent"),
        "{}",
        service.log()
    );
    drop(hanging);
    c.restart_sends_the_waiting_alert_once();
}

/// A backlog is read `commit_records` at a time, one commit right after the other, without
/// breaking a request from its response; a burst of more than `commit_records` is committed
/// long before `commit_interval`.
#[test]
fn commit_records_splits_a_backlog_and_commits_a_burst_before_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let store = dir.path().join("store");
    // Three hours old, in a file last written an hour ago: a request held at the end of a
    // commit waits for its response only because the commit stopped short (`hold_for` would
    // not keep it), and an odd `commit_records` puts some pairs across two commits.
    let time = (chrono::Utc::now() - chrono::Duration::hours(3))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let pairs = |tag: &str, n: usize| vault_pairs(tag, n, &time);
    let (text, mut written) = pairs("backlog", 2_000);
    let log = write(&logs.join("audit.log"), &text);
    std::fs::File::options()
        .append(true)
        .open(&log)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\ncommit_interval = \"10m\"\ncommit_records = 701\ndetect_every = \"1h\"\n[[serve.inputs]]\npath = \"{}\"\nsource = \"vault\"\n",
            log.display()
        ),
    );
    let mut service = Service::start(&store, &cfg, None, port, &dir.path().join("serve.log"));
    wait_stored(&store, written.len());
    let commits = || -> Vec<Value> {
        let mut out: Vec<(u64, Value)> = walk(&store.join("_commits"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let c: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                (c["seq"].as_u64().unwrap(), c)
            })
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, c)| c).collect()
    };
    let reads: Vec<u64> = commits()
        .iter()
        .map(|c| c["counts"]["vault"]["read"].as_u64().unwrap_or(0))
        .collect();
    assert!(reads.len() >= 6, "4,000 lines in commits of 701: {reads:?}");
    assert!(reads.iter().all(|r| *r <= 701), "{reads:?}");
    assert_eq!(reads.iter().sum::<u64>(), 4_000, "{reads:?}");
    // A burst of 1,600 lines with ten minutes to the next commit: committed within seconds.
    // (Its file is written to now: a request whose response is not there yet would wait.)
    let (burst, ids) = pairs("burst", 800);
    written.extend(ids);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(burst.as_bytes()).unwrap();
    drop(f);
    wait_for(Duration::from_secs(60), "the burst committed", || {
        count(&store, "SELECT count(*) FROM events") as usize >= written.len()
    });
    // The backlog's first 800 pairs again (a copy appended by mistake; more than
    // `commit_records`, so committed early): duplicates of rows committed by earlier commits of
    // this same process, which keeps its dedupe index between them.
    let again: String = text.lines().take(1_600).map(|l| format!("{l}\n")).collect();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(again.as_bytes()).unwrap();
    drop(f);
    let lines_read = || -> u64 {
        commits()
            .iter()
            .map(|c| c["counts"]["vault"]["read"].as_u64().unwrap_or(0))
            .sum()
    };
    wait_for(Duration::from_secs(60), "the copy read", || {
        lines_read() >= 4_000 + 1_600 + 1_600
    });
    let (code, _) = service.stop();
    assert_eq!(code, 0, "{}", service.log());
    assert_stored_once(&store, &written);
    assert_commits_balance(&store);
    let unpaired = count(
        &store,
        "SELECT count(*) FROM events WHERE outcome = 'unknown'",
    );
    assert_eq!(unpaired, 0, "a request stored without its response");
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

/// A canary read and a sweep of 25 secrets in the open hour are mailed before the hour closes
/// (VG013 looks every minute, VG009 every 10); the hour's judgment finds them again, known,
/// and mails neither twice.
#[test]
fn a_canary_and_a_sweep_are_mailed_before_their_hour_closes_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let store = dir.path().join("store");
    let (smtp_cfg, smtp_port, certs) = alert_setup(dir.path());
    let smtp = std::fs::read_to_string(&smtp_cfg).unwrap();
    let server = Server::start(dir.path(), smtp_port, "starttls", &certs);
    let mut l = crate::detect::history();
    let day = crate::detect::day(21);
    for i in 0..25 {
        l.read(
            day + 10 * 60 + i * 5,
            "oidc-mallory",
            &format!("prod/sweep/s{i:02}"),
            "10.9.9.9",
            "curl/8.5",
        );
    }
    l.read(
        day + 30 * 60,
        "oidc-bob",
        "prod/canary/x",
        "192.168.10.6",
        "vault-cli/1.15",
    );
    write(&logs.join("audit.log"), &l.text);
    let port = free_port();
    let cfg = serve_config(
        dir.path(),
        port,
        &logs.join("audit.log"),
        &format!("detect_backfill = \"1h\"\n{smtp}"),
    );
    let serve_log = dir.path().join("serve.log");
    let early_codes = |messages: &[Value]| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = messages
            .iter()
            .flat_map(attached_findings)
            .filter(|f| f["code"] == "VG009" || f["code"] == "VG013")
            .filter(|f| f["window_start"].as_str().unwrap() >= "2026-03-23T00:00:00Z")
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_owned(),
                    f["actor_name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let expected = vec![
        ("VG009".to_owned(), "oidc-mallory".to_owned()),
        ("VG013".to_owned(), "oidc-bob".to_owned()),
    ];
    // 00:45: the hour [00:00, 01:00) is open; its first 40 and 43 minutes are looked at.
    let mut service = Service::start(&store, &cfg, Some("2026-03-23T00:45:00Z"), port, &serve_log);
    wait_for(Duration::from_secs(120), "both mailed early", || {
        early_codes(&server.messages()) == expected
    });
    let state = std::fs::read_to_string(store.join("state/serve.json")).unwrap();
    assert!(
        state.contains("\"detected_through\": \"2026-03-23T00:00:00Z\""),
        "the hour is not judged yet: {state}"
    );
    assert!(
        state.contains("\"VG009\": \"2026-03-23T00:40:00Z\""),
        "{state}"
    );
    assert!(
        state.contains("\"VG013\": \"2026-03-23T00:43:00Z\""),
        "{state}"
    );
    assert_eq!(service.stop().0, 0);
    // 01:10: the hour is judged whole; what the looks found is known.
    let mut service = Service::start(&store, &cfg, Some("2026-03-23T01:10:00Z"), port, &serve_log);
    wait_for(Duration::from_secs(120), "the hour judged", || {
        std::fs::read_to_string(store.join("state/serve.json"))
            .is_ok_and(|s| s.contains("\"detected_through\": \"2026-03-23T01:00:00Z\""))
    });
    // Its other findings (off-hours reads, a new principal) are mailed as usual.
    wait_for(Duration::from_secs(60), "the outbox empty", || {
        walk(&store.join("state/outbox/pending")).is_empty()
    });
    assert_eq!(service.stop().0, 0);
    assert_eq!(early_codes(&server.messages()), expected);
    let rows = count(
        &store,
        "SELECT count(*) FROM findings WHERE code IN ('VG009', 'VG013') AND window_start >= to_timestamp('2026-03-23T00:00:00Z')",
    );
    assert_eq!(rows, 2, "one finding each in the history");
}

/// A full disk: commits fail and are retried every interval, `/healthz` says so after three,
/// and once there is room again everything is stored once and the store verifies.
#[test]
fn a_full_disk_stops_commits_until_there_is_room_and_loses_nothing() {
    commits_fail_then_recover("enospc", "No space left");
}

/// The same with fsync failing (EIO): a write whose fsync failed is never trusted, the commit
/// fails, and the next interval reads again from the last checkpoint.
#[test]
fn a_failing_fsync_stops_commits_until_it_works_and_loses_nothing() {
    commits_fail_then_recover("fsync_error", "Input/output error");
}

/// Runs the service with `fault` (`VIGIL_FAULT`) armed until a file is removed: `/healthz` must
/// name the failing commits (with `says`), and nothing may be lost or doubled after.
fn commits_fail_then_recover(fault: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (logs, store, port, cfg) = tailed(dir.path());
    let time = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let (text, written) = vault_pairs("full", 500, &time);
    write(&logs.join("audit.log"), &text);
    let full = write(&dir.path().join("fault-holds"), "");
    let envs = [
        ("VIGIL_FAULT".to_owned(), fault.to_owned()),
        ("VIGIL_FAULT_WHILE".to_owned(), full.display().to_string()),
    ];
    let mut service = Service::start_with(
        &store,
        &cfg,
        None,
        port,
        &dir.path().join("serve.log"),
        &envs,
    );
    wait_for(
        Duration::from_secs(60),
        "503 for the failing commits",
        || {
            get(port, "/healthz").is_some_and(|(s, body)| {
                s == 503 && body.contains("no commit for") && body.contains(says)
            })
        },
    );
    assert!(
        !store.join("_commits").is_dir() || count(&store, "SELECT count(*) FROM events") == 0,
        "nothing committed while {fault} holds"
    );
    std::fs::remove_file(&full).unwrap();
    wait_stored(&store, written.len());
    wait_for(Duration::from_secs(30), "healthy again", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(service.stop().0, 0, "{}", service.log());
    assert_stored_once(&store, &written);
    assert!(commits_balanced(&store) >= 1);
    let v = run(vigil(&store).arg("verify"));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

//! Detectors on a hand-made Vault history where the right answer is known: 20 quiet days, then
//! one day with an anomaly for each detector, and near misses that must not fire.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::*;

const DAY0: i64 = 1_772_409_600; // 2026-03-02T00:00:00Z, a Monday
pub const WINDOW: [&str; 4] = ["--from", "2026-03-23", "--to", "2026-03-24"];

pub struct Log {
    pub text: String,
    n: u32,
    /// Vault policies of a principal besides `default` (none unless set).
    policies: std::collections::HashMap<&'static str, &'static str>,
}

impl Log {
    fn new() -> Log {
        Log {
            text: String::new(),
            n: 0,
            policies: Default::default(),
        }
    }

    /// One Vault response entry: a complete row. `denied` adds the permission error.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &mut self,
        secs: i64,
        who: &str,
        op: &str,
        path: &str,
        ip: &str,
        ua: &str,
        denied: bool,
    ) {
        self.n += 1;
        let mut policies = vec!["default"];
        policies.extend(self.policies.get(who));
        let time = chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let mut entry = json!({
            "time": time.to_string(), "type": "response",
            "auth": {"display_name": who, "entity_id": format!("ent-{who}"), "policies": policies},
            "request": {"id": format!("req-{}", self.n), "operation": op, "path": format!("secret/data/{path}"),
                        "mount_point": "secret/", "mount_type": "kv", "remote_address": ip,
                        "headers": {"user-agent": [ua]}},
        });
        if denied {
            entry["error"] = json!("1 error occurred:\n\t* permission denied\n\n");
        } else {
            entry["response"] = json!({"data": {"data": {"password": "hmac-sha256:00"}}});
        }
        writeln!(self.text, "{entry}").unwrap();
    }

    pub fn read(&mut self, secs: i64, who: &str, path: &str, ip: &str, ua: &str) {
        self.call(secs, who, "read", path, ip, ua, false);
    }
}

pub const H: i64 = 3600;
const M: i64 = 60;

pub fn day(d: i64) -> i64 {
    DAY0 + d * 86_400
}

/// The fixture: baseline days 0..21, the window is day 21 (2026-03-23, a Monday).
pub fn history() -> Log {
    let mut l = Log::new();
    // Two payments services share a Vault policy but no secret: peers by declaration only.
    l.policies
        .insert("kubernetes-payments-api", "payments-read");
    l.policies
        .insert("kubernetes-payments-worker", "payments-read");
    for d in 0..21 {
        let weekday = d % 7 < 5;
        // A deployer reads its 22 secrets within a minute every morning.
        for i in 0..22 {
            l.read(
                day(d) + 5 * H + i * 2,
                "kubernetes-deployer",
                &format!("prod/deploy/s{i}"),
                "10.0.4.7",
                "vault-go/1.0",
            );
        }
        l.read(
            day(d) + 6 * H,
            "kubernetes-payments-api",
            "prod/payments/db",
            "10.0.4.5",
            "vault-go/1.0",
        );
        l.read(
            day(d) + 6 * H + 30 * M,
            "kubernetes-payments-worker",
            "prod/payments/queue",
            "10.0.4.6",
            "vault-go/1.0",
        );
        for h in 0..24 {
            let t = day(d) + h * H;
            // A 24x7 service and a staging service, each in its own environment.
            l.read(
                t + 5 * M,
                "kubernetes-prod-api",
                "prod/app/db",
                "10.0.1.5",
                "vault-go/1.0",
            );
            l.read(
                t + 7 * M,
                "kubernetes-staging-api",
                "staging/app/db",
                "10.0.2.5",
                "vault-go/1.0",
            );
            // alice works weekdays 09:00-17:00 UTC from the VPN with the CLI.
            if weekday && (9..17).contains(&h) {
                l.read(
                    t + 20 * M,
                    "oidc-alice",
                    "prod/app/api-key",
                    "192.168.10.5",
                    "vault-cli/1.15",
                );
                l.read(
                    t + 25 * M,
                    "oidc-alice",
                    "dev/app/token",
                    "192.168.10.5",
                    "vault-cli/1.15",
                );
            }
        }
        if d == 0 {
            // Read on the first day only: dormant by the window.
            l.read(
                day(0) + 10 * H,
                "kubernetes-prod-api",
                "prod/legacy/ftp",
                "10.0.1.5",
                "vault-go/1.0",
            );
            l.read(
                day(0) + 11 * H,
                "kubernetes-old-job",
                "prod/app/db",
                "10.0.1.9",
                "vault-go/1.0",
            );
        }
        if d >= 14 {
            // A batch job that probes six secrets every quarter hour, all of them denied: its
            // usual noise (last week of the history only, so its rate is diluted over 21 days).
            for q in 0..96 {
                for s in 0..6 {
                    l.call(
                        day(d) + q * 15 * M + s * 10,
                        "kubernetes-batch-job",
                        "read",
                        &format!("prod/batch/s{s}"),
                        "10.0.3.5",
                        "vault-go/1.0",
                        true,
                    );
                }
            }
        }
        if weekday {
            // carol reads the team token through the day from her own office network; dave
            // reads it every evening from the VPN. Both are alice's peers (the same secret).
            for h in 10..17 {
                l.read(
                    day(d) + h * H + 30 * M,
                    "oidc-carol",
                    "dev/app/token",
                    "192.168.20.7",
                    "vault-cli/1.15",
                );
            }
            l.read(
                day(d) + 18 * H + 10 * M,
                "oidc-dave",
                "dev/app/token",
                "192.168.10.8",
                "vault-cli/1.15",
            );
        }
        if (8..13).contains(&d) {
            // A job that ran every hour for five days, then stopped (dormant by its own measure
            // in the window, nine days later: fewer than VG015's dormant_days here).
            for h in 0..24 {
                l.read(
                    day(d) + h * H + 40 * M,
                    "kubernetes-hourly-job",
                    "prod/app/db",
                    "10.0.1.11",
                    "vault-go/1.0",
                );
            }
        }
        if [0, 7, 12].contains(&d) {
            // A job that runs about weekly: back after nine days is its habit (near miss).
            l.read(
                day(d) + 10 * H,
                "kubernetes-weekly-job",
                "prod/app/db",
                "10.0.1.12",
                "vault-go/1.0",
            );
        }
        if d == 15 {
            // dave deletes an old token: deleting is something alice's peers do.
            l.call(
                day(d) + 18 * H + 20 * M,
                "oidc-dave",
                "delete",
                "dev/app/old-token",
                "192.168.10.8",
                "vault-cli/1.15",
                false,
            );
        }
        if weekday && d < 14 {
            // bob reads at 08:00 in his normal week; ten denied reads a day are his usual noise.
            l.read(
                day(d) + 8 * H,
                "oidc-bob",
                "dev/app/token",
                "192.168.10.6",
                "vault-cli/1.15",
            );
        }
    }
    l
}

pub fn window(l: &mut Log) {
    let w = day(21);
    // VG001: the prod service reads alice's secret, which never gains callers.
    l.read(
        w + 10 * H,
        "kubernetes-prod-api",
        "prod/app/api-key",
        "10.0.1.5",
        "vault-go/1.0",
    );
    // VG003 + VG004: alice from a new network with curl, in working hours.
    l.read(
        w + 11 * H,
        "oidc-alice",
        "prod/app/api-key",
        "203.0.113.9",
        "curl/8.5.0",
    );
    // VG008 (folding VG005 and VG007): alice reads 40 times at 02:00 UTC.
    for i in 0..40 {
        l.read(
            w + 2 * H + i * 30,
            "oidc-alice",
            "prod/app/api-key",
            "192.168.10.5",
            "vault-cli/1.15",
        );
    }
    // VG009: the prod service reads 25 distinct secrets in five minutes.
    for i in 0..25 {
        l.read(
            w + 14 * H + i * 12,
            "kubernetes-prod-api",
            &format!("prod/app/s{i:02}"),
            "10.0.1.5",
            "vault-go/1.0",
        );
    }
    // Must NOT fire VG012: the prod service is denied now and then through the day, each time
    // followed by its usual read (no run of denials).
    for h in [3, 6, 9, 12] {
        l.call(
            w + h * H + 5 * M,
            "kubernetes-prod-api",
            "read",
            "prod/app/db",
            "10.0.1.5",
            "vault-go/1.0",
            true,
        );
        l.read(
            w + h * H + 6 * M,
            "kubernetes-prod-api",
            "prod/app/db",
            "10.0.1.5",
            "vault-go/1.0",
        );
    }
    // VG011 + VG012: mallory is denied 25 times in ten minutes, then succeeds.
    for i in 0..25 {
        l.call(
            w + 15 * H + i * 24,
            "oidc-mallory",
            "read",
            "prod/app/db",
            "198.51.100.7",
            "vault-cli/1.15",
            true,
        );
    }
    l.read(
        w + 15 * H + 20 * M,
        "oidc-mallory",
        "prod/app/db",
        "198.51.100.7",
        "vault-cli/1.15",
    );
    // Must not fire VG011: the batch job's six denied secrets in a quarter hour, as every
    // quarter hour of its last week (over min_secrets, but typical for it: p ~ 0.02).
    for s in 0..6 {
        l.call(
            w + 13 * H + s * 10,
            "kubernetes-batch-job",
            "read",
            &format!("prod/batch/s{s}"),
            "10.0.3.5",
            "vault-go/1.0",
            true,
        );
    }
    // Must not fire VG011: bob's ten denials on one secret (below 20, one secret).
    for i in 0..10 {
        l.call(
            w + 12 * H + i * 30,
            "oidc-bob",
            "read",
            "prod/app/db",
            "192.168.10.6",
            "vault-cli/1.15",
            true,
        );
    }
    // VG013: a canary.
    l.read(
        w + 16 * H,
        "oidc-bob",
        "prod/canary/aws-root-keys",
        "192.168.10.6",
        "vault-cli/1.15",
    );
    // VG014: the dormant secret is read again; VG015: the silent job is back.
    l.read(
        w + 17 * H,
        "kubernetes-prod-api",
        "prod/legacy/ftp",
        "10.0.1.5",
        "vault-go/1.0",
    );
    l.read(
        w + 18 * H,
        "kubernetes-old-job",
        "prod/app/db",
        "10.0.1.9",
        "vault-go/1.0",
    );
    // VG016: the staging service reads the prod database secret. Must not fire: its own.
    l.read(
        w + 19 * H,
        "kubernetes-staging-api",
        "prod/app/db",
        "10.0.2.5",
        "vault-go/1.0",
    );
    // Near misses of VG001 and VG003: carol reads alice's secret for the first time (her peer
    // reads it daily: info), from the VPN's /24, new to her but used by alice, bob and dave
    // (the estate's own network: info).
    l.read(
        w + 11 * H + 5 * M,
        "oidc-carol",
        "prod/app/api-key",
        "192.168.10.9",
        "vault-cli/1.15",
    );
    // Near miss of VG009: the deployer reads 25 secrets, not twice its daily 22.
    for i in 0..25 {
        l.read(
            w + 5 * H + i * 2,
            "kubernetes-deployer",
            &format!("prod/deploy/s{i}"),
            "10.0.4.7",
            "vault-go/1.0",
        );
    }
    // Near miss of VG001 by declared group: the payments worker reads the database secret its
    // policy peer reads daily (they share no secret, so only the policy makes them peers).
    l.read(
        w + 6 * H + 40 * M,
        "kubernetes-payments-worker",
        "prod/payments/db",
        "10.0.4.6",
        "vault-go/1.0",
    );
    // Near miss of VG017: dave deletes again; he made such a change on that tenant before.
    l.call(
        w + 12 * H + 40 * M,
        "oidc-dave",
        "delete",
        "dev/app/old-token-2",
        "192.168.10.8",
        "vault-cli/1.15",
        false,
    );
    // VG015 by the workload's own measure, and its near miss.
    for who in ["kubernetes-hourly-job", "kubernetes-weekly-job"] {
        l.read(w + 10 * H, who, "prod/app/db", "10.0.1.13", "vault-go/1.0");
    }
    // VG017: the staging service deletes its secret; neither it nor any peer ever deleted.
    l.call(
        w + 12 * H + 30 * M,
        "kubernetes-staging-api",
        "delete",
        "staging/app/db",
        "10.0.2.5",
        "vault-go/1.0",
        false,
    );
    // Near miss of VG017: alice deletes a secret; she never deleted anything before, but her
    // peer dave did (info).
    l.call(
        w + 12 * H,
        "oidc-alice",
        "delete",
        "dev/app/token",
        "192.168.10.5",
        "vault-cli/1.15",
        false,
    );
    // VG002: a new identity goes straight for secrets.
    l.read(
        w + 20 * H,
        "approle-newbie",
        "prod/app/db",
        "10.0.3.3",
        "vault-go/1.0",
    );
}

pub const CONFIG: &str = "[canaries]\nresources = [\"*/canary/*\"]\n\
[detectors.VG002]\nlookback_days = 14\n\
[detectors.VG014]\ndormant_days = 14\n\
[detectors.VG015]\ndormant_days = 14\n";

/// `l` written to `dir/audit.log` and ingested into `dir/store`.
pub fn ingest_log(dir: &Path, l: &Log) -> PathBuf {
    let log = write(&dir.join("audit.log"), &l.text);
    let store = dir.join("store");
    let (code, report) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{report}");
    store
}

/// The fixture's store and `vigil.toml`.
pub fn fixture_store(dir: &Path) -> (PathBuf, PathBuf) {
    let mut l = history();
    window(&mut l);
    (ingest_log(dir, &l), config(dir, CONFIG))
}

fn detect(store: &Path, cfg: &Path, extra: &[&str]) -> Vec<Value> {
    let r = run(vigil(store)
        .arg("--config")
        .arg(cfg)
        .arg("detect")
        .args(WINDOW)
        .args(["--format", "json"])
        .args(extra));
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// What a reviewer reads: the finding without its SQL.
fn brief(f: &Value) -> Value {
    json!({
        "code": f["code"], "severity": f["severity"], "actor": f["actor_name"], "resources": f["resources"],
        "window": [f["window_start"], f["window_end"]], "observed": f["observed"], "baseline": f["baseline"],
        "explanation": f["explanation"], "key": f["key"], "cold_start": f["cold_start"],
    })
}

#[test]
fn every_detector_on_its_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cfg) = fixture_store(dir.path());
    let all = detect(&store, &cfg, &[]);
    let mut codes: Vec<&str> = all.iter().map(|f| f["code"].as_str().unwrap()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(
        codes,
        [
            "VG001", "VG002", "VG003", "VG004", "VG006", "VG007", "VG008", "VG009", "VG011",
            "VG012", "VG013", "VG014", "VG015", "VG016", "VG017"
        ],
        "{all:#?}"
    );
    // Near misses stay quiet: bob's ten denials, the staging service's own secret, alice's
    // reads in working hours from the VPN.
    assert!(!all
        .iter()
        .any(|f| f["code"] == "VG011" && f["actor_name"] == "oidc-bob"));
    assert!(!all
        .iter()
        .any(|f| f["code"] == "VG016" && f["resources"][0].as_str().unwrap().contains("staging")));
    assert!(!all
        .iter()
        .any(|f| f["code"] == "VG003" && f["observed"]["src_ip"] == "192.168.10.5"));
    // Novelty against peers: the near misses are reported as info, the real cases alert.
    let one = |code: &str, actor: &str| -> &Value {
        all.iter()
            .find(|f| f["code"] == code && f["actor_name"] == actor)
            .unwrap_or_else(|| panic!("no {code} for {actor}: {all:#?}"))
    };
    let carol = one("VG001", "oidc-carol");
    assert_eq!(carol["severity"], "info", "{carol}");
    assert_eq!(carol["baseline"]["peer_callers"], 1, "{carol}");
    assert!(
        carol["explanation"]
            .as_str()
            .unwrap()
            .contains("1 of its 3 peers"),
        "{carol}"
    );
    assert_eq!(one("VG001", "kubernetes-prod-api")["severity"], "high");
    // The groups are in the store for analysts too: the policy, and the auth role none has.
    let principal = sql(
        &store,
        "SELECT actor_groups, peer_groups, events FROM principals \
         WHERE actor_name = 'kubernetes-payments-worker'",
    );
    assert_eq!(principal.len(), 1, "{principal:?}");
    assert_eq!(
        principal[0]["peer_groups"],
        json!(["vault-policy:default/payments-read"]),
        "{principal:?}"
    );
    assert_eq!(principal[0]["events"], 22, "{principal:?}");
    assert!(!all
        .iter()
        .any(|f| f["code"] == "VG009" && f["actor_name"] == "kubernetes-deployer"));
    let worker = one("VG001", "kubernetes-payments-worker");
    assert_eq!(worker["severity"], "info", "{worker}");
    assert_eq!(worker["baseline"]["peer_callers"], 1, "{worker}");
    assert!(
        worker["explanation"]
            .as_str()
            .unwrap()
            .contains("or in vault-policy:default/payments-read"),
        "{worker}"
    );
    let carol = one("VG003", "oidc-carol");
    assert_eq!(carol["severity"], "info", "{carol}");
    assert_eq!(carol["baseline"]["network_principals"], 3, "{carol}");
    assert_eq!(one("VG003", "oidc-alice")["severity"], "medium");
    let alice = one("VG017", "oidc-alice");
    assert_eq!(alice["severity"], "info", "{alice}");
    assert_eq!(alice["baseline"]["peers_making_such_changes"], 1, "{alice}");
    assert_eq!(one("VG017", "kubernetes-staging-api")["severity"], "high");
    assert!(!all
        .iter()
        .any(|f| f["code"] == "VG017" && f["actor_name"] == "oidc-dave"));
    let job = one("VG015", "kubernetes-hourly-job");
    assert!(
        job["explanation"]
            .as_str()
            .unwrap()
            .contains("never silent for more than 0.04 days"),
        "{job}"
    );
    assert!(!all
        .iter()
        .any(|f| f["code"] == "VG015" && f["actor_name"] == "kubernetes-weekly-job"));
    // The sweep of 25 secrets in working hours is also a burst for a service reading once an hour.
    assert!(all
        .iter()
        .any(|f| f["code"] == "VG007" && f["actor_name"] == "kubernetes-prod-api"));
    // The off-hours burst is one alert: no separate VG005/VG007 for alice that day.
    assert!(
        !all.iter()
            .any(|f| (f["code"] == "VG005" || f["code"] == "VG007")
                && f["actor_name"] == "oidc-alice")
    );
    for f in &all {
        // Every finding carries the documented JSON fields and a query that runs.
        for k in [
            "code",
            "detector",
            "severity",
            "actor_id",
            "resources",
            "window_start",
            "window_end",
            "score",
            "observed",
            "baseline",
            "explanation",
            "investigate_sql",
            "key",
            "cold_start",
        ] {
            assert!(f.get(k).is_some(), "{k} missing in {f}");
        }
        let score = f["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{f}");
        assert!(f["key"]
            .as_str()
            .unwrap()
            .starts_with(f["code"].as_str().unwrap()));
    }
    let sql_rows = sql(
        &store,
        all.iter().find(|f| f["code"] == "VG008").unwrap()["investigate_sql"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        sql_rows.len(),
        40,
        "the investigation query returns the burst"
    );
    let mut by_code: std::collections::BTreeMap<String, Vec<Value>> =
        std::collections::BTreeMap::new();
    for f in &all {
        by_code
            .entry(f["code"].as_str().unwrap().to_owned())
            .or_default()
            .push(brief(f));
    }
    insta::assert_json_snapshot!("findings_on_the_fixture", by_code);
}

/// VG005 on four people over the fixture's 21 days (calendar: UTC, 08:00-19:00, Mon-Fri):
/// carol and fay work 10:00-11:00 only; dan is on call (two reads at 22:00 every night) and so
/// is erin. In the window carol reads once at 23:30 (fires: never off-hours before, and no one
/// reads at 23:00), dan reads twice at 23:15, an hour he never used (quiet: reading off-hours is
/// his habit), erin reads 15 times between 21:00 and 23:34 (fires on the 10 outside her usual
/// 22:00 hour: many more than her two a night), fay reads once at 22:30 (quiet: she never did,
/// but half of the estate's people's reading days have reads at 22:00).
#[test]
fn off_hours_reads_fire_unless_they_are_the_persons_habit() {
    let mut l = Log::new();
    let vpn = "192.168.10.7";
    for d in 0..21 {
        for who in ["oidc-carol", "oidc-dan", "oidc-erin", "oidc-fay"] {
            if d % 7 < 5 {
                l.read(day(d) + 10 * H, who, "dev/app/token", vpn, "vault-cli/1.15");
            }
        }
        for who in ["oidc-dan", "oidc-erin"] {
            l.read(
                day(d) + 22 * H + 10 * M,
                who,
                "prod/app/db",
                vpn,
                "vault-cli/1.15",
            );
            l.read(
                day(d) + 22 * H + 40 * M,
                who,
                "prod/app/db",
                vpn,
                "vault-cli/1.15",
            );
        }
    }
    let w = day(21);
    l.read(
        w + 23 * H + 30 * M,
        "oidc-carol",
        "prod/app/db",
        vpn,
        "vault-cli/1.15",
    );
    l.read(
        w + 23 * H + 15 * M,
        "oidc-dan",
        "prod/app/db",
        vpn,
        "vault-cli/1.15",
    );
    l.read(
        w + 23 * H + 16 * M,
        "oidc-dan",
        "prod/app/db",
        vpn,
        "vault-cli/1.15",
    );
    l.read(
        w + 22 * H + 30 * M,
        "oidc-fay",
        "prod/app/db",
        vpn,
        "vault-cli/1.15",
    );
    for i in 0..15 {
        l.read(
            w + 21 * H + i * 11 * M,
            "oidc-erin",
            "prod/app/db",
            vpn,
            "vault-cli/1.15",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let log = write(&dir.path().join("audit.log"), &l.text);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{report}");
    let cfg = config(dir.path(), "");
    let found = detect(&store, &cfg, &["--only", "VG005"]);
    let who: Vec<&str> = found
        .iter()
        .map(|f| f["actor_name"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["oidc-erin", "oidc-carol"], "{found:#?}");
    let erin = &found[0];
    assert_eq!(erin["baseline"]["days_with_off_hours_reads"], 21, "{erin}");
    assert!(
        erin["baseline"]["p_value"].as_f64().unwrap() < 1e-3,
        "{erin}"
    );
    let found: Vec<Value> = found.iter().map(brief).collect();
    insta::assert_json_snapshot!("off_hours_human", found);
}

#[test]
fn fail_on_only_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cfg) = fixture_store(dir.path());
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .arg("detect")
        .args(WINDOW)
        .args([
            "--only",
            "VG013",
            "--fail-on",
            "critical",
            "--format",
            "jsonl",
        ]));
    assert_eq!(
        r.code, 1,
        "a critical finding with --fail-on critical exits 1: {}",
        r.stderr
    );
    assert_eq!(r.stdout.lines().count(), 1);
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .arg("detect")
        .args(WINDOW)
        .args(["--only", "VG016", "--fail-on", "critical"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(vigil(&store).arg("detect").args(["--only", "VG099"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no detector VG099"), "{}", r.stderr);
    for (bad, needle) in [
        (
            "[detectors.VG007]\nmin_cuont = 3\n",
            "detectors.VG007.min_cuont",
        ),
        ("[detectors.VG099]\nenabled = false\n", "detectors.VG099"),
        (
            "[detectors.VG007]\nseverity = \"urgent\"\n",
            "detectors.VG007.severity",
        ),
        ("[[allowlist]]\nactor = \"ci-*\"\n", "allowlist[0].reason"),
        (
            "[[allowlist]]\nactor = \"ci-*\"\nreason = \"x\"\nnetwork = \"10.0.0.0/40\"\n",
            "allowlist[0].network",
        ),
        ("[alerts]\nmin_severity = \"loud\"\n", "alerts.min_severity"),
    ] {
        let c = config(dir.path(), bad);
        let r = run(vigil(&store).arg("--config").arg(&c).args(["detectors"]));
        assert_eq!(r.code, 2, "{bad}");
        assert!(r.stderr.contains(needle), "{bad}: {}", r.stderr);
    }
    // An allowlist entry silences what it names until it expires; severity overrides apply.
    let c = config(dir.path(), &format!("{CONFIG}[[allowlist]]\ndetectors = [\"VG013\"]\nactor = \"oidc-bob\"\nreason = \"red team exercise\"\nexpires = \"2026-12-31\"\n[detectors.VG016]\nseverity = \"low\"\n"));
    let all = detect(&store, &c, &[]);
    assert!(!all.iter().any(|f| f["code"] == "VG013"));
    assert!(all
        .iter()
        .filter(|f| f["code"] == "VG016")
        .all(|f| f["severity"] == "low"));
    let c = config(dir.path(), &format!("{CONFIG}[[allowlist]]\ndetectors = [\"VG013\"]\nactor = \"oidc-bob\"\nreason = \"expired\"\nexpires = \"2026-03-01\"\n"));
    assert!(
        detect(&store, &c, &[]).iter().any(|f| f["code"] == "VG013"),
        "an expired entry no longer applies"
    );
    // vigil detectors explains one.
    let r = run(vigil(&store).args(["detectors", "VG007"]));
    assert!(
        r.stdout.contains("Poisson") && r.stdout.contains("min_count = 20"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_fresh_store_stays_quiet_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cfg) = fixture_store(dir.path());
    // The first day alone: no history before it.
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "detect",
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-03",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        all.iter()
            .all(|f| !["VG001", "VG002", "VG003", "VG004", "VG006"]
                .contains(&f["code"].as_str().unwrap())),
        "{all:#?}"
    );
    assert!(
        r.stderr.contains("VG001 quiet") && r.stderr.contains("VG002 quiet"),
        "{}",
        r.stderr
    );
    // A window after the store's last event: 0 findings, and a note that says why.
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "detect",
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-02",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("note: the window holds no events; the store's events run from 2026-03-02"),
        "{}",
        r.stderr
    );
}

/// Ground truth from the generator: every plain planted anomaly is found by the detector meant
/// for it (the hard ones are the baseline the next detectors must beat, not asserted here).
#[test]
fn backtest_finds_every_planted_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gen");
    let r = run(vigil(&dir.path().join("unused"))
        .args([
            "generate", "--source", "vault", "--events", "40000", "--seed", "3", "--out",
        ])
        .arg(&data));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = dir.path().join("store");
    ingest(&store, &[&data.join("vault-audit.log")], &[]);
    let mut cfg = std::fs::read_to_string(data.join("vigil.toml")).unwrap();
    cfg.push_str("[detectors.VG014]\ndormant_days = 14\n");
    let cfg = write(&data.join("vigil.toml"), cfg);
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .args([
            "backtest",
            "--from",
            "2026-03-20",
            "--to",
            "2026-04-01",
            "--step",
            "4d",
            "--json",
            "--labels",
        ])
        .arg(data.join("labels.json")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    let results = summary["label_results"].as_array().unwrap();
    // The dormant service comes back after the range: ten of the eleven labels are scored.
    assert_eq!(results.len(), 10, "{summary:#}");
    let plain: Vec<&str> = vigil::generate::PLANTS
        .iter()
        .filter(|p| !p.hard)
        .map(|p| p.note)
        .collect();
    assert_eq!(plain.len(), 6);
    for p in &plain {
        let r = results
            .iter()
            .find(|r| r["note"] == *p)
            .unwrap_or_else(|| panic!("{p} is scored: {summary:#}"));
        assert!(
            r["found_by"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == &r["kind"]),
            "{p}: not found by {}: {summary:#}",
            r["kind"]
        );
    }
    // Every finding either matches a label or is counted as unmatched.
    for d in summary["detectors"].as_array().unwrap() {
        assert!(d["unmatched"].as_u64().unwrap() <= d["findings"].as_u64().unwrap());
        assert!(d["unmatched_medium_plus"].as_u64() <= d["unmatched"].as_u64());
    }
    // Early days: the labels after the range are not scored, and the detectors short of history
    // say how often they were quiet.
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .args([
            "backtest",
            "--from",
            "2026-03-05",
            "--to",
            "2026-03-07",
            "--step",
            "1d",
            "--json",
            "--list",
            "--labels",
        ])
        .arg(data.join("labels.json")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["labels"], 0, "{summary:#}");
    // --list: the findings behind the totals, each one a finding.
    let listed = summary["findings_list"].as_array().unwrap();
    assert_eq!(listed.len() as u64, summary["findings"].as_u64().unwrap());
    assert!(listed
        .iter()
        .all(|f| f["key"].is_string() && f["code"].is_string()));
    assert!(
        r.stderr.contains(
            "note: 11 of 11 labelled anomalies lie outside --from/--to and are not scored"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("note: VG001 said it was quiet or on its static rule in 2 of 2 windows"),
        "{}",
        r.stderr
    );
    let r = run(vigil(&store).args([
        "backtest",
        "--from",
        "2026-03-05",
        "--to",
        "2026-03-07",
        "--step",
        "0s",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--step 0s is too short"), "{}", r.stderr);
}

/// The sample data's intern lists the secrets of every namespace (denied): a list has no single
/// secret, but it is a read of secrets, and VG010 names it (medium, as it was refused).
#[test]
fn a_cluster_wide_list_of_secrets_is_bulk_retrieval() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let r = run(vigil(&store).args([
        "detect",
        "--from",
        "2026-03-05",
        "--to",
        "2026-03-06",
        "--only",
        "VG010",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let found: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    let intern: Vec<&Value> = found
        .iter()
        .filter(|f| f["actor_name"] == "oidc:intern@acme.example")
        .collect();
    assert_eq!(intern.len(), 1, "{found:?}");
    assert_eq!(intern[0]["severity"], "medium");
    assert_eq!(intern[0]["resources"], json!(["k8s:default"]));
}

/// VG001 groups a principal's new secrets into one finding; an allowlist entry for one of them
/// takes that secret out of the group (not the whole finding, and not its severity).
#[test]
fn an_allowlisted_secret_leaves_a_new_caller_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = history();
    window(&mut l);
    l.read(
        day(21) + 19 * H + 5 * M,
        "kubernetes-staging-api",
        "prod/app/api-key",
        "10.0.2.5",
        "vault-go/1.0",
    );
    let log = write(&dir.path().join("audit.log"), &l.text);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{report}");
    let staging = |cfg: &str| -> Value {
        let c = config(dir.path(), cfg);
        let found = detect(&store, &c, &["--only", "VG001"]);
        found
            .into_iter()
            .find(|f| f["actor_name"] == "kubernetes-staging-api")
            .unwrap_or(Value::Null)
    };
    let both = staging(CONFIG);
    assert_eq!(
        both["resources"],
        json!([
            "vault:default/secret/prod/app/db",
            "vault:default/secret/prod/app/api-key"
        ]),
        "{both}"
    );
    assert_eq!(both["observed"]["new_secrets"], 2, "{both}");
    let allowed = format!(
        "{CONFIG}[[allowlist]]\ndetectors = [\"VG001\"]\nactor = \"kubernetes-staging-api\"\n\
         resource = \"*/api-key\"\nreason = \"reads it on behalf of the api\"\n"
    );
    let one = staging(&allowed);
    assert_eq!(
        one["resources"],
        json!(["vault:default/secret/prod/app/db"]),
        "{one}"
    );
    assert_eq!(one["observed"], json!({"reads": 1}), "{one}");
    // An entry for both secrets silences the principal's finding.
    let all = format!(
        "{CONFIG}[[allowlist]]\ndetectors = [\"VG001\"]\nactor = \"kubernetes-staging-api\"\n\
         resource = \"*/prod/app/*\"\nreason = \"migration\"\n"
    );
    assert_eq!(staging(&all), Value::Null);
}

/// With less than min_history_days, VG007's static rule fires on a count no hour of the
/// principal came near, not on a batch job's usual nightly run.
#[test]
fn the_cold_start_burst_rule_spares_a_job_doing_what_it_always_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Log::new();
    for d in 0..5 {
        for i in 0..120 {
            let path = format!("prod/batch/s{}", i % 5);
            l.read(
                day(d) + 2 * H + i * 20,
                "batch-job",
                &path,
                "10.0.9.9",
                "vault-go/1.0",
            );
        }
        for i in 0..2 {
            l.read(
                day(d) + 10 * H + i * 60,
                "svc-quiet",
                "prod/app/db",
                "10.0.8.8",
                "vault-go/1.0",
            );
        }
    }
    // Day 5: the batch's usual run, and the quiet service reading 130 times.
    for i in 0..125 {
        let path = format!("prod/batch/s{}", i % 5);
        l.read(
            day(5) + 2 * H + i * 20,
            "batch-job",
            &path,
            "10.0.9.9",
            "vault-go/1.0",
        );
    }
    for i in 0..130 {
        let path = format!("prod/app/s{}", i % 7);
        l.read(
            day(5) + 15 * H + i * 20,
            "svc-quiet",
            &path,
            "10.0.8.8",
            "vault-go/1.0",
        );
    }
    let log = write(&dir.path().join("audit.log"), &l.text);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{report}");
    let cfg = config(dir.path(), "");
    let r = run(vigil(&store).arg("--config").arg(&cfg).args([
        "detect",
        "--from",
        "2026-03-07",
        "--to",
        "2026-03-08",
        "--only",
        "VG007",
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("VG007 on its static rule"),
        "{}",
        r.stderr
    );
    let found: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f["actor_name"], "svc-quiet");
    assert_eq!(f["cold_start"], true);
    assert_eq!(f["observed"]["reads"], 130);
    assert_eq!(f["baseline"]["busiest_hour_reads"], 2);
    assert!(
        f["explanation"]
            .as_str()
            .unwrap()
            .contains("at least 100 per hour and 3 times its busiest hour so far (2)"),
        "{f}"
    );
}

/// VG007 past its cold start: a nightly job that started five days ago reads 40 secrets at
/// 01:00 every night. The same hour of the week has never seen it (a seasonal baseline near
/// zero), but it is its routine by the hour of the day: quiet. The same 40 reads at 13:00, an
/// hour it never used, fire.
#[test]
fn a_nightly_jobs_routine_is_not_a_burst_but_the_same_count_at_noon_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Log::new();
    for d in 0..21 {
        // A service that gives the store three weeks of history.
        l.read(
            day(d) + 10 * H,
            "svc-steady",
            "prod/app/db",
            "10.0.8.8",
            "vault-go/1.0",
        );
    }
    let night = |l: &mut Log, d: i64, hour: i64| {
        for i in 0..40 {
            l.read(
                day(d) + hour * H + i * 30,
                "nightly-job",
                &format!("prod/batch/s{}", i % 8),
                "10.0.9.9",
                "vault-go/1.0",
            );
        }
    };
    for d in 16..21 {
        night(&mut l, d, 1);
    }
    // The window (day 21): the usual run at 01:00, and another at 13:00.
    night(&mut l, 21, 1);
    night(&mut l, 21, 13);
    let log = write(&dir.path().join("audit.log"), &l.text);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&log], &[]);
    assert_eq!(code, 0, "{report}");
    let cfg = config(dir.path(), "");
    let found = detect(&store, &cfg, &["--only", "VG007"]);
    let hours: Vec<&str> = found
        .iter()
        .map(|f| f["window_start"].as_str().unwrap())
        .collect();
    assert_eq!(hours, ["2026-03-23T13:00:00Z"], "{found:#?}");
}

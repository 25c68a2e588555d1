//! `vigil generate`: deterministic per seed, ingestible without rejects, and its labels name
//! the actor and secrets exactly as the stored rows do.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn generate(out: &Path, source: &str, events: u64, seed: u64) -> Value {
    let r = run(vigil(out)
        .args(["generate", "--source", source, "--days", "7"])
        .args([
            "--events",
            &events.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_slice(&std::fs::read(out.join("labels.json")).unwrap()).unwrap()
}

#[test]
fn every_source_is_ingested_whole_and_every_label_matches_stored_rows() {
    for source in ["vault", "cloudtrail", "gcp", "azure", "k8s"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gen");
        let labels = generate(&out, source, 6_000, 11);
        assert_eq!(labels["events"], 6_000, "{source}");
        let store = dir.path().join("store");
        let (code, report) = ingest(&store, &[&out.join(format!("{source}-audit.log"))], &[]);
        assert_eq!(code, 0, "{source}: {report}");
        assert_eq!(report["total"]["read"], 6_000);
        let anomalies = labels["anomalies"].as_array().unwrap();
        let kinds: Vec<&str> = anomalies
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vigil::generate::ANOMALY_KINDS, "{source}");
        for a in anomalies {
            let resources: Vec<String> = a["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| format!("'{}'", r.as_str().unwrap()))
                .collect();
            let n = count(
                &store,
                &format!(
                    "SELECT count(DISTINCT resource_id) AS n FROM events WHERE actor_id = '{}' AND resource_id IN ({}) \
                     AND event_time >= TIMESTAMP '{}' AND event_time < TIMESTAMP '{}'",
                    a["actor_id"].as_str().unwrap(),
                    resources.join(","),
                    a["start"].as_str().unwrap(),
                    a["end"].as_str().unwrap()
                ),
            );
            assert_eq!(
                n as usize,
                resources.len(),
                "{source} {}: every labelled secret is in the stored rows",
                a["kind"]
            );
        }
        // About 1 % of calls are refused; the denied storm adds 50.
        let denied = count(
            &store,
            "SELECT count(*) AS n FROM events WHERE outcome = 'denied' AND action <> 'login'",
        );
        let rows = count(&store, "SELECT count(*) AS n FROM events");
        assert!(
            denied > 50 && denied < 50 + rows / 25,
            "{source}: {denied} denied of {rows}"
        );
    }
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    generate(&a, "vault", 2_000, 5);
    generate(&b, "vault", 2_000, 5);
    generate(&c, "vault", 2_000, 6);
    let read = |d: &Path| std::fs::read(d.join("vault-audit.log")).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
    assert_eq!(
        std::fs::read(a.join("labels.json")).unwrap(),
        std::fs::read(b.join("labels.json")).unwrap()
    );
}

#[test]
fn people_work_in_their_own_business_hours_and_services_around_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    generate(&out, "vault", 20_000, 2);
    let store = dir.path().join("store");
    ingest(&store, &[&out.join("vault-audit.log")], &[]);
    // Each person's home zone from the vigil.toml the generator wrote; their local weekday
    // business hours (08:00-19:00) hold nearly all of their calls.
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("vigil.toml")).unwrap()).unwrap();
    let zones = config["calendar"]["principal_timezones"]
        .as_table()
        .unwrap();
    assert_eq!(zones.len(), 50, "the default 250 principals hold 50 people");
    let offsets: Vec<String> = zones
        .iter()
        .map(|(actor, zone)| {
            // POSIX sign: Etc/GMT+8 is UTC-8.
            let hours: i64 = match zone.as_str().unwrap().strip_prefix("Etc/GMT") {
                Some(n) => -n.parse::<i64>().unwrap(),
                None => 0,
            };
            format!("WHEN '{actor}' THEN INTERVAL '{hours} hours'")
        })
        .collect();
    let local = format!("event_time + (CASE actor_id {} END)", offsets.join(" "));
    let people = count(
        &store,
        "SELECT count(*) AS n FROM events WHERE actor_type = 'human'",
    );
    let in_hours = count(
        &store,
        &format!(
            "SELECT count(*) AS n FROM events WHERE actor_type = 'human' \
             AND extract(hour FROM {local}) BETWEEN 8 AND 18 AND extract(dow FROM {local}) BETWEEN 1 AND 5"
        ),
    );
    assert!(
        people > 500 && in_hours * 100 >= people * 85,
        "{in_hours} of {people}"
    );
    // Services read at night too.
    let night = count(
        &store,
        "SELECT count(*) AS n FROM events WHERE actor_type = 'workload' AND extract(hour FROM event_time) BETWEEN 0 AND 5",
    );
    assert!(night > 1_000, "{night}");
}

/// Too few events for the planted anomalies: generate still writes them all, and says that
/// there is no normal traffic and how many events to ask for.
#[test]
fn too_few_events_for_the_anomalies_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let r = run(vigil(&out)
        .args(["generate", "--source", "vault", "--events", "200", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("vigil.toml (pass it with --config)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("more than --events 200: there is no normal traffic to compare them with"),
        "{}",
        r.stderr
    );
    let r = run(vigil(&out)
        .args([
            "generate", "--source", "vault", "--events", "20000", "--out",
        ])
        .arg(&out));
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

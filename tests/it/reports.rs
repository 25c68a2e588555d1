use serde_json::Value;

use crate::common::*;

/// The sample period (sample-data spans 2026-03-02 to 2026-03-06).
const MARCH: [&str; 4] = ["--from", "2026-03-01", "--to", "2026-04-01"];

/// Runs one shipped report on the sample data and snapshots its rows as JSON (a change of
/// column width does not touch them; a changed value does). The dormant reports look back from
/// a date inside the sample so that they have rows; open-findings reads what detection recorded.
fn report_snapshot(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    if name == "open-findings" {
        let r = run(vigil(&store)
            .args(["detect", "--format", "jsonl"])
            .args(MARCH));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let args = sample_report_args(name);
    let r = run(vigil(&store).args(&args));
    assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    let rows: Vec<Value> =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {}", r.stdout));
    assert!(!rows.is_empty(), "{name} has rows on the sample data");
    insta::assert_json_snapshot!(format!("report_{}", name.replace('-', "_")), rows);
}

/// One test per shipped report (`report_test!(fn_name, "name")`).
macro_rules! report_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                report_snapshot($name);
            }
        )*

        /// Every report `vigil report list` shows has its test above, and no other.
        const TESTED: &[&str] = &[$($name),*];
    };
}

report_tests! {
    access_summary => "access-summary",
    prod_secret_readers => "prod-secret-readers",
    denied_access => "denied-access",
    privileged_activity => "privileged-activity",
    human_reads_workload_secrets => "human-reads-workload-secrets",
    off_hours_access => "off-hours-access",
    new_callers => "new-callers",
    dormant_principals => "dormant-principals",
    dormant_secrets => "dormant-secrets",
    secret_changes => "secret-changes",
    rotation_hygiene => "rotation-hygiene",
    cross_environment => "cross-environment",
    shared_secrets => "shared-secrets",
    top_talkers => "top-talkers",
    open_findings => "open-findings",
}

#[test]
fn every_listed_report_has_a_snapshot_test() {
    let list =
        run(vigil(std::path::Path::new("unused")).args(["report", "list", "--format", "json"]));
    assert_eq!(list.code, 0, "{}", list.stderr);
    let json: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    let names: Vec<&str> = json.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, TESTED);
    // The text list names the same reports in the same order.
    let text = run(vigil(std::path::Path::new("unused")).args(["report", "list"]));
    let text_names: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(text_names, names);
    let prod = &json[1];
    assert_eq!(prod["params"][0]["name"], "env", "{prod}");
    assert_eq!(prod["params"][0]["default"], "prod", "{prod}");
    assert!(json
        .iter()
        .all(|r| r["title"].as_str().is_some_and(|t| !t.is_empty())));
}

#[test]
fn parameters_are_bound_never_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let prod = report_rows(
        &store,
        &[
            "prod-secret-readers",
            MARCH[0],
            MARCH[1],
            MARCH[2],
            MARCH[3],
        ],
    );
    assert!(prod.len() > 10);
    let explicit = report_rows(
        &store,
        &[
            "prod-secret-readers",
            "--param",
            "env=prod",
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
        ],
    );
    assert_eq!(prod, explicit);
    for hostile in ["' OR 1=1 --", "o'brien", "$1", "prod' --", "ｐｒｏｄ"] {
        let param = format!("env={hostile}");
        let rows = report_rows(
            &store,
            &["prod-secret-readers", "--param", &param, "--since", "90d"],
        );
        assert!(
            rows.is_empty(),
            "{hostile} matched literally, found {rows:?}"
        );
    }
    // A typed parameter refuses text.
    let r = run(vigil(&store).args(["report", "run", "top-talkers", "--param", "limit=1 OR 1=1"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("limit must be int"), "{}", r.stderr);
    let top1 = report_rows(
        &store,
        &["top-talkers", "--param", "limit=1", "--since", "90d"],
    );
    assert_eq!(top1.len(), 1);
}

#[test]
fn unknown_reports_and_parameters_list_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let r = run(vigil(&store).args(["report", "run", "who-read-what"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no report named 'who-read-what'") && r.stderr.contains("top-talkers"),
        "{}",
        r.stderr
    );
    let r = run(vigil(&store).args(["report", "run", "top-talkers", "--param", "top=5"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown parameter 'top'")
            && r.stderr.contains("limit (int, default 20)"),
        "{}",
        r.stderr
    );
    let r = run(vigil(&store).args([
        "report",
        "run",
        "top-talkers",
        "--since",
        "7d",
        "--from",
        "2026-03-01",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run(vigil(&store).args([
        "report",
        "run",
        "top-talkers",
        "--from",
        "2026-03-05",
        "--to",
        "2026-03-01",
    ]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
}

fn find<'a>(rows: &'a [Value], key: &str, value: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r[key] == value).collect()
}

/// Reports checked against the generator's planted anomalies, where the right answer is known.
#[test]
fn reports_find_the_planted_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gen");
    let r = run(vigil(&dir.path().join("unused"))
        .args([
            "generate", "--source", "vault", "--events", "20000", "--seed", "7", "--out",
        ])
        .arg(&data));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = dir.path().join("store");
    let (code, _) = ingest(&store, &[&data.join("vault-audit.log")], &[]);
    assert_eq!(code, 0);
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("labels.json")).unwrap()).unwrap();
    let label = |kind: &str| -> &Value {
        labels["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap()
    };
    let whole = [
        "--from",
        labels["from"].as_str().unwrap(),
        "--to",
        labels["to"].as_str().unwrap(),
    ];

    // Cross-environment: the one principal that successfully read another environment's secret.
    let l = label("cross-environment");
    let rows = report_rows(
        &store,
        &["cross-environment", whole[0], whole[1], whole[2], whole[3]],
    );
    let succeeded: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["successful_reads"].as_i64().unwrap() > 0)
        .map(|r| {
            (
                r["actor_id"].as_str().unwrap(),
                r["resource_id"].as_str().unwrap(),
            )
        })
        .collect();
    let planted = (
        l["actor_id"].as_str().unwrap(),
        l["resources"][0].as_str().unwrap(),
    );
    assert!(succeeded.contains(&planted), "{succeeded:?}");
    // Every other successful cross-environment read is another planted anomaly (the enumeration
    // and the off-hours burst sweep all environments): normal traffic stays in its environment.
    let sweepers: Vec<&Value> = ["enumeration", "off-hours-burst"]
        .iter()
        .map(|k| &label(k)["actor_id"])
        .collect();
    for (actor, resource) in &succeeded {
        assert!(
            (*actor, *resource) == planted || sweepers.iter().any(|s| *s == actor),
            "unexpected {actor} -> {resource}"
        );
    }

    // New caller: the planted pair is new in its window.
    let l = label("new-caller-for-secret");
    let rows = report_rows(
        &store,
        &[
            "new-callers",
            "--from",
            l["start"].as_str().unwrap(),
            "--to",
            l["end"].as_str().unwrap(),
        ],
    );
    let hits = find(&rows, "actor_id", l["actor_id"].as_str().unwrap());
    assert_eq!(hits.len(), 1, "{rows:?}");
    assert_eq!(hits[0]["resource_id"], l["resources"][0]);

    // Dormant secret: idle when its reactivation begins.
    let l = label("dormant-secret-reactivated");
    let rows = report_rows(
        &store,
        &[
            "dormant-secrets",
            "--since",
            "1d",
            "--at",
            l["start"].as_str().unwrap(),
            "--param",
            "days=3",
        ],
    );
    assert_eq!(
        find(&rows, "resource_id", l["resources"][0].as_str().unwrap()).len(),
        1,
        "{rows:?}"
    );

    // Denied storm: the top row of denied access in the storm's window.
    let l = label("denied-storm");
    let rows = report_rows(
        &store,
        &[
            "denied-access",
            "--from",
            l["start"].as_str().unwrap(),
            "--to",
            l["end"].as_str().unwrap(),
        ],
    );
    let storm: i64 = find(&rows, "actor_id", l["actor_id"].as_str().unwrap())
        .iter()
        .map(|r| r["attempts"].as_i64().unwrap())
        .sum();
    assert!(storm >= 20, "{rows:?}");

    // Enumeration: the top talker by distinct secrets in its window.
    let l = label("enumeration");
    let rows = report_rows(
        &store,
        &[
            "top-talkers",
            "--from",
            l["start"].as_str().unwrap(),
            "--to",
            l["end"].as_str().unwrap(),
        ],
    );
    let top = rows
        .iter()
        .max_by_key(|r| r["distinct_secrets"].as_i64().unwrap())
        .unwrap();
    assert_eq!(top["actor_id"], l["actor_id"]);
    assert!(
        top["distinct_secrets"].as_i64().unwrap() as usize
            >= l["resources"].as_array().unwrap().len()
    );
}

/// Off-hours and environments follow vigil.toml: a principal's own time zone and holidays.
#[test]
fn calendar_and_environments_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    // bob reads at Wed 02:37 UTC: off hours in UTC, but 10:37 in Singapore.
    let base = report_rows(
        &store,
        &["off-hours-access", MARCH[0], MARCH[1], MARCH[2], MARCH[3]],
    );
    assert_eq!(
        find(&base, "actor_name", "bob@acme.example")[0]["first_read_local"],
        "Wed 02:37 UTC"
    );
    let cfg = config(dir.path(), "[calendar]\nprincipal_timezones = { \"bob@acme.example\" = \"Asia/Singapore\" }\nholidays = [\"2026-03-03\"]\n");
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .args(["report", "run", "off-hours-access", "--format", "json"])
        .args(MARCH));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    let bob_prod = |rows: &[Value]| {
        rows.iter()
            .filter(|r| {
                r["actor_name"] == "bob@acme.example"
                    && r["resource_id"] == "vault:default/secret/prod/payments/db"
            })
            .count()
    };
    assert_eq!(bob_prod(&base), 1);
    assert_eq!(bob_prod(&rows), 0, "{rows:?}");
    // 2026-03-03 became a holiday: people's reads that day are now off hours.
    assert!(rows.len() > base.len(), "{rows:?}");

    // With configured environments, staging readers of a prod secret appear.
    let cfg = config(dir.path(), "[[environments]]\nname = \"prod\"\nmatch = [\"path:*/prod/*\", \"path:*prod*\"]\n[[environments]]\nname = \"corp\"\nmatch = [\"actor:*@acme.example\"]\n");
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .args(["report", "run", "cross-environment", "--format", "json"])
        .args(MARCH));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r["actor_env"] == "corp" && r["resource_env"] == "prod"),
        "{rows:?}"
    );
    // A bad rule names its key.
    let cfg = config(
        dir.path(),
        "[[environments]]\nname = \"prod\"\nmatch = [\"bucket:x\"]\n",
    );
    let r = run(vigil(&store)
        .arg("--config")
        .arg(&cfg)
        .args(["report", "list"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("environments[0] (prod).match"),
        "{}",
        r.stderr
    );
}

#[test]
fn html_page_is_standalone_escaped_and_charted() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // A secret path and user agent carrying markup: log content is attacker-controlled.
    let line = r#"{"time":"2026-03-03T10:00:00Z","type":"response","auth":{"display_name":"<b>eve</b>","entity_id":"ent-eve","policies":["default"]},"request":{"id":"r-1","operation":"read","path":"secret/data/prod/<script>alert(1)</script>","mount_point":"secret/","mount_type":"kv","remote_address":"10.0.0.9"},"response":{"data":{"data":{"password":"hmac-sha256:00"}}}}"#;
    let f = write(&dir.path().join("audit.log"), format!("{line}\n"));
    ingest(&store, &[&f], &[]);
    ingest(&store, &[&repo().join("sample-data/vault")], &[]);
    let page = dir.path().join("weekly.html");
    let r = run(vigil(&store)
        .args(["report", "run", "top-talkers", "access-summary", "--out"])
        .arg(&page)
        .args(MARCH));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<h2>Top talkers</h2>") && html.contains("<h2>Secret access summary</h2>")
    );
    assert!(
        html.contains("<svg") && html.contains("<rect"),
        "the ranking has a bar chart"
    );
    // Its bars are named by the principals' names where the logs give one.
    let chart = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    assert!(chart.contains("&lt;b&gt;eve&lt;/b&gt;"), "{chart}");
    assert!(!chart.contains(">ent-eve<"), "{chart}");
    assert!(html.contains("Period") && html.contains("2026-03-01 00:00 to 2026-04-01 00:00 UTC"));
    assert!(html.contains("SOC 2"), "control reference shown");
    assert!(
        !html.contains("<script>") && !html.contains("<b>eve"),
        "log content escaped"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Standalone: no external assets (stylesheets, scripts, images, fonts).
    assert!(!html.contains("<link") && !html.contains("src=") && !html.contains("@import"));

    // Several reports in csv go to a directory, one file each.
    let out = dir.path().join("csv");
    let r = run(vigil(&store)
        .args([
            "report",
            "run",
            "top-talkers",
            "denied-access",
            "--format",
            "csv",
            "--out",
        ])
        .arg(&out)
        .args(MARCH));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv = std::fs::read_to_string(out.join("top-talkers.csv")).unwrap();
    assert!(csv.starts_with("rank,actor_id,"), "{csv}");
    assert!(out.join("denied-access.csv").exists());
    // Markdown carries the title and facts.
    let r = run(vigil(&store)
        .args(["report", "run", "top-talkers", "--format", "markdown"])
        .args(MARCH));
    assert!(
        r.stdout.starts_with("## Top talkers") && r.stdout.contains("| rank | actor_id |"),
        "{}",
        r.stdout
    );
}

/// The per-day columns of a page's chart, as (day, value) from their hover titles.
fn per_day_columns(section: &str) -> Vec<(String, f64)> {
    let svg = &section[..section.find("</svg>").unwrap_or(0)];
    svg.split("<title>")
        .skip(1)
        .map(|t| {
            let t = &t[..t.find("</title>").unwrap()];
            let (day, v) = t.split_once(": ").unwrap();
            (day.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn per_day_charts_add_up_to_the_reports_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    // (report, what its rows add up: a column, or the rows themselves, and the chart's name)
    let cases = [
        ("access-summary", Some("reads"), "secret reads per day"),
        ("denied-access", Some("attempts"), "denied attempts per day"),
        ("secret-changes", None, "changes per day"),
    ];
    for (name, column, title) in cases {
        let page = dir.path().join(format!("{name}.html"));
        let r = run(vigil(&store)
            .args(["report", "run", name, "--out"])
            .arg(&page)
            .args(["--from", "2026-03-01", "--to", "2026-03-08"]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let html = std::fs::read_to_string(&page).unwrap();
        let at = html
            .find(title)
            .unwrap_or_else(|| panic!("{name}: no '{title}' chart"));
        let days = per_day_columns(&html[at..]);
        // One column per day of the week, the empty ones at zero.
        assert_eq!(days.len(), 7, "{name}: {days:?}");
        assert_eq!(days[0].0, "2026-03-01");
        assert_eq!(days[6].0, "2026-03-07");
        assert_eq!(days[0].1, 0.0, "{name}: the sample starts on 2026-03-02");
        let r = run(vigil(&store)
            .args(["report", "run", name, "--format", "json"])
            .args(["--from", "2026-03-01", "--to", "2026-03-08"]));
        let rows: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
        let total: f64 = match column {
            Some(c) => rows.iter().map(|r| r[c].as_f64().unwrap()).sum(),
            None => rows.len() as f64,
        };
        let charted: f64 = days.iter().map(|d| d.1).sum();
        assert!(total > 0.0, "{name}");
        assert_eq!(charted, total, "{name}: {days:?}");
        // Per day too, for the report whose rows are events.
        if column.is_none() {
            for (day, v) in &days {
                let n = rows
                    .iter()
                    .filter(|r| r["event_time"].as_str().unwrap().starts_with(day.as_str()))
                    .count();
                assert_eq!(*v, n as f64, "{name} on {day}");
            }
        }
    }
}

#[test]
fn without_smtp_the_mail_goes_to_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let r = run(vigil(&store)
        .args([
            "report",
            "run",
            "denied-access",
            "--email",
            "secops@example.com",
        ])
        .args(MARCH));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "mail only: {}", r.stdout);
    let local = store.join("state/outbox/local");
    let files: Vec<_> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        r.stderr.contains(&*files[0].to_string_lossy()),
        "{}",
        r.stderr
    );
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("To: secops@example.com"));
    assert!(
        eml.contains("Subject: vigil report: Denied access attempts"),
        "{eml}"
    );
    assert!(
        eml.contains("multipart/alternative")
            && eml.contains("text/html")
            && eml.contains("text/plain")
    );
    assert!(eml.contains("filename=\"denied-access.csv\""), "{eml}");
    let r = run(vigil(&store).args([
        "report",
        "run",
        "denied-access",
        "--email",
        "not-an-address",
    ]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("'not-an-address' is not an email address"),
        "{}",
        r.stderr
    );
}

#[test]
fn demo_runs_reports_and_writes_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo");
    let r = run(vigil(&store).arg("demo"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for name in ["off-hours-access", "cross-environment", "denied-access"] {
        assert!(
            r.stdout.contains(&format!(
                "report run {name} --from 2026-03-02 --to 2026-03-07"
            )),
            "{}",
            r.stdout
        );
    }
    assert!(
        r.stdout.contains("kubernetes-staging-orders-worker"),
        "the cross-environment story shows"
    );
    // At least three detectors fire on the sample week's story, for reasons a reader can follow.
    for line in [
        "VG005 off-hours-human             bob@acme.example read 1 secret outside working time",
        "VG016 cross-environment",
        "VG017 sensitive-change",
    ] {
        assert!(r.stdout.contains(line), "{line} missing: {}", r.stdout);
    }
    let page = std::fs::read_to_string(store.join("demo-report.html")).unwrap();
    assert!(page.contains("<h2>Off-hours secret access</h2>") && page.contains("bob@acme.example"));
    assert!(r
        .stdout
        .contains(&*store.join("demo-report.html").to_string_lossy()));
}

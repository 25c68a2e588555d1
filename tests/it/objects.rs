//! Inputs from object storage through a real S3-compatible server (moto's, started here on
//! loopback): the same rows as from local files, only new objects read again, and one sentence
//! with no credential for each way it can fail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::mail::free_port;

const KEY_ID: &str = "AKIAVIGILTESTKEY0001";
/// A credential that must never be printed or stored.
const SECRET_KEY: &str = "sentinel-s3-secret-2b9e7d41";
const ACCOUNT: &str = "111122223333";

/// moto's S3 server on a free loopback port.
struct S3Server {
    child: Child,
    port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// `authenticated`: every request must carry credentials moto knows (none do), so every
    /// request is refused as S3 refuses an unknown access key.
    fn start(dir: &Path, authenticated: bool) -> S3Server {
        let py = python_with("moto.server");
        let port = free_port();
        let mut cmd = Command::new(py);
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("moto-{port}.log"))).unwrap());
        if authenticated {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let server = S3Server {
            child: cmd.spawn().expect("moto server starts"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A PUT without a signature (moto accepts it unless it authenticates): a bucket, or an
    /// object with its bytes.
    fn put(&self, path: &str, body: &[u8]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "PUT /{path}: {}",
            response.lines().next().unwrap_or("")
        );
    }
}

/// `vigil` with S3 credentials and the endpoint in the environment only (no config file), and
/// nothing of the host's own AWS settings.
fn vigil_s3(store: &Path, endpoint: &str) -> Command {
    let mut c = vigil(store);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(s3_env(endpoint));
    c
}

fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

fn ingest_s3(store: &Path, endpoint: &str, urls: &[&str]) -> Ran {
    let mut c = vigil_s3(store, endpoint);
    c.args(["ingest", "--format", "json"]).args(urls);
    run(&mut c)
}

fn report_of(r: &Ran) -> Value {
    assert!(
        r.code == 0 || r.code == 1,
        "ingest failed ({}): {}",
        r.code,
        r.stderr
    );
    serde_json::from_str(&r.stdout).unwrap()
}

/// Every row but where it was read from (a path here, a URL there) and when.
fn rows(store: &Path) -> Vec<Value> {
    sql(
        store,
        "SELECT * EXCLUDE (ingest_time, raw_event, raw_location) FROM events ORDER BY event_uid",
    )
}

/// The files under `dir`, relative, in name order.
fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = walk(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                p,
            )
        })
        .collect();
    files.sort();
    files
}

fn trail_key(day: u32, name: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/eu-west-1/2026/03/{day:02}/{name}")
}

#[test]
fn objects_are_read_as_local_files_are_and_only_new_ones_again() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(dir.path(), false);
    let endpoint = s3.endpoint();

    // The whole sample estate, all five sources and its README, as objects of one bucket.
    s3.put("estate", b"");
    let sample = repo().join("sample-data");
    for (rel, path) in files_under(&sample) {
        s3.put(&format!("estate/logs/{rel}"), &std::fs::read(path).unwrap());
    }
    let local = dir.path().join("local");
    // (The sample data holds a few bad records on purpose: both runs exit 1.)
    let (code, local_report) = ingest(&local, &[&sample], &[]);
    assert_eq!(code, 1, "{local_report}");
    let remote = dir.path().join("remote");
    let r = ingest_s3(&remote, &endpoint, &["s3://estate/logs/"]);
    let report = report_of(&r);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        report["counts"], local_report["counts"],
        "same accounting per source"
    );
    assert_eq!(report["files_read"], local_report["files_read"]);
    let skipped = report["skipped"].to_string();
    assert!(
        skipped.contains("s3://estate/logs/README.md") && skipped.contains("documentation"),
        "{skipped}"
    );
    assert_eq!(
        rows(&remote),
        rows(&local),
        "the same rows from objects as from files"
    );
    let located = sql(
        &remote,
        "SELECT DISTINCT split_part(raw_location, ':', 1) || ':' || split_part(raw_location, ':', 2) AS input FROM events WHERE source = 'cloudtrail' ORDER BY input",
    );
    assert!(
        located[0]["input"]
            .as_str()
            .unwrap()
            .starts_with("s3://estate/logs/cloudtrail/"),
        "rows name the object they came from: {located:?}"
    );

    // CloudTrail's own layout in another bucket: gzip objects, and a digest beside them.
    s3.put("trail", b"");
    let first = std::fs::read(sample.join(
        "cloudtrail/111122223333_CloudTrail_eu-west-1_20260306T1405Z_a1b2c3d4e5f6g7h8.json.gz",
    ))
    .unwrap();
    s3.put(
        &format!(
            "trail/{}",
            trail_key(
                6,
                "111122223333_CloudTrail_eu-west-1_20260306T1405Z_a1b2c3d4e5f6g7h8.json.gz"
            )
        ),
        &first,
    );
    s3.put(
        &format!(
            "trail/AWSLogs/{ACCOUNT}/CloudTrail-Digest/eu-west-1/2026/03/06/{ACCOUNT}_CloudTrail-Digest_eu-west-1_x_20260306T1500Z.json.gz"
        ),
        &gzip(br#"{"awsAccountId":"111122223333","digestStartTime":"2026-03-06T14:00:00Z","digestEndTime":"2026-03-06T15:00:00Z","digestS3Bucket":"trail","logFiles":[]}"#),
    );
    let trail = dir.path().join("trail-store");
    let prefix = format!("s3://trail/AWSLogs/{ACCOUNT}/");
    let r1 = report_of(&ingest_s3(&trail, &endpoint, &[&prefix]));
    assert_eq!(r1["files_read"], 2, "{r1}");
    assert!(r1["skipped"].to_string().contains("digest"), "{r1}");
    let stored_first = r1["counts"]["cloudtrail"]["stored"].as_u64().unwrap();
    assert!(stored_first > 0, "{r1}");

    // An object written after the first run: the second reads only it.
    let later = std::fs::read(fixture("cloudtrail/golden.json")).unwrap();
    let later_key = trail_key(
        7,
        "111122223333_CloudTrail_eu-west-1_20260307T0900Z_later.json.gz",
    );
    s3.put(&format!("trail/{later_key}"), &gzip(&later));
    let r2 = report_of(&ingest_s3(&trail, &endpoint, &[&prefix]));
    assert_eq!(r2["files_read"], 1, "only the new object is read: {r2}");
    let skipped: Vec<String> = r2["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["path"], s["why"]))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .all(|s| s.contains("already ingested (commit 1)")),
        "the first object and the digest are not fetched again: {skipped:?}"
    );
    let read_now = r2["counts"]["cloudtrail"]["read"].as_u64().unwrap();
    assert!(read_now > 0, "{r2}");
    let commit_inputs = sql(
        &trail,
        "SELECT count(*) AS n FROM events WHERE raw_location LIKE 's3://trail/%20260307T0900Z_later.json.gz%'",
    );
    assert!(commit_inputs[0]["n"].as_i64().unwrap() > 0);

    // Nothing new: nothing read, nothing committed.
    let r3 = ingest_s3(&trail, &endpoint, &[&prefix]);
    let report3 = report_of(&r3);
    assert_eq!(report3["files_read"], 0, "{report3}");
    assert!(report3["commit"].is_null(), "{report3}");
    assert_eq!(
        count(&trail, "SELECT count(*) FROM events"),
        (r1["counts"]["cloudtrail"]["rows"].as_u64().unwrap()
            + r2["counts"]["cloudtrail"]["rows"].as_u64().unwrap()) as i64
    );
    for ran in [&r, &r3] {
        assert!(!ran.stdout.contains(SECRET_KEY) && !ran.stderr.contains(SECRET_KEY));
    }
    assert_verified(&trail);
    assert_no_credential_under(&remote);
    assert_no_credential_under(&trail);
}

#[test]
fn damaged_objects_are_rejected_and_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(dir.path(), false);
    s3.put("trail", b"");
    let good = gzip(&std::fs::read(fixture("cloudtrail/golden.json")).unwrap());
    s3.put(&format!("trail/{}", trail_key(1, "a-good.json.gz")), &good);
    // Cut short: the gzip stream has no end.
    s3.put(
        &format!("trail/{}", trail_key(1, "b-truncated.json.gz")),
        &good[..good.len() / 2],
    );
    // Named gzip, but plain text that is no audit log.
    s3.put(
        &format!("trail/{}", trail_key(1, "c-not-gzip.json.gz")),
        b"this is not an audit log\n",
    );
    let store = dir.path().join("store");
    let r = ingest_s3(&store, &s3.endpoint(), &["s3://trail/AWSLogs/"]);
    let report = report_of(&r);
    assert_eq!(r.code, 1, "rejects flag the run: {}", r.stderr);
    let reasons = reject_reasons(&store, &report);
    assert!(
        reasons.contains(&"gzip_truncated".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"unknown_format".to_owned()),
        "{reasons:?}"
    );
    let rejects = report["rejects"].to_string();
    assert!(
        rejects.contains("b-truncated.json.gz") && rejects.contains("c-not-gzip.json.gz"),
        "rejects name the objects: {rejects}"
    );
    // Everything of the good object, nothing of the truncated one (its first half is whole
    // records, but a damaged stream stores nothing).
    let (_, local) = ingest(
        &dir.path().join("local"),
        &[&fixture("cloudtrail/golden.json")],
        &[],
    );
    assert_eq!(
        report["counts"]["cloudtrail"]["stored"],
        local["counts"]["cloudtrail"]["stored"]
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM events WHERE raw_location LIKE '%b-truncated%'"
        ),
        0
    );
    // The rejected objects are read again next time (they may be repaired); the good one not.
    let again = report_of(&ingest_s3(&store, &s3.endpoint(), &["s3://trail/AWSLogs/"]));
    assert_eq!(again["files_read"], 2, "{again}");
}

#[test]
fn object_store_failures_are_one_sentence_without_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let check = |r: &Ran, expect: &str| {
        assert_eq!(r.code, 2, "{expect}: {} {}", r.stdout, r.stderr);
        assert!(r.stderr.contains(expect), "{expect}: {}", r.stderr);
        assert!(
            !r.stderr.contains(SECRET_KEY)
                && !r.stderr.contains(KEY_ID)
                && !r.stdout.contains(SECRET_KEY),
            "a credential was printed: {}",
            r.stderr
        );
        assert!(r.stderr.lines().count() <= 3, "one sentence: {}", r.stderr);
    };

    // Nothing listens there.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let r = ingest_s3(&store, &closed, &["s3://trail/AWSLogs/"]);
    check(&r, &format!("cannot reach the object store at {closed}"));

    // Plain HTTP to another host would send the logs and the signature in clear.
    let r = ingest_s3(&store, "http://s3.example.com", &["s3://trail/AWSLogs/"]);
    check(&r, "allowed only to a loopback address");

    let s3 = S3Server::start(dir.path(), false);
    let r = ingest_s3(&store, &s3.endpoint(), &["s3://no-such-bucket/AWSLogs/"]);
    check(&r, "bucket 'no-such-bucket' does not exist");

    // An empty prefix is no input, said as for an empty directory.
    s3.put("empty", b"");
    let r = ingest_s3(&store, &s3.endpoint(), &["s3://empty/AWSLogs/"]);
    check(&r, "no input files found in s3://empty/AWSLogs");

    let r = ingest_s3(&store, &s3.endpoint(), &["gs://bucket/logs/"]);
    check(&r, "gs:// is not supported yet");

    // A server that knows no such access key.
    let strict = S3Server::start(dir.path(), true);
    let r = ingest_s3(&store, &strict.endpoint(), &["s3://trail/AWSLogs/"]);
    check(&r, "access denied");
    assert!(r.stderr.contains("InvalidAccessKeyId"), "{}", r.stderr);
    // The same for a store kept there.
    let input = repo().join("sample-data/gcp");
    let r = run(vigil_s3(Path::new("s3://history/acme"), &strict.endpoint())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .args(["ingest", input.to_str().unwrap()]));
    check(&r, "s3://history");
    assert!(r.stderr.contains("InvalidAccessKeyId"), "{}", r.stderr);

    // Nothing was committed by any of them.
    let commits = store.join("_commits");
    assert!(!commits.exists() || walk(&commits).is_empty());
    assert_no_credential_under(dir.path());
}

fn assert_verified(store: &Path) {
    let r = run(vigil(store).arg("verify"));
    assert_eq!(r.code, 0, "verify: {} {}", r.stdout, r.stderr);
}

/// No file under `dir` (store, rejects, state, logs) holds the secret key.
fn assert_no_credential_under(dir: &Path) {
    for p in walk(dir) {
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes
                .windows(SECRET_KEY.len())
                .any(|w| w == SECRET_KEY.as_bytes()),
            "{} holds the secret key",
            p.display()
        );
    }
}

#[test]
fn the_service_polls_a_bucket_reads_each_new_object_once_and_says_when_it_cannot() {
    use crate::serve::{get, wait_for, Service};
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(dir.path(), false);
    s3.put("trail", b"");
    let first = repo().join(
        "sample-data/cloudtrail/111122223333_CloudTrail_eu-west-1_20260306T1405Z_a1b2c3d4e5f6g7h8.json.gz",
    );
    s3.put(
        &format!("trail/{}", trail_key(6, "first.json.gz")),
        &std::fs::read(&first).unwrap(),
    );
    let later = fixture("cloudtrail/golden.json");
    // What the two objects hold, ingested from files.
    let local = dir.path().join("local");
    ingest(&local, &[&first], &[]);
    let rows_first = count(&local, "SELECT count(*) FROM events");
    ingest(&local, &[&later], &[]);
    let rows_both = count(&local, "SELECT count(*) FROM events");

    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\ncommit_interval = \"1s\"\ndetect_every = \"1s\"\n[[serve.inputs]]\npath = \"s3://trail/AWSLogs/\"\npoll_every = \"3s\"\n"
        ),
    );
    let store = dir.path().join("store");
    let mut service = Service::start_with(
        &store,
        &cfg,
        Some(NOW),
        port,
        &dir.path().join("serve.log"),
        &s3_env(&s3.endpoint()),
    );
    let stored = |n: i64| {
        store.join("_commits").is_dir() && count(&store, "SELECT count(*) FROM events") == n
    };
    wait_for(Duration::from_secs(120), "the first object", || {
        stored(rows_first)
    });
    s3.put(
        &format!("trail/{}", trail_key(7, "later.json.gz")),
        &gzip(&std::fs::read(&later).unwrap()),
    );
    wait_for(
        Duration::from_secs(120),
        "the object delivered later",
        || stored(rows_both),
    );
    // Polled again and again: nothing is read twice.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&store, "SELECT count(*) FROM events"), rows_both);
    assert_eq!(get(port, "/healthz"), Some((200, "ok\n".into())));
    // The bucket's server goes away: unhealthy, naming the input, and the service goes on.
    drop(s3);
    wait_for(Duration::from_secs(60), "503", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 503)
    });
    let (_, why) = get(port, "/healthz").unwrap();
    assert!(why.contains("s3://trail/AWSLogs"), "{why}");
    // Commits come every second, the bucket is looked at every three: it stays unhealthy
    // between its looks.
    for _ in 0..16 {
        std::thread::sleep(Duration::from_millis(250));
        let status = get(port, "/healthz").map(|(s, _)| s);
        assert_eq!(
            status,
            Some(503),
            "healthy again between two looks at a dead bucket"
        );
    }
    let (code, _) = service.stop();
    assert_eq!(code, 0, "{}", service.log());
    assert!(!service.log().contains(SECRET_KEY));
    assert_verified(&store);
}

/// Puts local files into `bucket` under the keys given, with signed requests as the AWS tools
/// make them (boto3, which comes with moto).
fn upload(server: &S3Server, bucket: &str, files: &[(String, PathBuf)]) {
    boto3(
        server,
        &format!(
            "args = sys.argv[1:]\n\
             for key, path in zip(args[::2], args[1::2]):\n    s3.upload_file(path, '{bucket}', key)\n"
        ),
        files
            .iter()
            .flat_map(|(k, p)| [k.into(), p.clone().into_os_string()]),
    );
}

/// Runs `body` in Python with `s3`, a boto3 client of `server` with the test's credentials,
/// and `args` in `sys.argv[1:]`; returns what it printed.
fn boto3(
    server: &S3Server,
    body: &str,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> String {
    let script = format!(
        "import boto3, sys\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{KEY_ID}', aws_secret_access_key='{SECRET_KEY}')\n{body}",
        server.endpoint(),
    );
    let out = Command::new(python_with("moto.server"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files of a local store a copy to a bucket takes, with their store-relative paths: all
/// but its lock and local outbox.
fn store_files(store: &Path) -> Vec<(String, PathBuf)> {
    files_under(store)
        .into_iter()
        .filter(|(rel, _)| rel != ".lock" && !rel.starts_with("state/outbox"))
        .collect()
}

/// Copies every file of a local store but its lock and local state to `bucket/prefix`, as
/// `aws s3 sync` would.
fn upload_store(server: &S3Server, store: &Path, bucket: &str, prefix: &str) -> usize {
    let files: Vec<(String, PathBuf)> = store_files(store)
        .into_iter()
        .map(|(rel, path)| (format!("{prefix}/{rel}"), path))
        .collect();
    upload(server, bucket, &files);
    files.len()
}

/// The JSON both runs of `args` printed (over a local store and over one on S3), which must
/// be equal.
fn same_json(args: &[&str], here: &Ran, there: &Ran) -> Value {
    assert_eq!(here.code, 0, "{args:?} locally: {}", here.stderr);
    assert_eq!(there.code, 0, "{args:?} on S3: {}", there.stderr);
    let (a, b): (Value, Value) = (
        serde_json::from_str(&here.stdout).unwrap(),
        serde_json::from_str(&there.stdout).unwrap(),
    );
    assert_eq!(a, b, "{args:?}");
    a
}

#[test]
fn a_store_copied_to_a_bucket_is_read_in_place_as_the_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path(), false);
    let endpoint = server.endpoint();
    let local = sample_store(dir.path());
    let march = ["--from", "2026-03-01", "--to", "2026-04-01"];
    // Findings recorded too, so that the findings tables have files to read.
    let r = run(vigil(&local)
        .args(["detect", "--format", "jsonl"])
        .args(march));
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    server.put("history", b"");
    assert!(upload_store(&server, &local, "history", "stores/acme") > 10);
    let url = Path::new("s3://history/stores/acme");
    let cache = dir.path().join("cache");
    let remote = |args: &[&str]| {
        run(vigil_s3(url, &endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(args))
    };
    let same = |args: &[&str]| same_json(args, &run(vigil(&local).args(args)), &remote(args));

    // Every shipped report, detection and the findings print what they print locally.
    let list = run(vigil(&local).args(["report", "list", "--format", "json"]));
    let reports: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(reports.len(), 15);
    let mut with_rows = 0;
    for report in &reports {
        let name = report["name"].as_str().unwrap();
        if !same(&sample_report_args(name))
            .as_array()
            .unwrap()
            .is_empty()
        {
            with_rows += 1;
        }
    }
    assert_eq!(with_rows, 15, "every report has rows on the sample data");
    let detected = same(
        &[
            ["detect", "--dry-run", "--format", "json"].as_slice(),
            march.as_slice(),
        ]
        .concat(),
    );
    assert!(!detected.as_array().unwrap().is_empty());
    same(&["findings", "list", "--format", "json"]);
    // verify reads every file from the bucket and finds what it finds locally.
    let (here, there) = (run(vigil(&local).arg("verify")), remote(&["verify"]));
    assert_eq!((here.code, there.code), (0, 0), "{}", there.stderr);
    assert_eq!(here.stdout, there.stdout);
    assert!(there.stdout.starts_with("head "), "{}", there.stdout);
    let count = "SELECT count(*) AS n, count(DISTINCT event_uid) AS uids FROM events";
    let before = same(&["sql", "--format", "json", count]);

    // Only the commit log is cached locally; the data is read from the bucket.
    let cached = files_under(&cache);
    assert!(!cached.is_empty());
    assert!(
        cached.iter().all(|(rel, _)| rel.contains("_commits/")
            || rel.contains("_checkpoints/")
            || rel.ends_with("/etags.json")),
        "{cached:?}"
    );

    // A later commit copied to the bucket is seen by the next command.
    let f = write(
        &dir.path().join("late.log"),
        format!(
            "{}\n{}\n",
            vault_request("late-1", "2026-03-06T08:00:00Z"),
            vault_response("late-1", "2026-03-06T08:00:00Z")
        ),
    );
    // (A checkpoint with it, so that opening lists only the commits from there.)
    let cfg = config(dir.path(), "[store]\ncheckpoint_every = 1\n");
    ingest(&local, &[&f], &["--config", cfg.to_str().unwrap()]);
    upload_store(&server, &local, "history", "stores/acme");
    let after = same(&["sql", "--format", "json", count]);
    assert_eq!(
        after[0]["n"].as_i64().unwrap(),
        before[0]["n"].as_i64().unwrap() + 1
    );
    let seqs = |sub: &str| -> Vec<String> {
        files_under(&cache)
            .into_iter()
            .filter(|(rel, _)| rel.contains(sub))
            .map(|(rel, _)| rel.rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    let checkpoints = seqs("_checkpoints/");
    assert!(!checkpoints.is_empty());
    // A fresh cache holds only the commits from the oldest checkpoint on, and reads the same.
    std::fs::remove_dir_all(&cache).unwrap();
    assert_eq!(same(&["sql", "--format", "json", count]), after);
    let commits = seqs("_commits/");
    assert!(!commits.is_empty());
    assert!(
        commits.iter().all(|c| c >= &checkpoints[0]),
        "{commits:?} {checkpoints:?}"
    );
    assert!(!commits.contains(&"00000000000000000001.json".to_owned()));

    // A copy in progress (the newest checkpoint there, its commit not yet) reads as the
    // commits before it, not as an empty store.
    let newest_commit = seqs("_commits/").last().cloned().unwrap();
    let partial: Vec<(String, PathBuf)> = store_files(&local)
        .into_iter()
        .filter(|(rel, _)| *rel != format!("_commits/{newest_commit}"))
        .filter(|(rel, _)| !rel.starts_with("_checkpoints/") || rel.ends_with(&newest_commit))
        .map(|(rel, path)| (format!("stores/partial/{rel}"), path))
        .collect();
    upload(&server, "history", &partial);
    let r = run(
        vigil_s3(Path::new("s3://history/stores/partial"), &endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(["sql", "--format", "json", count]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows, before, "the commits before the one not copied yet");

    // Checkpoints that cannot be used: the log is read from the first commit, fetched then.
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"{\"not\": \"a checkpoint\"}").unwrap();
    let damaged: Vec<(String, PathBuf)> = store_files(&local)
        .into_iter()
        .map(|(rel, path)| {
            let path = if rel.starts_with("_checkpoints/") {
                garbage.clone()
            } else {
                path
            };
            (format!("stores/damaged/{rel}"), path)
        })
        .collect();
    upload(&server, "history", &damaged);
    let r = run(
        vigil_s3(Path::new("s3://history/stores/damaged"), &endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(["sql", "--format", "json", count]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), after);
    assert!(r.stderr.contains("cannot be used"), "{}", r.stderr);

    // A data file changed in the bucket is found by verify there.
    let (rel, _) = files_under(&local)
        .into_iter()
        .find(|(rel, _)| rel.starts_with("events/") && rel.ends_with(".parquet"))
        .unwrap();
    let other = dir.path().join("other.parquet");
    std::fs::write(&other, b"PAR1 not the file the commit names PAR1").unwrap();
    upload(&server, "history", &[(format!("stores/acme/{rel}"), other)]);
    let r = remote(&["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("INVALID: {rel} hash mismatch")),
        "{}",
        r.stdout
    );

    // A commit rewritten in the bucket to the same length is not trusted from the cache.
    let first = local.join("_commits/00000000000000000001.json");
    let text = std::fs::read_to_string(&first).unwrap();
    let at = text.find("\"created\": \"").unwrap() + "\"created\": \"".len();
    let digit = if &text[at..at + 1] == "1" { "2" } else { "1" };
    let edited = dir.path().join("edited.json");
    std::fs::write(
        &edited,
        format!("{}{digit}{}", &text[..at], &text[at + 1..]),
    )
    .unwrap();
    upload(
        &server,
        "history",
        &[(
            "stores/acme/_commits/00000000000000000001.json".into(),
            edited,
        )],
    );
    let r = remote(&["verify"]);
    assert!(
        r.stdout
            .contains("INVALID: commit 2 does not chain to commit 1"),
        "{}{}",
        r.stdout,
        r.stderr
    );

    // A prefix with characters object paths would escape reads as any other.
    upload_store(&server, &local, "history", "équipe/vigil #1");
    let r = run(
        vigil_s3(Path::new("s3://history/équipe/vigil #1"), &endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(["sql", "--format", "json", count]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), after);

    // A prefix without a store is one sentence.
    let r = run(vigil_s3(Path::new("s3://history/nothing-here"), &endpoint)
        .env("XDG_CACHE_HOME", &cache)
        .args(["sql", "SELECT 1"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no vigil store there"), "{}", r.stderr);
}

/// The keys under `prefix` in `bucket`, listed with boto3.
fn keys(server: &S3Server, bucket: &str, prefix: &str) -> Vec<String> {
    boto3(
        server,
        &format!(
            "for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}'):\n    \
                 for o in page.get('Contents', []):\n        print(o['Key'])\n"
        ),
        [],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn a_store_kept_in_a_bucket_is_written_as_a_local_one_and_racing_writers_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path(), false);
    let endpoint = server.endpoint();
    server.put("history", b"");
    server.put("trail", b"");
    let sample = repo().join("sample-data");
    let sample_arg = sample.to_str().unwrap();
    let trail_name = "111122223333_CloudTrail_eu-west-1_20260306T1405Z_a1b2c3d4e5f6g7h8.json.gz";
    server.put(
        &format!("trail/{}", trail_key(6, trail_name)),
        &std::fs::read(sample.join("cloudtrail").join(trail_name)).unwrap(),
    );
    let trail = format!("s3://trail/AWSLogs/{ACCOUNT}/");
    let local = dir.path().join("local");
    let url = Path::new("s3://history/acme");
    let cache = dir.path().join("cache");
    let remote = |args: &[&str]| {
        run(vigil_s3(url, &endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(args))
    };
    let here = |args: &[&str]| run(vigil_s3(&local, &endpoint).args(args));
    let march = ["--from", "2026-03-01", "--to", "2026-04-01"];

    // The same writes to a local store and to one in the bucket (created by its first ingest):
    // the sample estate, then CloudTrail objects of another bucket, then recorded findings.
    for args in [
        vec!["ingest", "--format", "json", sample_arg],
        vec!["ingest", "--format", "json", trail.as_str()],
        [["detect", "--format", "json"].as_slice(), march.as_slice()].concat(),
    ] {
        let (a, b) = (here(&args), remote(&args));
        assert_eq!(a.code, b.code, "{args:?}: {} / {}", a.stderr, b.stderr);
        assert!(b.code == 0 || b.code == 1, "{args:?}: {}", b.stderr);
        if args[0] == "ingest" {
            let (a, b) = (report_of(&a), report_of(&b));
            assert_eq!(a["counts"], b["counts"], "{args:?}");
            assert_eq!(b["commit"], a["commit"], "{args:?}");
        }
        assert!(!b.stderr.contains(SECRET_KEY) && !b.stdout.contains(SECRET_KEY));
    }
    let same = |args: &[&str]| same_json(args, &here(args), &remote(args));
    let all_rows = [
        "sql",
        "--format",
        "json",
        "SELECT * EXCLUDE (ingest_time, raw_event) FROM events ORDER BY event_uid",
    ];
    let rows_before = same(&all_rows);
    assert!(rows_before.as_array().unwrap().len() > 200);
    // Every shipped report.
    let list = run(vigil(&local).args(["report", "list", "--format", "json"]));
    let reports: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(reports.len(), 15);
    for report in &reports {
        same(&sample_report_args(report["name"].as_str().unwrap()));
    }
    let detected = same(
        &[
            ["detect", "--dry-run", "--format", "json"].as_slice(),
            march.as_slice(),
        ]
        .concat(),
    );
    assert!(!detected.as_array().unwrap().is_empty());
    same(&[
        "sql",
        "--format",
        "json",
        "SELECT key, code, status, commit_seq FROM findings ORDER BY key",
    ]);
    // A verdict is a commit too.
    let key = detected[0]["key"].as_str().unwrap().to_owned();
    for store in ["local", "remote"] {
        let args = ["findings", "ack", key.as_str(), "--reason", "ticket SEC-1"];
        let r = if store == "local" {
            here(&args)
        } else {
            remote(&args)
        };
        assert_eq!(r.code, 0, "{store}: {}", r.stderr);
    }
    same(&[
        "sql",
        "--format",
        "json",
        "SELECT key, status, status_reason FROM findings ORDER BY key",
    ]);
    // verify fetches each data file once (its hash and its rows from the same bytes).
    let moto_log = dir.path().join(format!("moto-{}.log", server.port));
    let data_gets = || {
        std::fs::read_to_string(&moto_log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"GET /history/acme/events/"))
            .count()
    };
    let before = data_gets();
    let verified = remote(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(
        verified.stderr.contains("4 commit(s)"),
        "{}",
        verified.stderr
    );
    let data_files: usize = verified
        .stderr
        .split(" data file(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", verified.stderr));
    assert!(data_files > 10);
    assert_eq!(data_gets() - before, data_files, "one GET per data file");

    // The bucket holds the store's layout (what Athena or Trino read); the cache only the log.
    let objects = keys(&server, "history", "acme/");
    for top in ["events/", "rollups/", "rejects/", "findings/", "_commits/"] {
        assert!(
            objects
                .iter()
                .any(|k| k.starts_with(&format!("acme/{top}"))),
            "{top}: {objects:?}"
        );
    }
    assert!(
        files_under(&cache)
            .iter()
            .all(|(rel, _)| rel.contains("_commits/")
                || rel.contains("_checkpoints/")
                || rel.ends_with("/etags.json")
                || rel.contains("/state/outbox")),
        "{:?}",
        files_under(&cache)
    );

    // A later object: the next run reads only it.
    let later_key = trail_key(
        7,
        "111122223333_CloudTrail_eu-west-1_20260307T0900Z_later.json.gz",
    );
    server.put(
        &format!("trail/{later_key}"),
        &gzip(&std::fs::read(fixture("cloudtrail/golden.json")).unwrap()),
    );
    let args = ["ingest", "--format", "json", trail.as_str()];
    let (a, b) = (report_of(&here(&args)), report_of(&remote(&args)));
    assert_eq!(b["files_read"], 1, "{b}");
    assert_eq!(a["counts"], b["counts"]);
    let rows_before = same(&all_rows);

    // Compaction there merges what it merges here, and deletes the replaced objects.
    let compact = ["compact", "--grace", "0s", "--format", "json"];
    let (a, b) = (here(&compact), remote(&compact));
    assert_eq!((a.code, b.code), (0, 0), "{}", b.stderr);
    let (a, b): (Value, Value) = (
        serde_json::from_str(&a.stdout).unwrap(),
        serde_json::from_str(&b.stdout).unwrap(),
    );
    assert!(b["files_before"].as_u64().unwrap() > b["files_after"].as_u64().unwrap());
    assert_eq!(
        (&a["files_before"], &a["files_after"], &a["rows"]),
        (&b["files_before"], &b["files_after"], &b["rows"])
    );
    assert_eq!(same(&all_rows), rows_before);
    let data_objects = keys(&server, "history", "acme/events/")
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .count();
    let verified = remote(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(
        verified
            .stderr
            .contains(&format!(" {data_objects} data file(s)")),
        "the replaced objects are gone: {data_objects} objects, {}",
        verified.stderr
    );

    // An object no commit lists (a writer that stopped before its commit) is a leftover, set
    // aside by compaction only once older than its grace (a writer may be uploading it).
    let stray = "acme/events/source=vault/date=2026-03-04/000099-0badf00d-0000.parquet";
    server.put(&format!("history/{stray}"), b"PAR1 half a file");
    let r = remote(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("left over from an interrupted write"),
        "{}",
        r.stderr
    );
    // Not at --grace 0s either: never younger than an hour (a writer may still be uploading).
    for grace in ["1h", "0s"] {
        let r = remote(&["compact", "--grace", grace]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(keys(&server, "history", "acme/").contains(&stray.to_owned()));
    }
    // (The test switch sets it aside at the grace, as it would be an hour later.)
    let r = run(vigil_s3(url, &endpoint)
        .env("XDG_CACHE_HOME", &cache)
        .env("VIGIL_FAULT", "orphans_at_grace")
        .args(["compact", "--grace", "0s"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("set aside 1 object(s)"), "{}", r.stderr);
    let after = keys(&server, "history", "acme/");
    assert!(!after.contains(&stray.to_owned()), "{after:?}");
    assert!(after.contains(&format!(
        "acme/_quarantine/{}",
        stray.trim_start_matches("acme/")
    )));

    // A record an ingest holds for the next (a Vault request whose response the writer has not
    // written yet, recent by the wall clock) is still there after commits that are not
    // ingests (findings here), and the next ingest completes it.
    let ago = |secs: i64| {
        (chrono::Utc::now() - chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let log = write(
        &dir.path().join("held.log"),
        format!(
            "{}\n{}\n",
            vault_request("held-1", &ago(60)),
            vault_response("other-1", &ago(59))
        ),
    );
    let r = report_of(&remote(&[
        "ingest",
        "--format",
        "json",
        log.to_str().unwrap(),
    ]));
    assert_eq!(r["counts"]["vault"]["held"], 1, "{r}");
    let r = remote(&[["detect", "--format", "json"].as_slice(), march.as_slice()].concat());
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(format!("{}\n", vault_response("held-1", &ago(58))).as_bytes())
        .unwrap();
    let r = report_of(&remote(&[
        "ingest",
        "--format",
        "json",
        log.to_str().unwrap(),
    ]));
    assert_eq!(
        (
            &r["counts"]["vault"]["resumed"],
            &r["counts"]["vault"]["held"]
        ),
        (&Value::from(1), &Value::from(0)),
        "{r}"
    );
    let verified = remote(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // Two writers racing for one commit number: one is held just before creating commit 1
    // while the other makes it; the held one then stops, and nothing of it remains.
    let race = Path::new("s3://history/race");
    let racer = |args: &[&str]| {
        let mut c = vigil_s3(race, &endpoint);
        c.env("XDG_CACHE_HOME", &cache).args(args);
        c
    };
    let vault = sample.join("vault");
    let gcp = sample.join("gcp");
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let held = racer(&["ingest", "--format", "json", vault.to_str().unwrap()])
        .env("VIGIL_FAULT", "hold_before_commit")
        .env("VIGIL_FAULT_WHILE", &hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = dir.path().join("hold.reached");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reached.exists() {
        assert!(
            Instant::now() < deadline,
            "the held writer never got to its commit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = report_of(&run(&mut racer(&[
        "ingest",
        "--format",
        "json",
        gcp.to_str().unwrap(),
    ])));
    assert_eq!(first["commit"], 1, "{first}");
    std::fs::remove_file(&hold).unwrap();
    let lost = held.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&lost.stderr);
    assert_eq!(lost.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another writer made commit 1 of s3://history/race first"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(SECRET_KEY));
    let r = run(&mut racer(&["verify"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("1 commit(s)"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("left over"),
        "the loser's uploads are gone: {}",
        r.stderr
    );
    // Run again, the loser commits next, and the store holds both inputs once.
    let again = report_of(&run(&mut racer(&[
        "ingest",
        "--format",
        "json",
        vault.to_str().unwrap(),
    ])));
    assert_eq!(again["commit"], 2, "{again}");
    let both = dir.path().join("both");
    ingest(&both, &[&vault, &gcp], &[]);
    let count_sql = "SELECT count(*) AS n, count(DISTINCT event_uid) AS uids FROM events";
    let r = run(&mut racer(&["sql", "--format", "json", count_sql]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        serde_json::Value::Array(sql(&both, count_sql))
    );
    let r = run(&mut racer(&["verify"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_no_credential_under(&cache);

    // A store that cannot be written: one sentence, exit 2, no secret, nothing left behind.
    let closed = format!("http://127.0.0.1:{}", free_port());
    for (store, endpoint, expected) in [
        (
            "s3://no-such-bucket/acme",
            endpoint.as_str(),
            "bucket 'no-such-bucket' does not exist",
        ),
        (
            "s3://history/acme",
            closed.as_str(),
            "cannot reach the object store",
        ),
    ] {
        let r = run(vigil_s3(Path::new(store), endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(["ingest", gcp.to_str().unwrap()]));
        assert_eq!(r.code, 2, "{store}: {}", r.stderr);
        assert!(r.stderr.contains(expected), "{store}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        assert!(!r.stderr.contains(SECRET_KEY));
    }
}

#[test]
fn the_service_keeps_a_store_in_a_bucket_beside_a_one_shot_ingest_and_loses_nothing() {
    use crate::serve::{get, vault_pairs, wait_for, Service};
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path(), false);
    let endpoint = server.endpoint();
    server.put("history", b"");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let audit = logs.join("audit.log");
    let (first, _) = vault_pairs("svc", 200, "2026-03-04T10:00:00Z");
    std::fs::write(&audit, first).unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\ncommit_interval = \"1s\"\ndetect_every = \"1s\"\n[[serve.inputs]]\npath = \"{}\"\nsource = \"vault\"\n",
            logs.display()
        ),
    );
    let url = Path::new("s3://history/svc");
    let cache = dir.path().join("cache");
    // The service is held just before creating its first commit, its files uploaded, while a
    // one-shot ingest makes commit 1.
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let mut envs = s3_env(&endpoint);
    envs.extend([
        ("XDG_CACHE_HOME".into(), cache.display().to_string()),
        ("VIGIL_FAULT".into(), "hold_before_commit".into()),
        ("VIGIL_FAULT_WHILE".into(), hold.display().to_string()),
    ]);
    let mut service = Service::start_with(
        url,
        &cfg,
        Some(NOW),
        port,
        &dir.path().join("serve.log"),
        &envs,
    );
    let reached = dir.path().join("hold.reached");
    wait_for(
        Duration::from_secs(120),
        "the service's first commit",
        || reached.exists(),
    );
    let there = |args: &[&str]| {
        run(vigil_s3(url, &endpoint)
            .env("XDG_CACHE_HOME", &cache)
            .args(args))
    };
    let gcp = repo().join("sample-data/gcp");
    let r = there(&["ingest", "--format", "json", gcp.to_str().unwrap()]);
    let report = report_of(&r);
    assert_eq!(report["commit"], 1, "{report}");
    let gcp_rows = report["counts"]["gcp"]["rows"].as_i64().unwrap();
    // Released, the service loses commit 1, says so, and commits its calls at the next interval.
    std::fs::remove_file(&hold).unwrap();
    let counted = || -> (i64, i64) {
        let r = there(&[
            "sql",
            "--format",
            "json",
            "SELECT count(*) AS n, count(DISTINCT event_uid) AS uids FROM events",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let rows: Value = serde_json::from_str(&r.stdout).unwrap();
        (
            rows[0]["n"].as_i64().unwrap(),
            rows[0]["uids"].as_i64().unwrap(),
        )
    };
    wait_for(Duration::from_secs(120), "the service's 200 calls", || {
        counted().0 == gcp_rows + 200
    });
    assert!(
        service
            .log()
            .contains("another writer made commit 1 of s3://history/svc first"),
        "{}",
        service.log()
    );
    // Calls the one-shot ingest stores first from a copy, then the service reads from its log:
    // they are duplicates to it (its dedupe index, kept between its commits, is rebuilt when
    // another writer committed meanwhile).
    // (The minute of the first calls: the service's index holds that slot already.)
    let (more, _) = vault_pairs("svc-later", 150, "2026-03-04T10:00:00Z");
    let copy = dir.path().join("copy.log");
    std::fs::write(&copy, &more).unwrap();
    let mut copied = false;
    for _ in 0..10 {
        let r = there(&["ingest", "--format", "json", copy.to_str().unwrap()]);
        if r.code == 2 && r.stderr.contains("another writer made commit") {
            continue;
        }
        assert_eq!(
            report_of(&r)["counts"]["vault"]["stored"],
            150,
            "{}",
            r.stdout
        );
        copied = true;
        break;
    }
    assert!(copied, "the one-shot ingest commits within ten tries");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .unwrap()
        .write_all(more.as_bytes())
        .unwrap();
    let vault_duplicates = || {
        get(port, "/metrics").map_or(0, |(_, text)| {
            text.lines()
                .filter(|l| l.contains("source=\"vault\"") && l.contains("outcome=\"duplicates\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as i64
        })
    };
    wait_for(
        Duration::from_secs(120),
        "the service to read the copies",
        || vault_duplicates() >= 150,
    );
    let want = gcp_rows + 200 + 150;
    assert_eq!(counted(), (want, want), "nothing lost, nothing twice");
    assert_eq!(get(port, "/healthz"), Some((200, "ok\n".into())));
    let (code, _) = service.stop();
    assert_eq!(code, 0, "{}", service.log());
    assert!(!service.log().contains(SECRET_KEY));
    let r = there(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

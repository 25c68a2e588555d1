use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// "Now" for every test run: ingest_time and rejects dates are fixed.
pub const NOW: &str = "2026-03-10T00:00:00Z";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// `vigil --store STORE ...` run from the repository root with a fixed clock and no config.
pub fn vigil(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(repo())
        .env("VIGIL_NOW", NOW)
        .env_remove("VIGIL_STORE")
        .env_remove("VIGIL_CONFIG")
        .arg("--store")
        .arg(store)
        .stdin(Stdio::null());
    c
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Ran {
    let out: Output = cmd.output().expect("vigil runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Ingests paths and returns the exit code and the JSON accounting.
pub fn ingest(store: &Path, paths: &[&Path], extra: &[&str]) -> (i32, Value) {
    let mut c = vigil(store);
    c.arg("ingest")
        .arg("--format")
        .arg("json")
        .args(extra)
        .args(paths);
    let r = run(&mut c);
    assert!(
        r.code == 0 || r.code == 1,
        "ingest failed ({}): {}",
        r.code,
        r.stderr
    );
    let report: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("bad json ({e}): {}", r.stdout));
    (r.code, report)
}

/// Rows of a query as JSON objects.
pub fn sql(store: &Path, query: &str) -> Vec<Value> {
    let r = run(vigil(store).args(["sql", "--format", "json", query]));
    assert_eq!(r.code, 0, "query failed: {query}\n{}", r.stderr);
    match serde_json::from_str(&r.stdout) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("not a JSON array: {other:?}\n{}", r.stdout),
    }
}

/// A single number from a query like `SELECT count(*) AS n ...`.
pub fn count(store: &Path, query: &str) -> i64 {
    let rows = sql(store, query);
    rows[0]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_i64)
        .expect("a number")
}

pub fn tally(report: &Value, source: &str) -> [u64; 6] {
    let t = &report["counts"][source];
    ["read", "stored", "merged", "duplicates", "rejected", "rows"].map(|k| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("no {source}.{k} in {report}"))
    })
}

/// Reasons in the rejects file of a run, sorted.
pub fn reject_reasons(store: &Path, report: &Value) -> Vec<String> {
    let Some(path) = report["rejects_file"].as_str() else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(store.join(path)).expect("rejects file");
    let mut reasons: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    reasons.sort();
    reasons
}

/// A Vault response entry (complete row on its own) with the given id and time.
pub fn vault_request(id: &str, time: &str) -> String {
    format!(
        r#"{{"time":"{time}","type":"request","auth":{{"display_name":"oidc-alice","entity_id":"ent-alice","policies":["default"]}},"request":{{"id":"{id}","operation":"read","path":"secret/data/app/db","mount_point":"secret/","mount_type":"kv","remote_address":"10.0.0.1"}}}}"#
    )
}

pub fn vault_response(id: &str, time: &str) -> String {
    format!(
        r#"{{"time":"{time}","type":"response","auth":{{"display_name":"oidc-alice","entity_id":"ent-alice","policies":["default"]}},"request":{{"id":"{id}","operation":"read","path":"secret/data/app/db","mount_point":"secret/","mount_type":"kv","remote_address":"10.0.0.1"}},"response":{{"data":{{"data":{{"password":"hmac-sha256:00"}}}}}}}}"#
    )
}

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
    path.to_owned()
}

/// Sets a file's modification time an hour back: a file no longer being written, whose last
/// record is read as it is instead of waiting for its end.
pub fn make_old(path: &Path) {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A store holding the Vault and CloudTrail sample data.
pub fn vault_and_cloudtrail_store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    ingest(
        &store,
        &[
            &repo().join("sample-data/vault"),
            &repo().join("sample-data/cloudtrail"),
        ],
        &[],
    );
    store
}

/// A store holding all of `sample-data/` (five sources).
pub fn sample_store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    // The sample data carries a few damaged records on purpose (the demo shows rejects).
    let (code, report) = ingest(&store, &[&repo().join("sample-data")], &[]);
    assert_eq!(
        (code, report["total"]["rejected"].as_u64()),
        (1, Some(6)),
        "{report}"
    );
    store
}

/// Writes `vigil.toml` text to `dir/vigil.toml` and returns its path.
pub fn config(dir: &Path, text: &str) -> PathBuf {
    write(&dir.join("vigil.toml"), text)
}

/// `vigil report run NAME --format json` over a period of the sample data in which it has rows:
/// March 2026, or for the dormant reports a week seen from inside the sample.
pub fn sample_report_args(name: &str) -> Vec<&str> {
    let mut args = vec!["report", "run", name, "--format", "json"];
    if name.starts_with("dormant") {
        args.extend([
            "--since",
            "7d",
            "--at",
            "2026-03-06T12:00:00Z",
            "--param",
            "days=2",
        ]);
    } else {
        args.extend(["--from", "2026-03-01", "--to", "2026-04-01"]);
    }
    args
}

/// JSON rows printed by `vigil report run ... --format json`.
pub fn report_rows(store: &Path, args: &[&str]) -> Vec<Value> {
    let r = run(vigil(store)
        .args(["report", "run"])
        .args(args)
        .args(["--format", "json"]));
    assert_eq!(r.code, 0, "report {args:?} failed: {}", r.stderr);
    match serde_json::from_str(&r.stdout) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("not a JSON array: {other:?}\n{}", r.stdout),
    }
}

/// Runs a command with `input` on its stdin.
pub fn run_input(cmd: &mut Command, input: &str) -> Ran {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("vigil runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The Python packages the tests use (pip specs), installed together in one venv.
/// DuckDB is pinned: it is also the peer of the ingest benchmark (bench/ingest_vs_duckdb.py).
/// moto is the S3-compatible server of the object storage tests.
const TEST_PACKAGES: [&str; 3] = ["aiosmtpd==1.4.6", "duckdb==2.0.1", "moto[server]==5.2.6"];

/// A Python that can import `module`: the system one when it can, else a venv made once under
/// ~/.cache with every test package (pip from PyPI), so `cargo test` needs no manual setup.
pub fn python_with(module: &str) -> PathBuf {
    static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = PathBuf::from("python3");
    if has(&system) {
        return system;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let venv = home.join(".cache/vigil-test-venv");
    let py = venv.join("bin/python");
    // Tests run in parallel: one of them builds the venv, the others wait for it.
    let _guard = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if !has(&py) {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&py)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(TEST_PACKAGES)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not install the test packages {TEST_PACKAGES:?} into {} (pip from PyPI)",
            venv.display()
        );
    }
    py
}

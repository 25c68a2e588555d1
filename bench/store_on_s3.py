#!/usr/bin/env python3
"""Every shipped report over a store on S3 (`--store s3://...`) against the same store on local disk.

Usage: python3 bench/store_on_s3.py [--events 5000000] [--runs 3] [--dir /tmp/vigil-s3-store-bench]

Generates N CloudTrail events over 30 days with `vigil generate`, ingests them with
`keep_raw = false` into a local store and compacts it, uploads the store to moto's S3 server on
loopback as `aws s3 sync` would (8 parallel uploads), then for each report of `vigil report list`
alternates, --runs times, two whole cold processes writing CSV to /dev/null:

  vigil --store STORE report run NAME --from FROM --to TO --format csv
  vigil --store s3://history/vigil report run NAME --from FROM --to TO --format csv

Before timing, one untimed run of each checks that both print the same CSV. The S3 runs share
the local cache of the commit log (its steady state: a first open also fetches the commits and
checkpoints, timed once and printed). Prints medians and the ratio S3 / local. What loopback cannot show: S3's first-byte latency (tens of ms per request; queries
issue many ranged GETs, so real S3 is slower than this), its bandwidth and throttling, TLS, and
the cost per request; moto is one Python process and is itself often the bottleneck here.
Needs a release build and moto (`pip install "moto[server]"`, or the test venv's python).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from object_inputs import VIGIL, start_moto  # noqa: E402

FROM, TO = "2026-03-02", "2026-04-01"


def run(cmd, env, out=subprocess.DEVNULL):
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed


def output(cmd, env):
    return subprocess.run(cmd, env=env, check=True, capture_output=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/vigil-s3-store-bench")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_on_s3_results.md"))
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release binary at {VIGIL}: run cargo build --release")
    import moto

    os.makedirs(args.dir, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cfg = os.path.join(args.dir, "vigil.toml")
    with open(cfg, "w") as f:
        f.write("[store]\nkeep_raw = false\n")
    store = os.path.join(args.dir, f"store-{args.events}")
    if not os.path.exists(os.path.join(store, "_commits")):
        gen = os.path.join(args.dir, f"gen-{args.events}")
        subprocess.run([VIGIL, "generate", "--source", "cloudtrail", "--events", str(args.events), "--days", "30",
                        "--seed", "1", "--out", gen], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([VIGIL, "-q", "--config", cfg, "--store", store, "ingest", gen], env=env,
                       stdout=subprocess.DEVNULL)
        subprocess.run([VIGIL, "-q", "--config", cfg, "--store", store, "compact"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(gen)
    files = []
    for dirpath, _, names in os.walk(store):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), store)
            if rel != ".lock" and not rel.startswith("state/outbox"):
                files.append(rel)
    size = sum(os.path.getsize(os.path.join(store, r)) for r in files) / 1e6

    server, endpoint, s3 = start_moto(args.dir, "history")
    try:
        started = time.perf_counter()
        from concurrent.futures import ThreadPoolExecutor
        # Data first, commits last, as the README says to copy a store.
        rest = [r for r in files if not r.startswith("_commits/")]
        commits = [r for r in files if r.startswith("_commits/")]
        for group in (rest, commits):
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda r: s3.upload_file(os.path.join(store, r), "history", f"vigil/{r}"), group))
        upload = time.perf_counter() - started
        env_s3 = dict(env, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint, XDG_CACHE_HOME=tempfile.mkdtemp(prefix="vigil-cache-"))
        url = "s3://history/vigil"
        first_open = run([VIGIL, "-q", "--store", url, "sql", "SELECT count(*) FROM events"], env_s3)
        again_open = run([VIGIL, "-q", "--store", url, "sql", "SELECT count(*) FROM events"], env_s3)
        local_open = run([VIGIL, "-q", "--store", store, "sql", "SELECT count(*) FROM events"], env)
        import json
        names = [r["name"] for r in json.loads(output([VIGIL, "report", "list", "--format", "json"], env))]
        load = os.getloadavg()[0]
        lines = [f"machine: {os.cpu_count()} cores; moto {moto.__version__}; load before: {load:.2f}",
                 f"store: {args.events:,} CloudTrail events, keep_raw = false, compacted: {len(files):,} files, "
                 f"{size:,.0f} MB; uploaded in {upload:.1f} s",
                 f"open + count(*): local {local_open:.3f} s; S3 first (fetches the commit log) {first_open:.3f} s, "
                 f"then {again_open:.3f} s", ""]
        rows = []
        for name in names:
            base = ["report", "run", name, "--from", FROM, "--to", TO, "--format", "csv"]
            if name.startswith("dormant"):
                base = ["report", "run", name, "--at", TO, "--since", "7d", "--format", "csv"]
            local_cmd = [VIGIL, "-q", "--store", store] + base
            s3_cmd = [VIGIL, "-q", "--store", url] + base
            same = output(local_cmd, env) == output(s3_cmd, env_s3)
            t_local, t_s3 = [], []
            for _ in range(args.runs):
                t_local.append(run(local_cmd, env))
                t_s3.append(run(s3_cmd, env_s3))
            rows.append((name, statistics.median(t_local), statistics.median(t_s3), same))
            print(f"{name}: local {rows[-1][1]:.2f} s, s3 {rows[-1][2]:.2f} s, same output: {same}", flush=True)
        total_l = sum(r[1] for r in rows)
        total_s = sum(r[2] for r in rows)
        lines += ["| report | local s | S3 (moto, loopback) s | S3 / local | same CSV |", "|---|---:|---:|---:|---|"]
        lines += [f"| {n} | {l:.2f} | {s:.2f} | {s / l:.2f}x | {'yes' if same else 'NO'} |" for n, l, s, same in rows]
        lines += [f"| all {len(rows)} | {total_l:.2f} | {total_s:.2f} | {total_s / total_l:.2f}x | |", "",
                  f"load after: {os.getloadavg()[0]:.2f}"]
        text = "\n".join(lines)
        print(text)
        with open(args.out, "w") as f:
            f.write(f"# Reports over a store on S3: `python3 bench/store_on_s3.py --events {args.events} "
                    f"--runs {args.runs}`\n\nMedians of {args.runs}, release build; output of the script:\n\n```\n"
                    f"{text}\n```\n")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

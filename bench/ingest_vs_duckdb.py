#!/usr/bin/env python3
"""Ingest throughput and peak memory: `vigil ingest` against DuckDB on the same Vault JSONL.

Usage: python3 bench/ingest_vs_duckdb.py [--sizes 1000000,5000000] [--runs 3] [--dir /tmp/vigil-bench]

Generates Vault audit logs with `vigil generate` (its ordinary estate: 1.8 KB per record,
request and response entries, the production operation mix of docs/generator.md), then alternates, for each size and run: DuckDB converting the JSONL file to a zstd
Parquet file with the fields vigil keys on flattened, and `vigil ingest` into a fresh store with
keep_raw = false and keep_raw = true. Reports medians, records per second, the ratio to DuckDB,
and peak RSS of each process (from wait4, so it is the process's own maximum resident set).
Needs a release build (`cargo build --release`) and `pip install duckdb`.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vigil-target"))
VIGIL = os.path.join(TARGET, "release", "vigil")

DUCKDB_SCRIPT = r"""
import duckdb, sys
src, dst = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f'''
COPY (
  SELECT time::TIMESTAMPTZ AS event_time, type, request.id AS request_id, request.operation AS operation,
         request.path AS path, request.mount_type AS mount_type, request.remote_address AS src_ip,
         auth.display_name AS actor_name, auth.entity_id AS actor_id, auth.policies AS policies,
         auth.accessor AS credential_id, error
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
      'time': 'VARCHAR', 'type': 'VARCHAR', 'error': 'VARCHAR',
      'auth': 'STRUCT(display_name VARCHAR, entity_id VARCHAR, policies VARCHAR[], accessor VARCHAR)',
      'request': 'STRUCT(id VARCHAR, operation VARCHAR, path VARCHAR, mount_type VARCHAR, remote_address VARCHAR)'}})
) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)
''')
"""


def timed(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{cmd[0]} failed ({code}): {err}")
    return elapsed, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/vigil-bench")
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release binary at {VIGIL}: run cargo build --release")
    os.makedirs(args.dir, exist_ok=True)
    for keep in ("false", "true"):
        with open(os.path.join(args.dir, f"keep-raw-{keep}.toml"), "w") as f:
            f.write(f"[store]\nkeep_raw = {keep}\n")
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        data = os.path.join(args.dir, f"vault-{size}")
        log = os.path.join(data, "vault-audit.log")
        if not os.path.exists(log):
            subprocess.run([VIGIL, "generate", "--source", "vault", "--events", str(size), "--days", "30",
                            "--seed", "1", "--out", data], check=True)
        mb = os.path.getsize(log) / 1e6
        results = {"duckdb": [], "vigil keep_raw=false": [], "vigil keep_raw=true": []}
        for run in range(args.runs):
            out = os.path.join(args.dir, "duck.parquet")
            results["duckdb"].append(timed([sys.executable, "-c", DUCKDB_SCRIPT, log, out]))
            os.remove(out)
            for keep in ("false", "true"):
                store = os.path.join(args.dir, "store")
                shutil.rmtree(store, ignore_errors=True)
                cfg = os.path.join(args.dir, f"keep-raw-{keep}.toml")
                results[f"vigil keep_raw={keep}"].append(
                    timed([VIGIL, "--store", store, "--config", cfg, "-q", "ingest", log]))
                shutil.rmtree(store, ignore_errors=True)
            print(f"size {size} run {run + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in results.items()),
                  flush=True)
        duck = statistics.median(t for t, _ in results["duckdb"])
        for name, runs in results.items():
            med = statistics.median(t for t, _ in runs)
            rss = max(m for _, m in runs)
            rows.append((size, f"{mb:,.0f}", name, med, size / med, duck / med, rss))
    print()
    print("| records | input MB | tool | median s | records/s | speed vs DuckDB | peak RSS MiB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for size, mb, name, med, rate, ratio, rss in rows:
        print(f"| {size:,} | {mb} | {name} | {med:.2f} | {rate:,.0f} | {ratio:.2f}x | {rss:,.0f} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

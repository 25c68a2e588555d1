#!/usr/bin/env python3
"""Detection cost: `vigil detect` (all detectors, one day) over 31 days of generated history,
with DuckDB computing the core of two detectors on the same Parquet files as a peer.

Usage: python3 bench/detect_bench.py [--sizes 1000000,10000000] [--runs 3] [--dir /tmp/vigil-bench-detect]

For each size: `vigil generate --source cloudtrail` (one record = one event) over 31 days, ingest
with keep_raw = false, then alternate, per run: `vigil -v detect` over the last day against the
30 days before it (wall time, peak RSS from wait4, time per detector from -v), and DuckDB (Python
package) computing new (principal, secret) pairs of the last day plus an hourly per-principal
z-score over the same files. Medians. Needs a release build and `pip install duckdb`.
"""
import argparse
import os
import re
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
store, start, end = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(f"CREATE VIEW e AS SELECT * FROM read_parquet('{store}/events/*/*/*.parquet', hive_partitioning = true) WHERE is_secret_read")
con.execute(f'''
WITH win AS (SELECT DISTINCT actor_id, resource_id FROM e WHERE event_time >= TIMESTAMPTZ '{start}' AND event_time < TIMESTAMPTZ '{end}'),
hist AS (SELECT DISTINCT actor_id, resource_id FROM e WHERE event_time < TIMESTAMPTZ '{start}')
SELECT count(*) FROM win ANTI JOIN hist USING (actor_id, resource_id)''').fetchall()
con.execute(f'''
WITH hourly AS (SELECT actor_id, date_trunc('hour', event_time) AS h, count(*) AS n FROM e GROUP BY ALL),
stats AS (SELECT actor_id, avg(n) AS mu, stddev_pop(n) AS sd FROM hourly WHERE h < TIMESTAMPTZ '{start}' GROUP BY ALL)
SELECT count(*) FROM hourly JOIN stats USING (actor_id)
WHERE h >= TIMESTAMPTZ '{start}' AND (n - mu) / (sd + 1) > 3''').fetchall()
"""


def timed(cmd):
    """Runs cmd; returns (seconds, peak RSS in MiB, stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{cmd[:3]} failed ({code}): {err}")
    return elapsed, usage.ru_maxrss / 1024.0, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/vigil-bench-detect")
    ap.add_argument("--vigil", default=VIGIL)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    load = os.getloadavg()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        gen = os.path.join(args.dir, f"gen-{n}")
        store = os.path.join(args.dir, f"store-{n}")
        if not os.path.exists(os.path.join(store, "_commits")):
            shutil.rmtree(gen, ignore_errors=True)
            shutil.rmtree(store, ignore_errors=True)
            subprocess.run([args.vigil, "generate", "--source", "cloudtrail", "--events", str(n), "--days", "31",
                            "--start", "2026-03-01", "--seed", "1", "--out", gen], check=True, capture_output=True)
            cfg = os.path.join(args.dir, f"ingest-{n}.toml")
            with open(cfg, "w") as f:
                f.write("[store]\nkeep_raw = false\n")
            subprocess.run([args.vigil, "--config", cfg, "--store", store, "ingest", gen], check=True, capture_output=True)
            shutil.copy(os.path.join(gen, "vigil.toml"), os.path.join(args.dir, f"calendar-{n}.toml"))
            os.remove(os.path.join(gen, "cloudtrail-audit.log"))
        cfg = os.path.join(args.dir, f"calendar-{n}.toml")
        start, end = "2026-03-31T00:00:00Z", "2026-04-01T00:00:00Z"
        v_times, v_rss, d_times, per_detector = [], [], [], {}
        for _ in range(args.runs):
            t, rss, err = timed([args.vigil, "-v", "--config", cfg, "--store", store, "detect",
                                 "--from", start, "--to", end, "--format", "jsonl"])
            v_times.append(t)
            v_rss.append(rss)
            for code, secs in re.findall(r"^(VG\d+): ([0-9.]+) s", err, re.M):
                per_detector.setdefault(code, []).append(float(secs))
            t, _, _ = timed([sys.executable, "-c", DUCKDB_SCRIPT, store, start, end])
            d_times.append(t)
        slow = sorted(((statistics.median(v), c) for c, v in per_detector.items()), reverse=True)[:4]
        rows.append((n, statistics.median(v_times), max(v_rss), statistics.median(d_times),
                     ", ".join(f"{c} {s:.2f} s" for s, c in slow)))
    lines = [
        f"machine load (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.runs} runs, medians",
        "",
        "| events (31 days) | vigil detect, all 17 detectors, 1 day | peak RSS | DuckDB: new pairs + hourly z-score | slowest detectors |",
        "|---|---|---|---|---|",
    ]
    for n, vt, rss, dt, slow in rows:
        lines.append(f"| {n:,} | {vt:.2f} s | {rss:.0f} MiB | {dt:.2f} s | {slow} |")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(ROOT, "bench", "detect_results.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Opening a store of many tiny commits: with commit-log checkpoints and without.

Usage: python3 bench/commit_log.py [--commits 100,1000,10000] [--runs 5] [--dir /tmp/vigil-bench-commits]

Builds one store by appending one Vault record to an audit log and running `vigil ingest` on it,
10,000 times (one commit each, reading only the appended record, as a cron job every minute or
the service would), with the default checkpoint interval, and a `vigil compact` every 500 commits
(a nightly compaction of a cron job every three minutes). At each size it compacts the store (`vigil compact --grace 0s`, one more commit, so the
query reads a few data files and what is measured is the commit log, not 10,000 tiny Parquet
files), then copies it twice: as it is, and without `_checkpoints/` (readers then replay every
commit from the first, as vigil did before checkpoints). On each copy it alternates, --runs
times, whole cold processes:

  vigil sql "SELECT count(*) AS n FROM events"     (open the store, plan, read: query latency)
  vigil ingest <a new file of one record>           (open, dedupe, commit: the write path; on a
                                                     fresh copy each time)

and DuckDB (Python package) counting the same live Parquet files by glob, as a reference for the
query itself. Prints medians and the ratio without / with checkpoints. Needs a release build.
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
QUERY = "SELECT count(*) AS n FROM events"

DUCKDB_SCRIPT = r"""
import sys, duckdb
print(duckdb.sql(f"SELECT count(*) FROM read_parquet('{sys.argv[1]}/events/*/*/*.parquet')").fetchall()[0][0])
"""


def record(i):
    """A one-entry Vault response, over 5 days so compaction has days to merge."""
    day = 2 + i % 5
    return ('{"time":"2026-03-%02dT10:%02d:%02dZ","type":"response","auth":{"display_name":"oidc-alice",'
            '"entity_id":"ent-alice","policies":["default"]},"request":{"id":"req-%d","operation":"read",'
            '"path":"secret/data/app/db","mount_point":"secret/","mount_type":"kv","remote_address":"10.0.0.1"},'
            '"response":{}}\n') % (day, (i // 60) % 60, i % 60, i)


def vigil(store, *args):
    # A fixed clock well after the records: files are finished, nothing waits.
    env = dict(os.environ, VIGIL_NOW="2026-04-01T00:00:00Z")
    return subprocess.run([VIGIL, "--store", store, "-q", *args], env=env, check=True,
                          capture_output=True, text=True)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def ingest_one(workdir, store, i, name="audit.log"):
    path = os.path.join(workdir, name)
    with open(path, "a") as f:
        f.write(record(i))
    # An hour old: a finished file, read to its end.
    old = time.time() - 3600
    os.utime(path, (old, old))
    vigil(store, "ingest", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", default="100,1000,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/vigil-bench-commits")
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release binary at {VIGIL}: run cargo build --release")
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    store = os.path.join(args.dir, "store")
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}")
    rows = []
    made = 0
    for size in [int(s) for s in args.commits.split(",")]:
        t = time.perf_counter()
        start = made
        while made < size - 1:
            if made % 500 == 499:
                vigil(store, "compact", "--grace", "0s")
            else:
                ingest_one(args.dir, store, made)
            made += 1
        built = time.perf_counter() - t
        vigil(store, "compact", "--grace", "0s")
        made += 1
        commits = len(os.listdir(os.path.join(store, "_commits")))
        print(f"{commits} commits (the last {made - start} made in {built:.1f} s, "
              f"{1000 * built / max(1, made - start - 1):.1f} ms each)", flush=True)
        copies = {}
        for kind in ("with checkpoints", "without"):
            copy = os.path.join(args.dir, kind.replace(" ", "-"))
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(store, copy)
            if kind == "without":
                shutil.rmtree(os.path.join(copy, "_checkpoints"), ignore_errors=True)
            copies[kind] = copy
        results = {(k, m): [] for k in copies for m in ("sql", "ingest")}
        duck = []
        for run in range(args.runs):
            for kind, copy in copies.items():
                secs, out = timed(lambda: vigil(copy, "sql", "--format", "csv", QUERY))
                results[(kind, "sql")].append(secs)
                n = out.stdout.strip().splitlines()[-1]
                # On a fresh copy each time: the ingest adds a commit (and maybe a checkpoint).
                scratch = copy + "-scratch"
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.copytree(copy, scratch)
                new = f"new-{run}-{kind[:4]}.log"
                secs, _ = timed(lambda: ingest_one(args.dir, scratch, 10_000_000 + run, new))
                results[(kind, "ingest")].append(secs)
                shutil.rmtree(scratch)
            secs, out = timed(lambda: subprocess.run([sys.executable, "-c", DUCKDB_SCRIPT, store], check=True,
                                                     capture_output=True, text=True))
            duck.append(secs)
            if out.stdout.strip() != n:
                print(f"  row counts differ: vigil {n}, duckdb {out.stdout.strip()}")
        checkpoints = len(os.listdir(os.path.join(store, "_checkpoints"))) if os.path.isdir(
            os.path.join(store, "_checkpoints")) else 0
        med = {k: statistics.median(v) for k, v in results.items()}
        rows.append((commits, checkpoints, med, statistics.median(duck)))
        print(f"  sql {med[('with checkpoints', 'sql')]:.3f} s with, {med[('without', 'sql')]:.3f} s without; "
              f"ingest {med[('with checkpoints', 'ingest')]:.3f} s with, {med[('without', 'ingest')]:.3f} s without",
              flush=True)
    print()
    print("| commits | checkpoints | `vigil sql` count, with | without | without / with | "
          "ingest 1 record, with | without | without / with | DuckDB count (glob) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for commits, checkpoints, med, duck in rows:
        ws, wo = med[("with checkpoints", "sql")], med[("without", "sql")]
        wi, woi = med[("with checkpoints", "ingest")], med[("without", "ingest")]
        print(f"| {commits:,} | {checkpoints} | {ws:.3f} s | {wo:.3f} s | {wo / ws:.1f}x | "
              f"{wi:.3f} s | {woi:.3f} s | {woi / wi:.1f}x | {duck:.3f} s |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Report run time: `vigil report run` against DuckDB on the same Parquet store, per shipped report.

Usage: python3 bench/reports_vs_duckdb.py [--events 5000000] [--runs 3] [--dir /tmp/vigil-bench-reports]
                                          [--keep] [--reports a,b] [--queries-rev REV] [--vigil PATH] [--duckdb PATH]

Generates N CloudTrail records (one record = one event) over 30 days with `vigil generate`, ingests
them into a fresh store (the generated JSON is deleted afterwards unless --keep; with --keep an
existing store for the same N is reused), then for each report of `vigil report list` alternates,
--runs times, two whole cold processes writing CSV to /dev/null:

  vigil --store STORE report run NAME --from FROM --to TO --format csv
  duckdb -csv -f NAME.sql     (views over STORE/events/*/*/*.parquet, the report translated below)

and prints medians and the ratio vigil / DuckDB (above 1: vigil is slower). Before timing, one
untimed run of each checks that both return the same number of rows (and the same actor_id /
resource_id values where the report has those columns); a mismatch is printed, not hidden.
The SQL translated is queries/NAME.sql of the working tree (or of git revision --queries-rev when the
binary was built from another one); the binary runs its built-in copy, so a report whose header
(title, description, params, control) differs from `vigil report list`, or whose file is newer
than the binary, is flagged as skew: its row counts then compare two different queries.
Needs a release build (`cargo build --release`) and `pip install duckdb-cli`.

The translation of a report to DuckDB (`translate`) is deliberately small:
  - `--` comments are dropped (they may hold apostrophes);
  - `$from` / `$to` become TIMESTAMPTZ literals (the session runs in UTC), declared parameters
    (`-- params: days:int=30`) their default as a typed literal;
  - `to_char(x, fmt)` -> `strftime(x, fmt)` (same %-format);
  - `arrow_cast(E, 'Duration(Nanosecond)')` -> `to_microseconds(CAST(E AS BIGINT) // 1000)`, an
    INTERVAL (DuckDB compares intervals with timestamp differences as DataFusion does durations);
  - the aggregate `first_value(x ORDER BY ...)` -> `first(x ORDER BY ...)` (DuckDB's first_value
    is a window function only);
  - table `event_counts` (vigil reads it from the hourly rollups it writes at ingest) becomes a
    view counting `events` per hour as vigil's rollup does: DuckDB, having no rollups, counts
    from the events, as vigil would without them (the period runs from midnight to midnight,
    so the hour-level view is exact here);
  - the vigil SQL functions become macros with vigil's defaults (no vigil.toml): off hours =
    outside 08:00-19:00 UTC or Saturday/Sunday; local time = `Sat 23:14 UTC`; environment = the
    first token (split on non-ASCII-alphanumerics, case-insensitive) naming an environment by
    convention, over resource_id then resource_name (the tenant is not tokenised by vigil's
    convention, only matched by configured rules) or actor_id, actor_name, actor_role.
"""
import argparse
import csv
import datetime as dt
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vigil-target"))
VIGIL = os.path.join(TARGET, "release", "vigil")
START = dt.date(2026, 3, 2)  # generate's default first day, passed explicitly
DAYS = 30

ENV_TOKENS = {"prod": "prod", "production": "prod", "prd": "prod", "staging": "staging", "stage": "staging",
              "stg": "staging", "dev": "dev", "development": "dev", "test": "test", "qa": "qa",
              "sandbox": "sandbox"}
ENV_RE = "(?:^|[^a-z0-9])(" + "|".join(sorted(ENV_TOKENS, key=len, reverse=True)) + ")(?:[^a-z0-9]|$)"
ENV_CASE = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in ENV_TOKENS.items())

DUCKDB_PRELUDE = """SET TimeZone = 'UTC';
CREATE VIEW events AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true,
    hive_types = {{'source': VARCHAR, 'date': VARCHAR}});
CREATE VIEW secret_reads AS SELECT * FROM events WHERE is_secret_read;
CREATE VIEW event_counts AS
    SELECT date_trunc('hour', event_time) AS hour, actor_id, actor_type, resource_id, resource_type,
           action, outcome, is_secret_read, max(actor_name) AS actor_name,
           max(resource_name) AS resource_name, count(*) AS events,
           min(event_time) AS first_time, max(event_time) AS last_time, source, date
    FROM events
    GROUP BY ALL;
CREATE MACRO vigil_off_hours(t, id, name) AS (hour(t) < 8 OR hour(t) >= 19 OR isodow(t) >= 6);
CREATE MACRO vigil_local_time(t, id, name) AS strftime(t, '%a %H:%M') || ' UTC';
CREATE MACRO vigil_env_of(s) AS
    CASE regexp_extract(lower(s), '{env_re}', 1) {env_case} ELSE NULL END;
CREATE MACRO vigil_resource_env(id, name, tenant) AS vigil_env_of(concat_ws('/', id, name));
CREATE MACRO vigil_actor_env(id, name, role) AS vigil_env_of(concat_ws('/', id, name, role));
"""


# --- translation -------------------------------------------------------------------------------

def segments(sql):
    """Splits sql into (is_string, text) pieces, dropping `--` comments outside string literals."""
    out, i, code = [], 0, []
    while i < len(sql):
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < len(sql):
                if sql[j] == "'" and sql[j + 1:j + 2] == "'":
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            out.append((False, "".join(code)))
            code = []
            out.append((True, sql[i:j + 1]))
            i = j + 1
        elif sql.startswith("--", i):
            while i < len(sql) and sql[i] != "\n":
                i += 1
        else:
            code.append(c)
            i += 1
    out.append((False, "".join(code)))
    return out


def replace_calls(sql, name, fn):
    """Replaces each call `name(args)` (outside strings, balanced parentheses) with fn(args, rest),
    args split at top-level commas, rest the text after the call."""
    pat = re.compile(r"\b" + re.escape(name) + r"\s*\(", re.I)
    pos = 0
    while True:
        m = pat.search(sql, pos)
        if not m:
            return sql
        if sql.count("'", 0, m.start()) % 2:  # inside a string literal (comments are gone)
            pos = m.end()
            continue
        depth, j, args, start, quote = 1, m.end(), [], m.end(), False
        while depth:
            c = sql[j]
            if c == "'":
                quote = not quote
            elif not quote and c == "(":
                depth += 1
            elif not quote and c == ")":
                depth -= 1
            elif not quote and c == "," and depth == 1:
                args.append(sql[start:j].strip())
                start = j + 1
            j += 1
        args.append(sql[start:j - 1].strip())
        new = fn(args, sql[j:])
        if new is None:
            pos = m.end()
            continue
        sql = sql[:m.start()] + new + sql[j:]
        pos = m.start() + len(new)


def parse_params(sql):
    """`-- params: days:int=30, env:string=prod` -> {name: (type, default)}."""
    m = re.search(r"^--\s*params:\s*(.+)$", sql, re.M)
    params = {}
    for p in (m.group(1).split(",") if m else []):
        name, rest = p.strip().split(":", 1)
        ty, default = rest.split("=", 1)
        params[name.strip()] = (ty.strip(), default.strip())
    return params


def literal(ty, value):
    if ty == "int":
        return f"CAST({int(value)} AS BIGINT)"
    if ty == "float":
        return f"CAST({float(value)!r} AS DOUBLE)"
    if ty == "bool":
        return "true" if value in ("true", "yes", "1") else "false"
    return "'" + value.replace("'", "''") + "'"


DURATION_DIV = {"Nanosecond": " // 1000", "Microsecond": "", "Millisecond": " * 1000", "Second": " * 1000000"}


def translate(sql, frm, to):
    """A report's DataFusion SQL as DuckDB SQL, parameters at their defaults (see module doc)."""
    values = {"from": f"TIMESTAMPTZ '{frm:%Y-%m-%d %H:%M:%S}+00'", "to": f"TIMESTAMPTZ '{to:%Y-%m-%d %H:%M:%S}+00'"}
    values.update({k: literal(t, d) for k, (t, d) in parse_params(sql).items()})

    def sub(m):
        if m.group(1) not in values:
            sys.exit(f"placeholder ${m.group(1)} has no value")
        return values[m.group(1)]

    out = "".join(text if is_str else re.sub(r"\$([A-Za-z_]\w*)", sub, text) for is_str, text in segments(sql))
    out = replace_calls(out, "to_char", lambda a, _: f"strftime({', '.join(a)})")

    def duration(a, _):
        unit = re.fullmatch(r"'Duration\((\w+)\)'", a[1])
        if not unit:
            return None
        return f"to_microseconds(CAST({a[0]} AS BIGINT){DURATION_DIV[unit.group(1)]})"

    out = replace_calls(out, "arrow_cast", duration)
    out = replace_calls(out, "first_value",
                        lambda a, rest: None if re.match(r"\s*OVER\b", rest, re.I) else f"first({', '.join(a)})")
    out = re.sub(r"\n\s*\n+", "\n", out).strip()
    return out + ";\n"


# --- running -----------------------------------------------------------------------------------

def clean_env():
    env = dict(os.environ)
    env.pop("VIGIL_STORE", None)
    env.pop("VIGIL_CONFIG", None)
    return env


def run(cmd, cwd, capture=False):
    """Runs cmd as one whole process; returns (seconds, stdout or None). Exits on failure."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out if capture else subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, cwd=cwd, env=clean_env())
        _, status, _ = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({code}): {err.read().decode(errors='replace')[-2000:]}")
        if capture:
            out.seek(0)
            return elapsed, out.read().decode(errors="replace")
        return elapsed, None


def parse_csv(text):
    """(header, rows) of CSV output; no output at all is no rows."""
    records = list(csv.reader(io.StringIO(text)))
    return (records[0], records[1:]) if records else ([], [])


def key_check(vh, vrows, dh, drows):
    """Compares the actor_id / resource_id values of both results (as multisets)."""
    diffs = []
    for col in ("actor_id", "resource_id"):
        if col in vh and col in dh:
            a = sorted(r[vh.index(col)] for r in vrows)
            b = sorted(r[dh.index(col)] for r in drows)
            if a != b:
                diffs.append(col)
    return diffs


def report_headers(listing):
    """`vigil report list` -> {name: {title, description, params, control}} (the binary's copies)."""
    reports, name = {}, None
    for ln in listing.splitlines():
        if ln.strip() and not ln[0].isspace():
            name, title = ln.split(None, 1)
            reports[name] = {"title": title.strip(), "description": None, "params": "", "control": ""}
        elif name and ln.strip():
            text = ln.strip()
            for key in ("params", "control"):
                if text.startswith(key + ": "):
                    reports[name][key] = text[len(key) + 2:]
                    break
            else:
                reports[name]["description"] = text
    return reports


def file_header(sql):
    head = dict(re.findall(r"^--\s*(title|description|params|control):\s*(.*?)\s*$", sql, re.M))
    return {k: head.get(k, "") for k in ("title", "description", "params", "control")}


def read_report(name, rev):
    if rev:
        return subprocess.run(["git", "-C", ROOT, "show", f"{rev}:queries/{name}.sql"], check=True,
                              capture_output=True, text=True).stdout
    with open(os.path.join(ROOT, "queries", f"{name}.sql")) as f:
        return f.read()


def build_store(args, store, vigil):
    data = os.path.join(args.dir, f"cloudtrail-{args.events}")
    log = os.path.join(data, "cloudtrail-audit.log")
    if args.keep and os.path.isdir(os.path.join(store, "events")):
        print(f"reusing store {store}")
        compact(vigil, store, args)
        return
    shutil.rmtree(store, ignore_errors=True)
    if not os.path.exists(log):
        t, _ = run([vigil, "-q", "generate", "--source", "cloudtrail", "--events", str(args.events),
                    "--days", str(DAYS), "--start", START.isoformat(), "--seed", "1", "--out", data], args.dir)
        print(f"generated {args.events:,} CloudTrail records ({os.path.getsize(log) / 1e9:.2f} GB) in {t:.1f}s",
              flush=True)
    t, _ = run([vigil, "--store", store, "-q", "ingest", log], args.dir)
    print(f"ingested in {t:.1f}s", flush=True)
    compact(vigil, store, args)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)


def compact(vigil, store, args):
    """`vigil compact` after the bulk ingest, as the README says (no-op when already compact);
    --no-compact keeps the files as the ingest wrote them."""
    if args.no_compact:
        return
    t, _ = run([vigil, "--store", store, "-q", "compact", "--grace", "0s"], args.dir)
    print(f"compacted in {t:.1f}s", flush=True)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/vigil-bench-reports")
    ap.add_argument("--keep", action="store_true", help="reuse an existing store and keep the generated JSON")
    ap.add_argument("--no-compact", action="store_true", help="query the files as ingest wrote them")
    ap.add_argument("--reports", help="comma-separated subset of `vigil report list`")
    ap.add_argument("--queries-rev", help="translate queries/*.sql of this git revision, not the working tree")
    ap.add_argument("--vigil", default=VIGIL)
    ap.add_argument("--duckdb", default=shutil.which("duckdb"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "reports_results.md"))
    args = ap.parse_args()
    vigil = os.path.abspath(args.vigil)
    if not os.path.exists(vigil):
        sys.exit(f"no release binary at {vigil}: run cargo build --release")
    if not args.duckdb:
        sys.exit("no duckdb binary: pip install duckdb-cli")
    os.makedirs(args.dir, exist_ok=True)
    if os.path.exists(os.path.join(args.dir, "vigil.toml")):
        sys.exit(f"{args.dir}/vigil.toml would change the report defaults")
    subprocess.run(["df", "-h", args.dir])
    free = shutil.disk_usage(args.dir).free
    if free < args.events * 2500:  # ~1.2 KB of JSON per CloudTrail record, plus the store
        sys.exit(f"only {free / 1e9:.1f} GB free in {args.dir}")

    store = os.path.abspath(os.path.join(args.dir, f"store-{args.events}"))
    build_store(args, store, vigil)
    frm = dt.datetime.combine(START, dt.time())
    to = frm + dt.timedelta(days=DAYS)
    glob = os.path.join(store, "events", "*", "*", "*.parquet")
    prelude = DUCKDB_PRELUDE.format(glob=glob.replace("'", "''"), env_re=ENV_RE, env_case=ENV_CASE)

    sqldir = os.path.join(args.dir, "duckdb-sql")
    os.makedirs(sqldir, exist_ok=True)
    check = os.path.join(sqldir, "_check.sql")
    with open(check, "w") as f:
        f.write(prelude + "SELECT typeof(source), typeof(date), count(*) FROM events GROUP BY ALL;\n")
    _, types = run([args.duckdb, "-batch", "-no-init", "-csv", "-f", check], args.dir, capture=True)
    _, type_rows = parse_csv(types)
    if any(r[:2] != ["VARCHAR", "VARCHAR"] for r in type_rows):
        sys.exit(f"hive partition columns are not VARCHAR: {types}")
    print(f"DuckDB sees {sum(int(r[2]) for r in type_rows):,} events; source, date VARCHAR")

    _, listing = run([vigil, "report", "list"], args.dir, capture=True)
    builtin = report_headers(listing)
    names = list(builtin)
    if args.reports:
        names = [n for n in names if n in args.reports.split(",")]
    vversion = run([vigil, "--version"], args.dir, capture=True)[1].strip()
    dversion = run([args.duckdb, "--version"], args.dir, capture=True)[1].strip()
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{vversion}; duckdb {dversion}; {os.cpu_count()} cores; {load_before}", flush=True)

    results, notes = [], []
    for name in names:
        report_sql = read_report(name, args.queries_rev)
        fh = file_header(report_sql)
        skew = [k for k in fh if fh[k] != builtin[name][k]]
        qfile = os.path.join(ROOT, "queries", f"{name}.sql")
        if not args.queries_rev and os.path.getmtime(qfile) > os.path.getmtime(vigil):
            skew.append("file newer than the binary")
        if skew:
            notes.append(f"{name}: SKEW, the SQL translated differs from the binary's built-in copy "
                         f"({', '.join(skew)}); rebuild vigil or pass --queries-rev")
        path = os.path.join(sqldir, f"{name}.sql")
        with open(path, "w") as f:
            f.write(prelude + translate(report_sql, frm, to))
        vcmd = [vigil, "--store", store, "report", "run", name, "--from", f"{frm:%Y-%m-%dT%H:%M:%SZ}",
                "--to", f"{to:%Y-%m-%dT%H:%M:%SZ}", "--format", "csv"]
        dcmd = [args.duckdb, "-batch", "-no-init", "-csv", "-nullvalue", "", "-f", path]
        # untimed: row counts (and key columns) must agree; also warms the page cache for both
        _, vout = run(vcmd, args.dir, capture=True)
        _, dout = run(dcmd, args.dir, capture=True)
        (vh, vrows), (dh, drows) = parse_csv(vout), parse_csv(dout)
        if len(vrows) != len(drows):
            notes.append(f"{name}: ROW COUNT MISMATCH vigil {len(vrows):,} vs duckdb {len(drows):,}")
        diffs = key_check(vh, vrows, dh, drows)
        if diffs:
            notes.append(f"{name}: {', '.join(diffs)} values differ between vigil and duckdb")
        vt, dt_ = [], []
        for _ in range(args.runs):
            vt.append(run(vcmd, args.dir)[0])
            dt_.append(run(dcmd, args.dir)[0])
        vm, dm = statistics.median(vt), statistics.median(dt_)
        rows = str(len(vrows)) if len(vrows) == len(drows) else f"{len(vrows)} / {len(drows)}"
        results.append((name, rows, vm, dm))
        print(f"{name}: rows {rows}; vigil {', '.join(f'{t:.2f}' for t in vt)} s; "
              f"duckdb {', '.join(f'{t:.2f}' for t in dt_)} s; ratio {vm / dm:.2f}", flush=True)

    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"# Reports: vigil vs DuckDB ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"N = {args.events:,} generated CloudTrail events over {DAYS} days "
        f"({du(os.path.join(store, 'events')) / 2**20:,.0f} MiB of Parquet in "
        f"{sum(len(fs) for _, _, fs in os.walk(os.path.join(store, 'events')))} files"
        f"{'' if args.no_compact else ', after vigil compact'}), period {frm:%Y-%m-%d} to "
        f"{to:%Y-%m-%d}, default parameters; medians of {args.runs} whole-process runs, alternating, "
        f"CSV to /dev/null. {vversion}, duckdb {dversion}, {os.cpu_count()} cores. "
        f"SQL translated from queries/ of {args.queries_rev or 'the working tree'}.",
        "",
        f"- load before: `{load_before}`",
        f"- load after: `{load_after}`",
        "",
        "| report | rows | vigil median s | duckdb median s | ratio (vigil/duckdb) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rows, vm, dm in results:
        lines.append(f"| {name} | {rows} | {vm:.2f} | {dm:.2f} | {vm / dm:.2f} |")
    total_v, total_d = sum(r[2] for r in results), sum(r[3] for r in results)
    if results:
        lines.append(f"| **all** | | {total_v:.2f} | {total_d:.2f} | {total_v / total_d:.2f} |")
    lines += ["", "Row counts: all equal (and actor_id / resource_id values)." if not notes else "Row counts and notes:"]
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

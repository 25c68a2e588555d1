#!/usr/bin/env python3
"""`vigil serve` under steady appends: CPU, peak memory, and the delay from append to queryable.

Usage: python3 bench/serve_bench.py [--rates 1000,5000,10000] [--seconds 300] [--dir /tmp/vigil-serve-bench]

For each rate (events per second; an event is a Vault request line and its response line, about
430 bytes each), a writer appends to `audit.log` in batches every 50 ms while `vigil serve`
(release build, `commit_interval = "10s"`, keep_raw = false) tails it. Afterwards the script
reads, for every 100th event, the time its batch was appended and the time the commit that stored
it became visible (the commit file's mtime; its `ingest_time` names the commit), and reports
p50/p99 append -> queryable, the service's CPU (user + system over the run, % of one core), its
peak RSS (VmHWM), and whether it kept up (nothing left behind 15 s after the writer stopped).

Every 30 s the writer also appends a read of a canary secret (`[canaries] resources =
["*canary*"]`) by a principal of its own; append -> alert is the time the alert naming it was
written to the outbox (`<store>/state/outbox/local/*.eml`, no SMTP server) minus the time it was
appended, with `detect_every = "30s"` unless `--detect-every` says otherwise (VG013 looks at the
open hour every minute).

The reference in the same run is `vigil ingest` of the same file afterwards: the issue's target is
that the service keeps up with at least 80 % of what one ingest does.

"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vigil-target"))
VIGIL = os.path.join(TARGET, "release", "vigil")
TICKS = int(os.sysconf("SC_CLK_TCK"))

REQUEST = ('{{"time":"{t}","type":"request","auth":{{"client_token":"hmac-sha256:8f2a","accessor":"hmac-sha256:11bc",'
           '"display_name":"kubernetes-payments-api","entity_id":"ent-{w}","policies":["default","payments-read"],'
           '"token_type":"service"}},"request":{{"id":"{id}","operation":"read","mount_type":"kv","mount_point":"secret/",'
           '"client_token":"hmac-sha256:8f2a","path":"secret/data/prod/payments/db-{w}","remote_address":"10.20.{a}.{b}",'
           '"namespace":{{"id":"root"}}}}}}\n')
RESPONSE = ('{{"time":"{t}","type":"response","auth":{{"client_token":"hmac-sha256:8f2a","accessor":"hmac-sha256:11bc",'
            '"display_name":"kubernetes-payments-api","entity_id":"ent-{w}","policies":["default","payments-read"],'
            '"token_type":"service"}},"request":{{"id":"{id}","operation":"read","mount_type":"kv","mount_point":"secret/",'
            '"client_token":"hmac-sha256:8f2a","path":"secret/data/prod/payments/db-{w}","remote_address":"10.20.{a}.{b}",'
            '"namespace":{{"id":"root"}}}},"response":{{"data":{{"data":{{"password":"hmac-sha256:00"}}}}}}}}\n')


def proc_rss(pid):
    """VmRSS of pid in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def proc_stat(pid):
    """(user+system seconds, VmHWM MiB) of pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    return cpu, hwm


# One event (request and response) as a %-template: about five times faster to fill than
# str.format with keywords, so that the writer is not what limits the rate.
# Placeholders in each line's order: time, entity, id, path's entity, address.
PAIR = (REQUEST + RESPONSE).replace("%", "%%").format(t="%s", id="ev-%09d", w="%d", a="%d", b="%d")


CANARY = (REQUEST + RESPONSE).replace("kubernetes-payments-api", "bench-canary-{id}").replace(
    "prod/payments/db-{w}", "prod/canary/bench-{id}")


def render_batches(rate, seconds, out_path):
    """The writer's batches rendered ahead into `out_path` (times a few minutes early): returns
    (offset, length, first event, count, canary id or None) per batch, for `--prerendered`."""
    per_batch = max(1, rate // 20)
    plan = []
    n = 0
    offset = 0
    t0 = time.time()
    with open(out_path, "wb") as out:
        for b in range(int(seconds * 20)):
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + 0.05 * b)) + "Z"
            chunk = [PAIR % (t, i % 50, i, i % 50, (i // 250) % 250, i % 250,
                             t, i % 50, i, i % 50, (i // 250) % 250, i % 250)
                     for i in range(n, n + per_batch)]
            canary = None
            if b % 600 == 300:
                canary = f"canary-{b // 600:04d}"
                chunk.append(CANARY.format(t=t, id=canary, w=0, a=0, b=0))
            data = "".join(chunk).encode()
            out.write(data)
            plan.append((offset, len(data), n, per_batch, canary))
            offset += len(data)
            n += per_batch
    return plan


def copy_log(path, source, plan, batches, canaries):
    """Appends the prerendered batches of `plan` from `source` every 50 ms: the writer then
    costs a copy, not Python string formatting, and leaves the service the other core."""
    start = time.monotonic()
    n = 0
    with open(source, "rb") as src, open(path, "ab", buffering=0) as out:
        for k, (offset, length, first, count, canary) in enumerate(plan):
            src.seek(offset)
            out.write(src.read(length))
            now = time.time()
            if canary:
                canaries.append((canary, now))
            batches.append((first, count, now))
            n = first + count
            pause = start + 0.05 * (k + 1) - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    return n


def write_log(path, rate, seconds, batches, canaries):
    """Appends `rate` events/s for `seconds`; records (first event number, count, append time)
    in `batches` and (canary id, append time) in `canaries`."""
    per_batch = max(1, rate // 20)
    n = 0
    start = time.monotonic()
    with open(path, "a", buffering=1 << 20) as out:
        while time.monotonic() - start < seconds:
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
            chunk = [PAIR % (t, i % 50, i, i % 50, (i // 250) % 250, i % 250,
                             t, i % 50, i, i % 50, (i // 250) % 250, i % 250)
                     for i in range(n, n + per_batch)]
            if len(batches) % 600 == 300:
                k = f"canary-{len(canaries):04d}"
                chunk.append(CANARY.format(t=t, id=k, w=0, a=0, b=0))
                canaries.append((k, None))
            out.write("".join(chunk))
            out.flush()
            if canaries and canaries[-1][1] is None:
                canaries[-1] = (canaries[-1][0], time.time())
            batches.append((n, per_batch, time.time()))
            n += per_batch
            due = start + 0.05 * len(batches)
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    return n


def mail_text(path):
    """Every part of a message, decoded (the parts are quoted-printable or base64)."""
    import email
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f)
    return "\n".join(p.get_payload(decode=True).decode("utf-8", "replace")
                     for p in msg.walk() if not p.is_multipart())


def nanos(text):
    """An RFC 3339 UTC time (as vigil writes them) in nanoseconds."""
    import calendar
    whole, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def sql(store, query):
    r = subprocess.run([VIGIL, "--store", store, "sql", "--format", "json", query],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def run_rate(base, rate, seconds, detect_every, keep, prerendered=False):
    work = os.path.join(base, f"rate-{rate}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "logs"))
    store = os.path.join(work, "store")
    log = os.path.join(work, "logs", "audit.log")
    cfg = os.path.join(work, "vigil.toml")
    with open(cfg, "w") as f:
        f.write('[store]\nkeep_raw = false\n[canaries]\nresources = ["*canary*"]\n'
                '[alerts]\nemail_to = ["secops@example.com"]\n'
                f'[serve]\nlisten = "127.0.0.1:19499"\ncommit_interval = "10s"\ndetect_every = "{detect_every}"\n'
                f'[[serve.inputs]]\npath = "{log}"\nsource = "vault"\n')
    open(log, "w").close()
    plan = None
    source = os.path.join(work, "prerendered.log")
    if prerendered:
        plan = render_batches(rate, seconds, source)
    env = dict(os.environ)
    env.pop("VIGIL_NOW", None)
    service = subprocess.Popen([VIGIL, "--config", cfg, "--store", store, "-q", "serve"],
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "w"), env=env)
    time.sleep(2)
    cpu0, _ = proc_stat(service.pid)
    wall0 = time.monotonic()
    batches = []
    canaries = []
    # Resident memory every 5 s while the writer runs: is it flat once the first minute is past?
    rss = []
    writing = threading.Event()
    writing.set()

    def sample():
        while writing.is_set():
            rss.append((time.monotonic() - wall0, proc_rss(service.pid)))
            time.sleep(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if plan is not None:
        events = copy_log(log, source, plan, batches, canaries)
    else:
        events = write_log(log, rate, seconds, batches, canaries)
    writing.clear()
    sampler.join()
    # Caught up: every event stored within 15 s of the writer stopping.
    deadline = time.monotonic() + 15
    stored = 0
    while time.monotonic() < deadline:
        stored = sql(store, "SELECT count(*) AS n FROM events WHERE request_id LIKE 'ev-%'")[0]["n"] if os.path.isdir(os.path.join(store, "_commits")) else 0
        if stored >= events:
            break
        time.sleep(1)
    cpu1, hwm = proc_stat(service.pid)
    wall = time.monotonic() - wall0
    # The last canaries' alerts: a look at the end of their minute, `detect_delay` (2 min)
    # later, at most `detect_every` after that.
    alerted = {}
    local = os.path.join(store, "state", "outbox", "local")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for name in os.listdir(local) if os.path.isdir(local) else []:
            path = os.path.join(local, name)
            text = mail_text(path)
            for k, _ in canaries:
                if k not in alerted and f"bench-{k}" in text:
                    alerted[k] = os.stat(path).st_mtime
        if len(alerted) == len(canaries):
            break
        time.sleep(2)
    service.terminate()
    service.wait(timeout=60)
    # When each commit became visible: its file's mtime, found by its `created` (= the
    # `ingest_time` of the rows it stored).
    visible = {}
    commits = os.path.join(store, "_commits")
    for name in os.listdir(commits):
        if name.endswith(".json"):
            with open(os.path.join(commits, name)) as f:
                c = json.load(f)
            visible[nanos(c["created"])] = os.stat(os.path.join(commits, name)).st_mtime
    rows = sql(store, "SELECT request_id, CAST(ingest_time AS BIGINT) AS it FROM events "
                      "WHERE request_id LIKE 'ev-%' AND TRY_CAST(substr(request_id, 4) AS BIGINT) % 100 = 0")
    by_id = {r["request_id"]: r["it"] for r in rows}
    delays = []
    for first, count, appended in batches:
        for i in range(first, first + count):
            if i % 100:
                continue
            it = by_id.get(f"ev-{i:09d}")
            if it is not None and it in visible:
                delays.append(visible[it] - appended)
    delays.sort()
    pct = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))] if delays else float("nan")
    alert_delays = sorted(alerted[k] - at for k, at in canaries if k in alerted)
    apct = lambda p: alert_delays[min(len(alert_delays) - 1, int(p * len(alert_delays)))] if alert_delays else float("nan")
    # The reference: one `vigil ingest` of the same file into a fresh store.
    ref_store = os.path.join(work, "ref-store")
    t0 = time.perf_counter()
    subprocess.run([VIGIL, "--config", cfg, "--store", ref_store, "-q", "ingest", "--source", "vault", log],
                   check=False, stdout=subprocess.DEVNULL)
    ingest_s = time.perf_counter() - t0
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    # The largest RSS of the second minute and of the last minute of writing.
    window = lambda a, b: max((m for t, m in rss if a <= t < b), default=float("nan"))
    last = max((t for t, _ in rss), default=0.0)
    return {
        "rss_2nd_min": window(60, 120), "rss_last_min": window(last - 60, last + 1),
        "rss_every_30s": [round(m) for t, m in rss if int(t) % 30 < 5],
        "rate": rate, "seconds": seconds, "events": events, "stored": stored,
        "kept_up": stored >= events, "cpu_pct": 100.0 * (cpu1 - cpu0) / wall, "peak_rss_mib": hwm,
        "p50_s": pct(0.50), "p99_s": pct(0.99), "samples": len(delays),
        "alert_p50_s": apct(0.50), "alert_max_s": apct(1.0), "canaries": len(canaries), "alerted": len(alerted),
        "ingest_events_per_s": events / ingest_s,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="1000,5000,10000")
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--dir", default="/tmp/vigil-serve-bench")
    ap.add_argument("--detect-every", default="30s", help="[serve] detect_every (the default of vigil is 5m)")
    ap.add_argument("--prerendered", action="store_true",
                    help="render the log before the service starts and only copy it at the rate (the writer then leaves the service a core)")
    ap.add_argument("--keep", action="store_true", help="keep each rate's log and stores (40,000 events/s for 5 minutes is 10 GB)")
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release build at {VIGIL}: cargo build --release")
    os.makedirs(args.dir, exist_ok=True)
    results = []
    for r in args.rates.split(","):
        results.append(run_rate(args.dir, int(r), args.seconds, args.detect_every, args.keep, args.prerendered))
        print(json.dumps(results[-1]), flush=True)
    print(f"detect_every = {args.detect_every}")
    print("| events/s | seconds | kept up | CPU % of a core | peak RSS MiB | RSS MiB 2nd min | last min | append -> queryable p50 s | p99 s | canaries alerted | append -> alert p50 s | max s | `vigil ingest` events/s (same file) | rate / ingest |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rate']:,} | {r['seconds']} | {'yes' if r['kept_up'] else 'NO'} ({r['stored']:,}/{r['events']:,}) | "
              f"{r['cpu_pct']:.1f} | {r['peak_rss_mib']:.0f} | {r['rss_2nd_min']:.0f} | {r['rss_last_min']:.0f} | {r['p50_s']:.1f} | {r['p99_s']:.1f} | "
              f"{r['alerted']}/{r['canaries']} | {r['alert_p50_s']:.0f} | {r['alert_max_s']:.0f} | "
              f"{r['ingest_events_per_s']:,.0f} | {100.0 * r['rate'] / r['ingest_events_per_s']:.0f} % |")


if __name__ == "__main__":
    main()

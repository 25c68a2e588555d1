#!/usr/bin/env python3
"""`vigil ingest s3://...` against `vigil ingest` of the same objects on local disk.

Usage: python3 bench/object_inputs.py [--events 1000000] [--per-object 500] [--runs 3]
                                      [--latency-ms 30] [--dir /tmp/vigil-s3-bench] [--store-runs]

Generates CloudTrail events with `vigil generate` (its ordinary estate), packs them as CloudTrail
delivers them (`{"Records": [...]}`, gzip, `AWSLogs/<account>/CloudTrail/<region>/<y>/<m>/<d>/`
keys, --per-object events each), writes them to a local directory and uploads them to moto's S3
server on loopback. Then alternates, per run:

- `local`: vigil ingest of the directory;
- `s3`: vigil ingest of s3://bench/AWSLogs/ straight from moto;
- `s3 +latency, max_in_flight=1` and `=16`: the same through a proxy that holds every request
  for --latency-ms before passing it on (S3's first-byte latency, which loopback does not have);
- `s3 nothing new`: a second ingest of the same prefix into the store of the `s3` run: listing
  and skipping only;
- `... -> store on S3`: the directory, the bucket, and the bucket through the slow proxy, each
  ingested into a fresh store on the same S3 server (`--store s3://stores/<run>`, a fresh
  cache): its files uploaded at the commit and the commit created conditionally.

With --store-runs only `local disk`, `s3 (loopback)` and the three runs into a store on S3.

Reports medians, events per second and peak RSS (wait4). What loopback cannot show: S3's
bandwidth and throttling (moto is one Python process, usually the bottleneck here), TLS, and the
cost of requests. Needs a release build and the test venv's moto (`pip install "moto[server]"`).
"""
import argparse
import asyncio
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vigil-target"))
VIGIL = os.environ.get("VIGIL_BIN", os.path.join(TARGET, "release", "vigil"))
ACCOUNT = "111122223333"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def start_moto(workdir, bucket):
    """moto's S3 server on a free loopback port (log in workdir/moto.log) with `bucket` made:
    (server process, endpoint URL, boto3 client)."""
    import boto3  # comes with moto[server]
    port = free_port()
    moto_log = open(os.path.join(workdir, "moto.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=moto_log, stderr=moto_log)
    wait_port(port)
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    s3.create_bucket(Bucket=bucket)
    return server, endpoint, s3


def latency_proxy(listen, upstream, delay):
    """A TCP proxy on `listen` that holds each chunk the client sends (a request) for `delay` s."""

    async def pipe(reader, writer, hold):
        try:
            while data := await reader.read(65536):
                if hold:
                    await asyncio.sleep(hold)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(client_r, server_w, delay), pipe(server_r, client_w, 0))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    wait_port(listen)


def timed(cmd, env):
    # Output to files, not pipes: the JSON report of 2,000 objects is larger than a pipe holds.
    import tempfile
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out_f.seek(0)
        err_f.seek(0)
        out = out_f.read().decode()
        err = err_f.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({code}): {err}")
    return elapsed, usage.ru_maxrss / 1024.0, json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--per-object", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--dir", default="/tmp/vigil-s3-bench")
    ap.add_argument("--store-runs", action="store_true", help="only the runs that compare a store on S3")
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release binary at {VIGIL}: run cargo build --release")
    import boto3  # comes with moto[server]
    import moto

    os.makedirs(args.dir, exist_ok=True)
    gen = os.path.join(args.dir, f"gen-{args.events}")
    log = os.path.join(gen, "cloudtrail-audit.log")
    if not os.path.exists(log):
        subprocess.run([VIGIL, "generate", "--source", "cloudtrail", "--events", str(args.events), "--days", "30",
                        "--seed", "1", "--out", gen], check=True, stdout=subprocess.DEVNULL)
    # Objects as CloudTrail writes them, in key (= time) order.
    local = os.path.join(args.dir, f"objects-{args.events}-{args.per_object}")
    keys = []
    if not os.path.exists(local):
        tmp = local + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with open(log) as f:
            batch, n = [], 0
            for line in f:
                batch.append(line.rstrip("\n"))
                if len(batch) == args.per_object:
                    write_object(tmp, batch, n)
                    batch, n = [], n + 1
            if batch:
                write_object(tmp, batch, n)
        os.rename(tmp, local)
    for dirpath, _, files in os.walk(local):
        for name in files:
            keys.append(os.path.relpath(os.path.join(dirpath, name), local))
    keys.sort()
    compressed = sum(os.path.getsize(os.path.join(local, k)) for k in keys) / 1e6

    server, endpoint, s3 = start_moto(args.dir, "bench")
    port = int(endpoint.rsplit(":", 1)[1])
    try:
        started = time.perf_counter()
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: s3.upload_file(os.path.join(local, k), "bench", k), keys))
        print(f"uploaded {len(keys):,} objects ({compressed:,.0f} MB gzip) in {time.perf_counter() - started:.1f} s")
        slow_port = free_port()
        latency_proxy(slow_port, port, args.latency_ms / 1000.0)
        slow = f"http://127.0.0.1:{slow_port}"

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        configs = {}
        for name, in_flight in (("one", 1), ("many", 16)):
            path = os.path.join(args.dir, f"{name}.toml")
            with open(path, "w") as f:
                f.write(f"[store]\nkeep_raw = false\n[object_store]\nmax_in_flight = {in_flight}\n")
            configs[name] = path
        store = os.path.join(args.dir, "store")
        runs = {}
        print(f"machine: {os.cpu_count()} cores; moto {moto.__version__}; load before: {os.getloadavg()[0]:.2f}")

        s3.create_bucket(Bucket="stores")
        import tempfile

        def ingest(name, what, cfg, endpoint_url=None, fresh=True, store_url=None):
            if fresh:
                shutil.rmtree(store, ignore_errors=True)
            e = dict(env)
            if endpoint_url:
                e["AWS_ENDPOINT_URL"] = endpoint_url
            target = store
            if store_url:
                target = store_url
                e["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="vigil-cache-", dir=args.dir)
            secs, rss, report = timed([VIGIL, "--store", target, "--config", cfg, "-q", "ingest", "--format", "json", what], e)
            if store_url:
                shutil.rmtree(e["XDG_CACHE_HOME"], ignore_errors=True)
            runs.setdefault(name, []).append((secs, rss, report["total"]["read"], report["files_read"]))

        for run in range(args.runs):
            ingest("local disk", local, configs["many"])
            ingest(f"s3 (loopback), max_in_flight=16", "s3://bench/AWSLogs/", configs["many"], endpoint)
            if not args.store_runs:
                ingest("s3 nothing new (list + skip)", "s3://bench/AWSLogs/", configs["many"], endpoint, fresh=False)
                ingest(f"s3 +{args.latency_ms:.0f} ms, max_in_flight=1", "s3://bench/AWSLogs/", configs["one"], slow)
                ingest(f"s3 +{args.latency_ms:.0f} ms, max_in_flight=16", "s3://bench/AWSLogs/", configs["many"],
                       slow)
            ingest("local disk -> store on S3", local, configs["many"], endpoint, store_url=f"s3://stores/{run}-local")
            ingest("s3 -> store on S3", "s3://bench/AWSLogs/", configs["many"], endpoint,
                   store_url=f"s3://stores/{run}-s3")
            ingest(f"s3 +{args.latency_ms:.0f} ms -> store on S3 +{args.latency_ms:.0f} ms", "s3://bench/AWSLogs/",
                   configs["many"], slow, store_url=f"s3://stores/{run}-slow")
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in runs.items()), flush=True)
        shutil.rmtree(store, ignore_errors=True)
    finally:
        server.kill()
        server.wait()

    base = statistics.median(s for s, *_ in runs["local disk"])
    print()
    print(f"{args.events:,} CloudTrail events in {len(keys):,} gzip objects of {args.per_object} ({compressed:,.0f} MB)")
    print()
    print("| run | median s | events/s | vs local disk | objects read | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        med = statistics.median(s for s, *_ in rs)
        events = rs[0][2]
        rate = f"{events / med:,.0f}" if events else "-"
        print(f"| {name} | {med:.2f} | {rate} | {med / base:.2f}x time | {rs[0][3]:,} | {max(r for _, r, *_ in rs):,.0f} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


def write_object(root, lines, n):
    # Five-minute objects from 2026-03-01 on, as CloudTrail names them.
    minutes = n * 5
    day, rest = divmod(minutes, 24 * 60)
    hh, mm = divmod(rest, 60)
    d = 1 + day % 28
    m = 3 + day // 28
    stamp = f"2026{m:02d}{d:02d}T{hh:02d}{mm:02d}Z"
    rel = f"AWSLogs/{ACCOUNT}/CloudTrail/eu-west-1/2026/{m:02d}/{d:02d}/{ACCOUNT}_CloudTrail_eu-west-1_{stamp}_{n:08x}.json.gz"
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    body = '{"Records":[' + ",".join(lines) + "]}"
    with gzip.open(path, "wt", compresslevel=6) as f:
        f.write(body)


if __name__ == "__main__":
    main()

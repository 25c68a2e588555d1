#!/usr/bin/env python3
"""Ingest throughput and peak memory: `vigil ingest` against DuckDB on the same Vault JSONL.

Usage: python3 bench/ingest_vs_duckdb.py [--sources vault,cloudtrail,gcp,azure,k8s]
                                         [--sizes 1000000,5000000] [--runs 3] [--dir /tmp/vigil-bench]

Generates audit logs with `vigil generate` (its ordinary estate; for Vault 1.8 KB per record,
request and response entries, the production operation mix of docs/generator.md), then
alternates, for each source, size and run: DuckDB converting the JSON lines to a zstd Parquet
file with the fields vigil keys on flattened (PEER_QUERIES below, one per source), and
`vigil ingest` into a fresh store with keep_raw = false and keep_raw = true; for Vault also DuckDB
doing vigil's job (SAME_WORK_QUERIES: pairing, one row per event, the derived columns, sorted and
partitioned by day; skip with --no-same-work). Reports medians, records per second, the ratio to
the flat conversion and to the same-work peer, and peak RSS of each process (from wait4, so it is
the process's own maximum resident set).
Needs a release build (`cargo build --release`) and `pip install duckdb`.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vigil-target"))
VIGIL = os.path.join(TARGET, "release", "vigil")

# The peer's job per source: the fields vigil keys on, flattened from the same JSON lines into a
# zstd Parquet file. These queries are the whole of DuckDB's side (the ingest table of bench/README.md names this script for them).
PEER_QUERIES = {
    "vault": """
  SELECT time::TIMESTAMPTZ AS event_time, type, request.id AS request_id, request.operation AS operation,
         request.path AS path, request.mount_type AS mount_type, request.remote_address AS src_ip,
         auth.display_name AS actor_name, auth.entity_id AS actor_id, auth.policies AS policies,
         auth.accessor AS credential_id, error
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
      'time': 'VARCHAR', 'type': 'VARCHAR', 'error': 'VARCHAR',
      'auth': 'STRUCT(display_name VARCHAR, entity_id VARCHAR, policies VARCHAR[], accessor VARCHAR)',
      'request': 'STRUCT(id VARCHAR, operation VARCHAR, path VARCHAR, mount_type VARCHAR, remote_address VARCHAR)'}})""",
    "cloudtrail": """
  SELECT eventTime::TIMESTAMPTZ AS event_time, eventID AS event_id, eventSource AS service, eventName AS operation,
         userIdentity.arn AS actor_id, userIdentity.type AS actor_type, userIdentity.accountId AS account,
         userIdentity.accessKeyId AS credential_id, sourceIPAddress AS src_ip, userAgent AS user_agent,
         awsRegion AS region, errorCode AS error_code, requestParameters.secretId AS resource
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
      'eventTime': 'VARCHAR', 'eventID': 'VARCHAR', 'eventSource': 'VARCHAR', 'eventName': 'VARCHAR',
      'userIdentity': 'STRUCT(arn VARCHAR, type VARCHAR, accountId VARCHAR, accessKeyId VARCHAR)',
      'sourceIPAddress': 'VARCHAR', 'userAgent': 'VARCHAR', 'awsRegion': 'VARCHAR', 'errorCode': 'VARCHAR',
      'requestParameters': 'STRUCT(secretId VARCHAR)'}})""",
    "gcp": """
  SELECT "timestamp"::TIMESTAMPTZ AS event_time, insertId AS event_id, protoPayload.methodName AS operation,
         protoPayload.serviceName AS service, protoPayload.resourceName AS resource,
         protoPayload.authenticationInfo.principalEmail AS actor_id,
         protoPayload.requestMetadata.callerIp AS src_ip,
         protoPayload.requestMetadata.callerSuppliedUserAgent AS user_agent,
         protoPayload.status.code AS status_code, logName AS log
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
      'timestamp': 'VARCHAR', 'insertId': 'VARCHAR', 'logName': 'VARCHAR',
      'protoPayload': 'STRUCT(methodName VARCHAR, serviceName VARCHAR, resourceName VARCHAR, authenticationInfo STRUCT(principalEmail VARCHAR), requestMetadata STRUCT(callerIp VARCHAR, callerSuppliedUserAgent VARCHAR), status STRUCT(code INTEGER))'}})""",
    "azure": """
  SELECT "time"::TIMESTAMPTZ AS event_time, correlationId AS event_id, operationName AS operation,
         resourceId AS vault, resultType AS result, resultSignature AS status, callerIpAddress AS src_ip,
         properties.id AS resource, identity AS identity
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
      'time': 'VARCHAR', 'correlationId': 'VARCHAR', 'operationName': 'VARCHAR', 'resourceId': 'VARCHAR',
      'resultType': 'VARCHAR', 'resultSignature': 'VARCHAR', 'callerIpAddress': 'VARCHAR',
      'properties': 'STRUCT(id VARCHAR)', 'identity': 'JSON'}})""",
    "k8s": """
  SELECT requestReceivedTimestamp::TIMESTAMPTZ AS event_time, auditID AS event_id, stage, verb AS operation,
         requestURI AS uri, "user".username AS actor_id, "user".groups AS groups, sourceIPs[1] AS src_ip,
         userAgent AS user_agent, objectRef.namespace AS namespace, objectRef.name AS name,
         responseStatus.code AS status_code
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
      'requestReceivedTimestamp': 'VARCHAR', 'auditID': 'VARCHAR', 'stage': 'VARCHAR', 'verb': 'VARCHAR',
      'requestURI': 'VARCHAR', 'user': 'STRUCT(username VARCHAR, groups VARCHAR[])', 'sourceIPs': 'VARCHAR[]',
      'userAgent': 'VARCHAR', 'objectRef': 'STRUCT(namespace VARCHAR, name VARCHAR)',
      'responseStatus': 'STRUCT(code INTEGER)'}})""",
}

# The peer doing vigil's job on the same Vault log, for a like-for-like figure beside the flat
# conversion above: every field vigil reads (auth, response.auth, namespace, headers' user agent,
# the KV version in response data), a request paired with its response by request id (a request
# without one kept as its own row), one row per event id, the same derived columns (event id,
# tenant, service, action, outcome, actor, resource, attributes), sorted by time and written as
# zstd Parquet partitioned by day, and an hourly per-actor rollup. It still does less than vigil:
# no per-row content digest, no check for secret values left in clear, no file hashes, no fsync,
# no checkpoints or reject accounting.
VAULT_AUTH = ("STRUCT(accessor VARCHAR, display_name VARCHAR, entity_id VARCHAR, policies VARCHAR[], "
              "token_policies VARCHAR[], identity_policies VARCHAR[], metadata STRUCT(username VARCHAR, "
              "\"role\" VARCHAR, role_name VARCHAR), token_type VARCHAR, policy_results STRUCT(allowed BOOLEAN))")
SAME_WORK_QUERIES = {
    "vault": ["""
CREATE TEMP TABLE rows AS
WITH e AS (
  SELECT time::TIMESTAMPTZ AS t, type, error, auth, request, response, row_number() OVER () AS line
  FROM read_json('{src}', format = 'newline_delimited', columns = {{
    'time': 'VARCHAR', 'type': 'VARCHAR', 'error': 'VARCHAR', 'auth': '""" + VAULT_AUTH + """',
    'request': 'STRUCT(id VARCHAR, client_id VARCHAR, operation VARCHAR, path VARCHAR, mount_point VARCHAR,
                mount_type VARCHAR, mount_accessor VARCHAR, namespace STRUCT(id VARCHAR, path VARCHAR),
                remote_address VARCHAR, remote_port BIGINT, headers JSON)',
    'response': 'STRUCT(mount_type VARCHAR, data JSON, auth """ + VAULT_AUTH + """)'}})),
paired AS (SELECT * FROM e QUALIFY row_number() OVER (PARTITION BY request.id ORDER BY (type = 'response') DESC) = 1),
a AS (SELECT *, CASE WHEN auth.display_name IS NOT NULL OR auth.entity_id IS NOT NULL THEN auth
                     ELSE response.auth END AS who FROM paired)
SELECT 'vault:vault:' || request.id || CASE WHEN type = 'request' THEN ':request' ELSE '' END AS event_uid,
       'vault_audit' AS source_format, t AS event_time, now() AS ingest_time,
       request.id AS source_event_id, request.id AS request_id,
       'vault' || coalesce('/' || rtrim(request.namespace.path, '/'), '') AS tenant,
       'vault:' || coalesce(request.mount_type, response.mount_type) AS service,
       coalesce(request.operation, 'unknown') AS operation,
       CASE WHEN request.path LIKE 'auth/token/%' THEN 'token' WHEN request.path LIKE 'auth/%/login' THEN 'login'
            WHEN request.operation IN ('read', 'list', 'delete') THEN request.operation ELSE 'write' END AS action,
       request.operation = 'read' AND request.mount_type = 'kv' AS is_secret_read,
       CASE WHEN error LIKE '%permission denied%' OR NOT coalesce(auth.policy_results.allowed, true) THEN 'denied'
            WHEN error LIKE '%no handler for route%' OR error LIKE '%unsupported path%' THEN 'not_found'
            WHEN error IS NOT NULL THEN 'error' WHEN type = 'request' THEN 'unknown' ELSE 'success' END AS outcome,
       left(error, 60) AS status_code, error AS error_message,
       coalesce(who.entity_id, who.display_name, request.client_id) AS actor_id,
       coalesce(who.metadata.username, who.display_name) AS actor_name,
       CASE WHEN list_contains(who.policies, 'root') THEN 'root'
            WHEN who.display_name LIKE 'kubernetes-%' OR who.display_name LIKE 'approle%' THEN 'workload'
            ELSE 'human' END AS actor_type,
       coalesce(who.metadata."role", who.metadata.role_name) AS actor_role, who.accessor AS credential_id,
       CASE WHEN len(who.policies) > 0 THEN who.policies
            ELSE list_distinct(list_concat(who.token_policies, who.identity_policies)) END AS actor_groups,
       split_part(request.remote_address, ':', 1) AS src_ip,
       json_extract_string(request.headers, '$."user-agent"[0]') AS user_agent,
       'vault_path' AS resource_type,
       'vault:vault/' || coalesce(request.namespace.path, '') || request.path AS resource_id,
       replace(request.path, 'data/', '') AS resource_name,
       coalesce(json_extract_string(response.data, '$.metadata.version'),
                json_extract_string(response.data, '$.version')) AS resource_version,
       coalesce(request.namespace.path, '') || request.mount_point AS resource_scope,
       0 AS target_index, 1 AS target_count, 'vault-audit.log#' || line AS raw_location,
       map(['entry_type', 'mount_type', 'mount_accessor', 'namespace_id', 'token_type', 'remote_port'],
           [type, request.mount_type, request.mount_accessor, request.namespace.id, auth.token_type,
            request.remote_port::VARCHAR]) AS attributes
FROM a""",
        "COPY (SELECT *, event_time::DATE AS day FROM rows ORDER BY event_time) TO '{dst}' "
        "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day))",
        "COPY (SELECT actor_id, date_trunc('hour', event_time) AS hour, action, outcome, count(*) AS n "
        "FROM rows GROUP BY ALL) TO '{dst}/rollup.parquet' (FORMAT parquet, COMPRESSION zstd)",
    ],
}

DUCKDB_SAME_WORK_SCRIPT = r"""
import duckdb, json, sys
statements, src, dst = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
con = duckdb.connect()
for sql in statements:
    con.execute(sql.format(src=src, dst=dst))
"""

DUCKDB_SCRIPT = r"""
import duckdb, sys
query, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("COPY (" + query.format(src=src) + f") TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
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
    ap.add_argument("--sources", default="vault", help="comma-separated: vault,cloudtrail,gcp,azure,k8s")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/vigil-bench")
    ap.add_argument("--no-same-work", action="store_true",
                    help="skip the like-for-like peer (SAME_WORK_QUERIES) where a source has one")
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release binary at {VIGIL}: run cargo build --release")
    import duckdb
    os.makedirs(args.dir, exist_ok=True)
    for keep in ("false", "true"):
        with open(os.path.join(args.dir, f"keep-raw-{keep}.toml"), "w") as f:
            f.write(f"[store]\nkeep_raw = {keep}\n")
    print(f"machine: {os.cpu_count()} cores; DuckDB {duckdb.__version__}; load before: {os.getloadavg()[0]:.2f}")
    rows = []
    for source in args.sources.split(","):
        query = PEER_QUERIES[source]
        for size in [int(s) for s in args.sizes.split(",")]:
            data = os.path.join(args.dir, f"{source}-{size}")
            log = os.path.join(data, f"{source}-audit.log")
            if not os.path.exists(log):
                subprocess.run([VIGIL, "generate", "--source", source, "--events", str(size), "--days", "30",
                                "--seed", "1", "--out", data], check=True, stdout=subprocess.DEVNULL)
            mb = os.path.getsize(log) / 1e6
            results = {"duckdb": [], "vigil keep_raw=false": [], "vigil keep_raw=true": []}
            same_work = None if args.no_same_work else SAME_WORK_QUERIES.get(source)
            if same_work:
                results["duckdb same work"] = []
            for run in range(args.runs):
                out = os.path.join(args.dir, "duck.parquet")
                results["duckdb"].append(timed([sys.executable, "-c", DUCKDB_SCRIPT, query, log, out]))
                os.remove(out)
                if same_work:
                    out_dir = os.path.join(args.dir, "duck-same-work")
                    shutil.rmtree(out_dir, ignore_errors=True)
                    results["duckdb same work"].append(timed(
                        [sys.executable, "-c", DUCKDB_SAME_WORK_SCRIPT, json.dumps(same_work), log, out_dir]))
                    shutil.rmtree(out_dir, ignore_errors=True)
                for keep in ("false", "true"):
                    store = os.path.join(args.dir, "store")
                    shutil.rmtree(store, ignore_errors=True)
                    cfg = os.path.join(args.dir, f"keep-raw-{keep}.toml")
                    results[f"vigil keep_raw={keep}"].append(
                        timed([VIGIL, "--store", store, "--config", cfg, "-q", "ingest", log]))
                    shutil.rmtree(store, ignore_errors=True)
                print(f"{source} {size} run {run + 1}: "
                      + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in results.items()), flush=True)
            duck = statistics.median(t for t, _ in results["duckdb"])
            same = (statistics.median(t for t, _ in results["duckdb same work"])
                    if "duckdb same work" in results else None)
            for name, runs in results.items():
                med = statistics.median(t for t, _ in runs)
                rss = max(m for _, m in runs)
                vs_same = f"{same / med:.2f}x" if same else "-"
                rows.append((source, size, f"{mb:,.0f}", name, med, size / med, duck / med, vs_same, rss))
    print()
    print("| source | records | input MB | tool | median s | records/s | speed vs DuckDB | vs DuckDB same work | peak RSS MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for source, size, mb, name, med, rate, ratio, vs_same, rss in rows:
        print(f"| {source} | {size:,} | {mb} | {name} | {med:.2f} | {rate:,.0f} | {ratio:.2f}x | {vs_same} | {rss:,.0f} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

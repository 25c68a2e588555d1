#!/usr/bin/env python3
"""What today's detectors say about an ordinary estate: daily `vigil detect` over the last 17 days
of 31, on `vigil generate` data (seeds x principals x sources), scored against the labels.

Usage: python3 bench/detect_baseline.py [--seeds 1,2,3] [--principals 250,1000]
                                        [--sources vault,cloudtrail] [--dir /tmp/vigil-baseline]
                                        [--out bench/detect_baseline.md]

Per run: `vigil generate` (1,200 calls per principal over 31 days: 300 k calls at 250
principals, a Vault call is two records), `vigil ingest` with keep_raw = false and the generated
vigil.toml (the people's time zones), then `vigil backtest --step 1d` over the last 17 days with
the labels. A finding "matches" a label when the actor is the same and the windows overlap with
an hour of slack; everything else is unmatched. Writes a Markdown report with, per detector, the
findings and the unmatched medium+ findings per day (mean over seeds, and the worst seed), and
the labels no detector found. Needs a release build.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vigil-target"))
VIGIL = os.path.join(TARGET, "release", "vigil")
CALLS_PER_PRINCIPAL = 1200
FROM, TO, DAYS = "2026-03-16", "2026-04-02", 17


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def one(base, source, principals, seed):
    gen = os.path.join(base, f"{source}-{principals}-{seed}")
    store = gen + "-store"
    for d in (gen, store):
        shutil.rmtree(d, ignore_errors=True)
    per_call = 2 if source in ("vault", "k8s") else 1
    events = principals * CALLS_PER_PRINCIPAL * per_call
    run([VIGIL, "-q", "generate", "--source", source, "--events", str(events), "--seed", str(seed),
         "--principals", str(principals), "--days", "31", "--out", gen])
    cfg = os.path.join(gen, "vigil.toml")
    with open(cfg, "a") as f:
        f.write("\n[store]\nkeep_raw = false\n")
    log = os.path.join(gen, f"{source}-audit.log")
    run([VIGIL, "-q", "--config", cfg, "--store", store, "ingest", log])
    out = run([VIGIL, "-q", "--config", cfg, "--store", store, "backtest", "--from", FROM, "--to", TO,
               "--step", "1d", "--json", "--labels", os.path.join(gen, "labels.json")])
    summary = json.loads(out.stdout)
    with open(os.path.join(gen, "labels.json")) as f:
        summary["events"] = json.load(f)["events"]
    with open(gen + "-backtest.json", "w") as f:
        json.dump(summary, f, indent=1)
    shutil.rmtree(store, ignore_errors=True)
    os.remove(log)
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--principals", default="250,1000")
    ap.add_argument("--sources", default="vault,cloudtrail")
    ap.add_argument("--dir", default="/tmp/vigil-baseline")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "detect_peers.md"))
    ap.add_argument("--title", default="Detection on the ordinary estate of `vigil generate`, novelty judged against peers")
    args = ap.parse_args()
    if not os.path.exists(VIGIL):
        sys.exit(f"no release binary at {VIGIL}: cargo build --release first")
    os.makedirs(args.dir, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [
        f"# {args.title}",
        "",
        f"`python3 bench/detect_baseline.py --seeds {args.seeds} --principals {args.principals} "
        f"--sources {args.sources}`: daily `vigil detect` (backtest `--step 1d`) over the last "
        f"{DAYS} days of 31 ({FROM} to {TO}), {CALLS_PER_PRINCIPAL} calls per principal, "
        "default detector settings, the generated `vigil.toml` (people's time zones). Per "
        "detector: findings per day, and medium+ findings per day that match no label "
        "(mean over seeds; worst seed in brackets), the same per million events, precision (medium+ "
        "findings that match one of the detector's own labels, over all its findings, info "
        "included: what it reported, not what it alerted), and recall (labels found by their own "
        "detector with a medium+ finding: an alert). `missed by all` lists the labels no "
        "detector alerted on.",
        "",
    ]
    for source in args.sources.split(","):
        for principals in [int(p) for p in args.principals.split(",")]:
            runs = []
            for seed in seeds:
                print(f"{source} {principals} principals seed {seed}", file=sys.stderr, flush=True)
                runs.append(one(args.dir, source, principals, seed))
            per = defaultdict(lambda: {"findings": [], "unmatched_mp": [], "labels": 0, "found": 0,
                                       "precision": [], "per_m": []})
            for s in runs:
                for d in s["detectors"]:
                    key = f"{d['code']} {d['detector']}"
                    per[key]["findings"].append(d["findings"] / DAYS)
                    per[key]["unmatched_mp"].append(d.get("unmatched_medium_plus", 0) / DAYS)
                    per[key]["labels"] += d.get("labels", 0)
                    if d.get("precision") is not None:
                        per[key]["precision"].append(d["precision"])
                    per[key]["per_m"].append(d.get("unmatched_medium_plus", 0) / s["events"] * 1e6)
                    per[key]["found"] += d.get("labels_found", 0)
            events = sum(s["events"] for s in runs) / len(runs)
            total_mp = [sum(d.get("unmatched_medium_plus", 0) for d in s["detectors"]) / DAYS for s in runs]
            alerts = [s["alerts_per_day"] for s in runs]
            lines += [
                f"## {source}, {principals} principals ({events / 1e6:.2f} M records, seeds {args.seeds})",
                "",
                f"Unmatched medium+ findings per day, all detectors: **{sum(total_mp) / len(total_mp):.1f}** "
                f"(worst seed {max(total_mp):.1f}); alerts per day after suppression {sum(alerts) / len(alerts):.1f}.",
                "",
                "| detector | findings / day | unmatched medium+ / day | false alerts / M events | precision | labels found (recall) |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for key in sorted(per):
                p = per[key]
                f_mean = sum(p["findings"]) / len(p["findings"])
                u_mean = sum(p["unmatched_mp"]) / len(p["unmatched_mp"])
                if f_mean == 0 and p["labels"] == 0:
                    continue
                found = f"{p['found']} of {p['labels']} ({p['found'] / p['labels']:.2f})" if p["labels"] else "-"
                prec = f"{sum(p['precision']) / len(p['precision']):.2f}" if p["precision"] else "-"
                per_m = sum(p["per_m"]) / len(p["per_m"])
                lines.append(f"| {key} | {f_mean:.1f} | {u_mean:.1f} ({max(p['unmatched_mp']):.1f}) | {per_m:.1f} | {prec} | {found} |")
            # Per planted anomaly: the seeds where its own detector found it, and who else did.
            lines += ["", "| planted | its detector found it | found by others only | missed by all |", "|---|---|---|---|"]
            plants = {}
            for seed, s in zip(seeds, runs):
                for r in s.get("label_results") or []:
                    p = plants.setdefault((r["kind"], r["note"]), {"own": [], "other": set(), "others_seeds": [], "none": []})
                    if r["kind"] in r["found_by"]:
                        p["own"].append(str(seed))
                    elif r["found_by"]:
                        p["others_seeds"].append(str(seed))
                        p["other"].update(r["found_by"])
                    else:
                        p["none"].append(str(seed))
            for (kind, note), p in plants.items():
                seeds_of = lambda v: ("seeds " + ", ".join(v)) if v else "-"
                others = f"{seeds_of(p['others_seeds'])} ({', '.join(sorted(p['other']))})" if p["other"] else "-"
                lines.append(f"| {kind}: {note} | {seeds_of(p['own'])} | {others} | {seeds_of(p['none'])} |")
            lines.append("")
            with open(args.out, "w") as f:
                f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

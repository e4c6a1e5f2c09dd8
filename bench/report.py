"""bench/out/*.json -> bench/RESULTS.md and bench/results.png.

    bench/.venv/bin/python bench/report.py

Medians are over the valid runs only (a run is valid when every process exited 0, the mock
counted exactly one request per record and every record came back ok); min–max in brackets.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
ORDER = ["embedded", "fleet-1w", "fleet-2w", "fleet-4w", "seed-semaphore", "seed-gather",
         "floor", "wrk"]
LABEL = {
    "embedded": "Volley embedded (`volley run`)",
    "fleet-1w": "Volley fleet, 1 worker",
    "fleet-2w": "Volley fleet, 2 workers",
    "fleet-4w": "Volley fleet, 4 workers",
    "seed-semaphore": "seed: asyncio + aiohttp, Semaphore(N)",
    "seed-gather": "seed: asyncio + aiohttp, gather chunks of N",
    "floor": "raw floor (`volley-floor`, reqwest)",
    "wrk": "wrk (HTTP ceiling, GET /users/1)",
}


def load() -> tuple[dict, dict]:
    env = json.loads((OUT / "env.json").read_text()) if (OUT / "env.json").exists() else {}
    docs = {}
    for wid in ["W1", "W2", "W3", "W4", "W5", "W6", "RSS"]:
        p = OUT / f"{wid}.json"
        if p.exists():
            docs[wid] = json.loads(p.read_text())
    return env, docs


def vals(recs: list[dict], key: str, scale: float = 1.0) -> list[float]:
    return [r[key] * scale for r in recs if r.get("valid") and r.get(key) is not None]


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(xs: list[float], digits: int = 0, unit: str = "") -> str:
    if not xs:
        return "–"
    m = statistics.median(xs)
    f = f"{{:,.{digits}f}}"
    if len(xs) == 1:
        return f.format(m) + unit
    return f"{f.format(m)}{unit} ({f.format(min(xs))}–{f.format(max(xs))})"


def by_contender(doc: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in doc["records"]:
        groups.setdefault(r["contender"], []).append(r)
    return dict(sorted(groups.items(),
                       key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else 99))


def per_k(recs: list[dict], key: str) -> list[float]:
    """key per 1,000 records, in ms when key is in seconds."""
    return [r[key] * 1e6 / r["records"] for r in recs
            if r.get("valid") and r.get(key) is not None and r.get("records")]


def rss_mib(recs: list[dict]) -> list[float]:
    return [r["rss_kb"] / 1024 for r in recs if r.get("valid") and r.get("rss_kb")]


def valid_count(recs: list[dict]) -> str:
    return f"{sum(1 for r in recs if r.get('valid'))}/{len(recs)}"


def http_table(doc: dict) -> list[str]:
    w = doc["workload"]
    lines = []
    ideal = w.get("ideal")
    lines.append(f"{w['records']:,} records, `{w['query']}`, {w['n']} in flight"
                 + (f"; ideal {ideal:.1f} s (records × mean delay / in flight)" if ideal else ""))
    lines.append("")
    lines.append("| contender | valid runs | wall s | records/s | efficiency (ideal/wall) "
                 "| CPU ms per 1k records | peak RSS MiB |")
    lines.append("|---|---|---|---|---|---|---|")
    for name, recs in by_contender(doc).items():
        if name == "wrk":
            lines.append(f"| {LABEL.get(name, name)} | {valid_count(recs)} | "
                         f"{fmt(vals(recs, 'wall_s'), 1)} | {fmt(vals(recs, 'rate'))} "
                         f"requests/s | – | – | – |")
            continue
        cpu_note = ""
        if name.startswith("fleet"):
            cpu_note = f" (workers {fmt(per_k(recs, 'cpu_worker_s'), 1)})"
        lines.append(
            f"| {LABEL.get(name, name)} | {valid_count(recs)} | {fmt(vals(recs, 'wall_s'), 2)} | "
            f"{fmt(vals(recs, 'rate'))} | {fmt(vals(recs, 'efficiency'), 3)} | "
            f"{fmt(per_k(recs, 'cpu_s'), 1)}{cpu_note} | {fmt(rss_mib(recs), 1)} |")
    return lines


def target_rows(docs: dict) -> list[tuple[str, str, bool | None]]:
    rows = []

    def group(wid: str, name: str) -> list[dict]:
        if wid not in docs:
            return []
        return [r for r in docs[wid]["records"] if r["contender"] == name]

    def check(label, value, ok, fmt_value):
        wid = label.split()[0] if label.split()[0] in docs else (
            "RSS" if "RSS" in label and "producer" not in label else None)
        build = docs[wid]["env"].get("volley", "?") if wid in docs else ""
        if value is None:
            rows.append((label, "not measured", None, build))
        else:
            rows.append((label, fmt_value(value), ok(value), build))

    eff = med(vals(group("W1", "fleet-1w"), "efficiency"))
    check("W1 efficiency, fleet 1 worker ≥ 0.97", eff, lambda v: v >= 0.97, lambda v: f"{v:.3f}")
    eff = med(vals(group("W3", "fleet-1w"), "efficiency"))
    check("W3 efficiency, fleet 1 worker ≥ 0.95", eff, lambda v: v >= 0.95, lambda v: f"{v:.3f}")
    fleet = med(vals(group("W2", "fleet-1w"), "rate"))
    seed = med(vals(group("W2", "seed-semaphore"), "rate"))
    floor = med(vals(group("W2", "floor"), "rate"))
    emb = med(vals(group("W2", "embedded"), "rate"))
    check("W2 fleet (1 worker) ≥ 5× seed semaphore records/s",
          fleet / seed if fleet and seed else None, lambda v: v >= 5,
          lambda v: f"{v:.2f}× ({fleet:,.0f} vs {seed:,.0f} records/s)")
    check("W2 fleet (1 worker) ≥ 55% of the floor",
          fleet / floor if fleet and floor else None, lambda v: v >= 0.55,
          lambda v: f"{v:.0%} ({fleet:,.0f} vs {floor:,.0f} records/s)")
    check("W2 embedded ≥ 80% of the floor",
          emb / floor if emb and floor else None, lambda v: v >= 0.80,
          lambda v: f"{v:.0%} ({emb:,.0f} vs {floor:,.0f} records/s)")
    cpu = med(per_k(group("W2", "fleet-1w"), "cpu_worker_s"))
    check("W2 worker CPU ≤ 40 ms per 1,000 records (fleet, 1 worker)", cpu,
          lambda v: v <= 40, lambda v: f"{v:.1f} ms")
    rss = med(rss_mib(group("RSS", "fleet-1w")))
    check("worker peak RSS ≤ 64 MiB at 1,000 in flight (1 MiB bodies, body = none)", rss,
          lambda v: v <= 64, lambda v: f"{v:.1f} MiB")
    if "W4" in docs:
        sizes = docs["W4"]["workload"]["sizes"]
        big = sizes[-1]
        for size in sizes:
            rate = med(vals(group("W4", f"producer-{size}"), "rate"))
            check(f"W4 producer ≥ 300,000 records/s ({size:,} records)", rate,
                  lambda v: v >= 300_000, lambda v: f"{v:,.0f} records/s")
        prss = med(rss_mib(group("W4", f"producer-{big}")))
        check(f"W4 producer peak RSS ≤ 32 MiB ({big:,} records)", prss, lambda v: v <= 32,
              lambda v: f"{v:.1f} MiB")
    else:
        rows.append(("W4 producer ≥ 300,000 records/s, RSS ≤ 32 MiB", "not measured", None, ""))
    if "W5" in docs:
        one = med(vals(group("W5", "fleet-1w"), "rate"))
        for k in docs["W5"]["workload"]["workers"][1:]:
            rk = med(vals(group("W5", f"fleet-{k}w"), "rate"))
            ratio = rk / (k * one) if rk and one else None
            check(f"W5 {k} workers within 10% of linear (≥ 0.90 × {k} × 1 worker)", ratio,
                  lambda v: v >= 0.90,
                  lambda v, rk=rk: f"{v:.2f} ({rk:,.0f} vs {one:,.0f} records/s)")
    else:
        rows.append(("W5 within 10% of linear", "not measured", None, ""))
    bpr = med(vals(group("W6", f"fleet-{docs['W6']['workload']['workers']}w"),
                   "redis_bytes_per_record")) if "W6" in docs else None
    check("W6 Redis ≤ 64 bytes per record (used_memory delta)", bpr, lambda v: v <= 64,
          lambda v: f"{v:.1f} bytes")
    return rows


def plot(docs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"embedded": "#1f77b4", "fleet-1w": "#2ca02c", "fleet-2w": "#98df8a",
              "fleet-4w": "#55a868", "seed-semaphore": "#d62728", "seed-gather": "#ff9896",
              "floor": "#7f7f7f", "wrk": "#000000"}
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))

    def bars(ax, wid, key, title, ylabel, ref=None):
        if wid not in docs:
            ax.set_visible(False)
            return
        groups = by_contender(docs[wid])
        names, mids, lo, hi = [], [], [], []
        for name, recs in groups.items():
            xs = vals(recs, key)
            if not xs:
                continue
            m = statistics.median(xs)
            names.append(name)
            mids.append(m)
            lo.append(m - min(xs))
            hi.append(max(xs) - m)
        ax.bar(range(len(names)), mids, yerr=[lo, hi], capsize=3,
               color=[colors.get(n, "#999999") for n in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        for i, m in enumerate(mids):
            ax.text(i, m, f"{m:,.3f}" if key == "efficiency" else f"{m:,.0f}",
                    ha="center", va="bottom", fontsize=7)
        if ref is not None:
            ax.axhline(ref, color="k", linestyle="--", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)

    bars(axes[0][0], "W1", "efficiency", "W1 latency-bound: efficiency (ideal/wall)",
         "efficiency", ref=1.0)
    bars(axes[0][1], "W2", "rate", "W2 overhead-bound: records/s (wrk: requests/s)",
         "records/s")
    bars(axes[0][2], "W3", "efficiency", "W3 jittered: efficiency (ideal/wall)", "efficiency",
         ref=1.0)
    bars(axes[1][0], "W1", "rate", "W1 latency-bound: records/s", "records/s")

    ax = axes[1][1]
    if "W5" in docs:
        ks, mids, lins = [], [], []
        groups = by_contender(docs["W5"])
        one = med(vals(groups.get("fleet-1w", []), "rate"))
        for k in docs["W5"]["workload"]["workers"]:
            m = med(vals(groups.get(f"fleet-{k}w", []), "rate"))
            if m:
                ks.append(k)
                mids.append(m)
                lins.append(k * one if one else None)
        ax.plot(ks, mids, "o-", label="fleet records/s", color="#2ca02c")
        if one:
            ax.plot(ks, lins, "--", label="linear (k × 1 worker)", color="k")
            ideal = [docs["W5"]["workload"]["per_worker"] * k / 0.1 for k in ks]
            ax.plot(ks, ideal, ":", label="ideal (100 × k / 0.1 s)", color="#7f7f7f")
        for k, m in zip(ks, mids):
            ax.annotate(f"{m:,.0f}", (k, m), fontsize=7, textcoords="offset points",
                        xytext=(4, -10))
        ax.set_xticks(ks)
        ax.set_xlabel("workers (100 in flight each)")
        ax.set_ylabel("records/s")
        ax.legend(fontsize=8)
        ax.set_title("W5 scale: records/s vs workers", fontsize=10)
    else:
        ax.set_visible(False)

    ax = axes[1][2]
    if "W4" in docs:
        groups = by_contender(docs["W4"])
        names = list(groups)
        mids = [med(vals(groups[n], "rate")) or 0 for n in names]
        rss = [med(rss_mib(groups[n])) or 0 for n in names]
        ax.bar(range(len(names)), mids, color="#9467bd")
        ax.axhline(300_000, color="k", linestyle="--", linewidth=0.8, label="target 300k/s")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{n}\n(RSS {r:.0f} MiB)" for n, r in zip(names, rss)],
                           fontsize=8)
        for i, m in enumerate(mids):
            ax.text(i, m, f"{m:,.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_ylabel("records/s published")
        ax.legend(fontsize=8)
        ax.set_title("W4 producer alone (chunks of 100)", fontsize=10)
    else:
        ax.set_visible(False)
    quick = any(d.get("quick") for d in docs.values())
    fig.suptitle("Volley benchmarks (medians, bars min–max)"
                 + (" — QUICK sizes (10× smaller)" if quick else ""), fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    env, docs = load()
    if not docs:
        print("report: no bench/out/W*.json; run bench/run.sh first", file=sys.stderr)
        return 1
    quick = any(d.get("quick") for d in docs.values())
    runs = sorted({d["runs"] for d in docs.values()})
    md = ["# Volley benchmarks", ""]
    md.append("Produced by `bash bench/run.sh` (raw figures in `bench/out/`, git-ignored). "
              "Every contender runs on the same machine against the same `volley-mockapi`; "
              "the mock's request counter is read after every run and a run is **invalid** "
              "(left out of the medians) unless every process exited 0, the mock counted "
              "exactly one request per record and every record came back ok (results file "
              "line count, or the job's counters for the fleet).")
    md.append("")
    if quick:
        md.append("**QUICK run (BENCH_QUICK=1): every workload 10× smaller; not the real "
                  "figures.**")
        md.append("")
    dates = sorted({d["env"].get("date", "?") for d in docs.values()})
    md.append(f"Date: {', '.join(dates)}. Runs per contender: {', '.join(map(str, runs))} "
              "(tables: median, then min–max of the valid runs).")
    md.append("")
    md.append("| machine | |")
    md.append("|---|---|")
    builds = sorted({d["env"].get("volley", "?") for d in docs.values()})
    md.append(f"| Volley build | {'; '.join(builds)} (per workload below) |")
    for k, label in [("nproc", "nproc"), ("cpu_model", "CPU"), ("ram_gib", "RAM GiB"),
                     ("kernel", "kernel"), ("rustc", "rustc"), ("rabbitmq", "RabbitMQ"),
                     ("redis", "Redis"), ("python", "Python"), ("aiohttp", "aiohttp"),
                     ("wrk", "wrk")]:
        md.append(f"| {label} | {env.get(k, '?')} |")
    md.append("")
    md.append("The machine may be shared with other work (a test suite, other sessions on the "
              "host), so figures are noisy, W2 most of all; the mock API, the broker and Redis "
              "share the same 2 cores as the contender being measured.")
    md.append("")

    md.append("## Targets")
    md.append("")
    md.append("| target | measured (median) | pass | Volley build |")
    md.append("|---|---|---|---|")
    for label, value, ok, build in target_rows(docs):
        mark = "–" if ok is None else ("PASS" if ok else "**FAIL**")
        md.append(f"| {label} | {value} | {mark} | {build} |")
    md.append("")
    md.append("![records/s and efficiency per contender and workload](results.png)")
    md.append("")

    md.append("## How it is measured")
    md.append("")
    md.append("- **Wall time**: `/usr/bin/time` around each process (`%e`), which includes "
              "start-up and reading the input. **Fleet**: from the producer's start to the "
              "job's `finished_ms` (set by the commit that ends the job); the workers are "
              "started first and are consuming (checked on the queue's consumer count) when "
              "the producer starts, and get SIGTERM after `volley status JOB --wait` returns.")
    md.append("- **In flight**: N for one process; the 2-worker fleet in W1–W3 splits the same "
              "N (N/2 per worker), so every contender of a workload has the same ideal. "
              "`per_worker` in the spec and `volley-worker --concurrency` are both set to the "
              "worker's share. Chunks of 100, `result.body = \"none\"`, other spec keys at "
              "their defaults (retries, breaker).")
    md.append("- **CPU** is user+sys of the measured processes (all Volley processes for the "
              "fleet: producer + workers; the worker-only figure in brackets), per 1,000 "
              "records. **Peak RSS** is `%M` of the worker (largest worker for a fleet), of "
              "`volley run`, of the script or of the floor.")
    md.append("- **Seed baselines**: asyncio + aiohttp, one `ClientSession` with "
              "`TCPConnector(limit=N)` (aiohttp's default of 100 connections would cap them), "
              "`await resp.read()`, results written as JSONL at the end. `seed_semaphore.py`: "
              "a task per record behind `asyncio.Semaphore(N)`, one `gather`; "
              "`seed_gather.py`: gather N records, wait for the slowest, next N.")
    md.append("- **Floor**: `bench/floor` (`volley-floor`): reqwest 0.13 (rustls) + tokio, "
              "`buffer_unordered(N)` over the JSONL lines, the body read and dropped, ok "
              "counted; no broker, no store, no results file.")
    md.append("- **wrk**: `wrk -t2 -cN -d10s` on `GET /users/1?delay_ms=0` (3 s in quick "
              "mode): the HTTP ceiling of the machine with this mock.")
    md.append("")

    for wid, title in [("W1", "W1 latency-bound"), ("W2", "W2 overhead-bound"),
                       ("W3", "W3 jittered")]:
        if wid in docs:
            md.append(f"## {title}")
            md.append("")
            md.append(f"Volley build: {docs[wid]['env'].get('volley', '?')}, "
                      f"{docs[wid]['env'].get('date', '?')}.")
            md.append("")
            md.extend(http_table(docs[wid]))
            md.append("")

    if "RSS" in docs:
        d = docs["RSS"]
        w = d["workload"]
        recs = d["records"]
        md.append("## Worker RSS at 1,000 in flight")
        md.append("")
        md.append(f"Volley build: {docs['RSS']['env'].get('volley', '?')}, "
                  f"{docs['RSS']['env'].get('date', '?')}.")
        md.append("")
        md.append(f"{w['records']:,} records, `{w['query']}`, one worker with "
                  f"`--concurrency {w['n']} --prefetch {w['prefetch']}`, `per_worker = "
                  f"{w['n']}`, `result.body = \"none\"` (default `max_body_bytes` 64 KiB: the "
                  "announced 1 MiB length is over the cap, so the worker does not read the "
                  "body, the record succeeds and the connection is dropped).")
        md.append("")
        md.append("| valid runs | wall s | records/s | worker peak RSS MiB | worker CPU ms per "
                  "1k records |")
        md.append("|---|---|---|---|---|")
        md.append(f"| {valid_count(recs)} | {fmt(vals(recs, 'wall_s'), 2)} | "
                  f"{fmt(vals(recs, 'rate'))} | {fmt(rss_mib(recs), 1)} | "
                  f"{fmt(per_k(recs, 'cpu_worker_s'), 1)} |")
        md.append("")

    if "W4" in docs:
        d = docs["W4"]
        md.append("## W4 producer alone")
        md.append("")
        md.append(f"Volley build: {docs['W4']['env'].get('volley', '?')}, "
                  f"{docs['W4']['env'].get('date', '?')}.")
        md.append("")
        md.append("`volley-producer` publishing to the local RabbitMQ (chunks of 100, "
                  "confirmed, persistent, quorum queue), no workers; records/s = records / "
                  "producer wall time; the queue's message count is checked against the "
                  "chunks, then the namespace is deleted.")
        md.append("")
        md.append("| records | valid runs | wall s | records/s | peak RSS MiB | CPU ms per 1k "
                  "records |")
        md.append("|---|---|---|---|---|---|")
        for name, recs in by_contender(d).items():
            md.append(f"| {recs[0]['records']:,} | {valid_count(recs)} | "
                      f"{fmt(vals(recs, 'wall_s'), 1)} | {fmt(vals(recs, 'rate'))} | "
                      f"{fmt(rss_mib(recs), 1)} | {fmt(per_k(recs, 'cpu_s'), 1)} |")
        md.append("")

    if "W5" in docs:
        d = docs["W5"]
        w = d["workload"]
        groups = by_contender(d)
        one = med(vals(groups.get("fleet-1w", []), "rate"))
        md.append("## W5 scale")
        md.append("")
        md.append(f"Volley build: {docs['W5']['env'].get('volley', '?')}, "
                  f"{docs['W5']['env'].get('date', '?')}.")
        md.append("")
        md.append(f"{w['records']:,} records at 100 ms, {w['per_worker']} in flight per "
                  "worker; ideal = records × 0.1 s / (100 × workers). Ratio to linear = "
                  "records/s ÷ (workers × records/s of 1 worker).")
        md.append("")
        md.append("| workers | valid runs | wall s | ideal s | records/s | efficiency | ratio "
                  "to linear | CPU ms per 1k records |")
        md.append("|---|---|---|---|---|---|---|---|")
        for k in w["workers"]:
            recs = groups.get(f"fleet-{k}w", [])
            rk = med(vals(recs, "rate"))
            ratio = f"{rk / (k * one):.2f}" if rk and one else "–"
            ideal = w["records"] * 0.1 / (w["per_worker"] * k)
            md.append(f"| {k} | {valid_count(recs)} | {fmt(vals(recs, 'wall_s'), 2)} | "
                      f"{ideal:.2f} | {fmt(vals(recs, 'rate'))} | "
                      f"{fmt(vals(recs, 'efficiency'), 3)} | {ratio} | "
                      f"{fmt(per_k(recs, 'cpu_s'), 1)} |")
        md.append("")

    if "W6" in docs:
        d = docs["W6"]
        w = d["workload"]
        recs = d["records"]
        md.append("## W6 state in Redis")
        md.append("")
        md.append(f"Volley build: {docs['W6']['env'].get('volley', '?')}, "
                  f"{docs['W6']['env'].get('date', '?')}.")
        md.append("")
        md.append(f"{w['records']:,} records, 0 ms, {w['workers']} workers × "
                  f"{w['per_worker']} in flight, `result.body = \"none\"`. `used_memory` "
                  "(INFO memory) read before the producer starts and after the job finished; "
                  "Redis may be shared with other users, so the delta can carry their "
                  "churn. The namespace's own keys summed with `MEMORY USAGE key "
                  "SAMPLES 0` are shown as a cross-check.")
        md.append("")
        md.append("| valid runs | bytes/record (used_memory delta) | bytes/record (namespace "
                  "keys) | keys | wall s | records/s | CPU ms per 1k records |")
        md.append("|---|---|---|---|---|---|---|")
        md.append(f"| {valid_count(recs)} | {fmt(vals(recs, 'redis_bytes_per_record'), 1)} | "
                  f"{fmt(vals(recs, 'redis_ns_bytes_per_record'), 1)} | "
                  f"{fmt(vals(recs, 'redis_keys'))} | {fmt(vals(recs, 'wall_s'), 1)} | "
                  f"{fmt(vals(recs, 'rate'))} | {fmt(per_k(recs, 'cpu_s'), 1)} |")
        md.append("")

    for prev in sorted(OUT.glob("prev-*")):
        for wid in ["W1", "W2", "W3"]:
            p = prev / f"{wid}.json"
            if not p.exists():
                continue
            d = json.loads(p.read_text())
            md.append(f"## {wid} on an earlier build ({d['env'].get('volley', '?')}, "
                      f"{d['env'].get('date', '?')})")
            md.append("")
            md.append("Kept for comparison (`bench/out/" + prev.name + "/`); not used for the "
                      "targets above.")
            md.append("")
            md.extend(http_table(d))
            md.append("")
        p = prev / "RSS.json"
        if p.exists():
            d = json.loads(p.read_text())
            recs = d["records"]
            md.append(f"Worker RSS run on that build: peak RSS {fmt(rss_mib(recs), 1)} MiB, "
                      f"{fmt(vals(recs, 'rate'))} records/s, worker CPU "
                      f"{fmt(per_k(recs, 'cpu_worker_s'), 1)} ms per 1k records.")
            md.append("")

    bad = [r for d in docs.values() for r in d["records"] if not r.get("valid")]
    md.append("## Invalid runs")
    md.append("")
    if not bad:
        md.append("None.")
    for r in bad:
        md.append(f"- {r['workload']} {r['contender']} run {r['run']}: "
                  f"{'; '.join(r.get('problems', []))}")
    md.append("")
    notes = BENCH / "NOTES.md"
    if notes.exists():
        md.append(notes.read_text().rstrip())
        md.append("")
    (BENCH / "RESULTS.md").write_text("\n".join(md))
    plot(docs, BENCH / "results.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

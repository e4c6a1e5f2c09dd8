"""Runs the benchmark workloads and writes their raw results to bench/out/W*.json.

    python bench/lib/harness.py [--runs N] [--quick] [--only W1,W2] [--ns bench-xxxx]

bench/run.sh is the entry point (it builds, prepares the venv and calls this, then report.py).
Each workload starts its own mock API; the contenders run in rounds (one run of each per
round) so that the noise of the shared machine spreads over all of them."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contenders as c  # noqa: E402
from common import (OUT, RELEASE, VENV_PY, Mock, input_file,  # noqa: E402
                    delete_namespace, redis_info, run_quiet)


def scaled(n: int, quick: bool) -> int:
    return n // 10 if quick else n


def workloads(quick: bool) -> dict:
    q = quick
    return {
        "W1": {"id": "W1", "title": "latency-bound: 100 ms per call, 200 in flight",
               "records": scaled(20_000, q), "query": "delay_ms=100", "n": 200,
               "mean_delay_s": 0.1},
        "W2": {"id": "W2", "title": "overhead-bound: 0 ms per call, 256 in flight",
               "records": scaled(100_000, q), "query": "delay_ms=0", "n": 256,
               "mean_delay_s": 0.0},
        "W3": {"id": "W3", "title": "jittered: 50 ms + 0..100 ms per call, 200 in flight",
               "records": scaled(20_000, q), "query": "delay_ms=50&jitter_ms=100", "n": 200,
               "mean_delay_s": 0.1},
        "W4": {"id": "W4", "title": "producer alone: publish in chunks of 100, no workers",
               "sizes": [100_000, 1_000_000] if q else [1_000_000, 10_000_000],
               "query": "delay_ms=0"},
        "W5": {"id": "W5", "title": "scale: W1 with 1, 2, 4 workers of 100 in flight each",
               "records": scaled(20_000, q), "query": "delay_ms=100", "per_worker": 100,
               "workers": [1, 2, 4], "mean_delay_s": 0.1},
        "W6": {"id": "W6", "title": "state: Redis bytes per record after a finished job",
               "records": scaled(1_000_000, q), "query": "delay_ms=0", "workers": 2,
               "per_worker": 512},
        "RSS": {"id": "RSS", "title": "worker RSS: W2-like, 1,000 in flight, 1 MiB bodies",
                "records": scaled(10_000, q), "query": "delay_ms=0&body_bytes=1048576",
                "n": 1000, "prefetch": 16},
    }


def guarded(fn, w, contender, run, *args, **kwargs) -> dict:
    try:
        return fn(w, *args, **kwargs)
    except Exception as e:  # noqa: BLE001 - one broken run must not lose the others
        traceback.print_exc()
        return {"workload": w["id"], "contender": contender, "run": run, "valid": False,
                "problems": [f"harness error: {e!r}"], "procs": []}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def describe(rec: dict) -> str:
    parts = [f"{rec['workload']} {rec['contender']} run {rec['run']}"]
    if rec.get("wall_s"):
        parts.append(f"wall {rec['wall_s']:.2f}s")
    if rec.get("rate"):
        parts.append(f"{rec['rate']:.0f}/s")
    if rec.get("efficiency"):
        parts.append(f"eff {rec['efficiency']:.3f}")
    if rec.get("cpu_s") is not None and rec.get("records"):
        parts.append(f"cpu {rec['cpu_s'] * 1e6 / rec['records']:.1f} ms/1k")
    if rec.get("rss_kb"):
        parts.append(f"rss {rec['rss_kb'] / 1024:.1f} MiB")
    if rec.get("redis_bytes_per_record") is not None:
        parts.append(f"redis {rec['redis_bytes_per_record']:.1f} B/rec "
                     f"(ns {rec.get('redis_ns_bytes_per_record', 0):.1f})")
    parts.append("OK" if rec.get("valid") else f"INVALID: {'; '.join(rec.get('problems', []))}")
    return ", ".join(parts)


def http_workload(w: dict, runs: int, ns: str) -> list[dict]:
    """W1, W2, W3: every contender against the same mock."""
    records, n = w["records"], w["n"]
    w["ideal"] = records * w["mean_delay_s"] / n if w["mean_delay_s"] else None
    w["timeout"] = max(120.0, 30 * (w["ideal"] or 1.0))
    inp = input_file(records)
    mock = Mock(w["id"])
    url = f"{mock.base}/users/{{id}}?{w['query']}"
    out = []
    try:
        for run in range(1, runs + 1):
            plan = [
                ("embedded", lambda: guarded(c.embedded, w, "embedded", run, mock, run,
                                             records, inp, n, url)),
                ("fleet-1w", lambda: guarded(c.fleet, w, "fleet-1w", run, mock, run, records,
                                             inp, 1, n, url, ns)),
                ("fleet-2w", lambda: guarded(c.fleet, w, "fleet-2w", run, mock, run, records,
                                             inp, 2, n // 2, url, ns)),
                ("seed-semaphore", lambda: guarded(c.python_seed, w, "seed-semaphore", run,
                                                   mock, run, records, inp, n, url,
                                                   "semaphore")),
                ("seed-gather", lambda: guarded(c.python_seed, w, "seed-gather", run, mock, run,
                                                records, inp, n, url, "gather")),
                ("floor", lambda: guarded(c.floor, w, "floor", run, mock, run, records, inp, n,
                                          url)),
            ]
            if w["id"] == "W2":
                dur = 3 if records < 100_000 else 10
                plan.append(("wrk", lambda: guarded(
                    c.wrk, w, "wrk", run, mock, run,
                    f"{mock.base}/users/1?delay_ms=0", n, dur)))
            for name, fn in plan:
                rec = fn()
                say(describe(rec))
                out.append(rec)
    finally:
        mock.stop()
    return out


def rss_workload(w: dict, runs: int, ns: str) -> list[dict]:
    w["ideal"] = None
    w["timeout"] = 600.0
    inp = input_file(w["records"])
    mock = Mock(w["id"])
    url = f"{mock.base}/users/{{id}}?{w['query']}"
    out = []
    try:
        for run in range(1, runs + 1):
            rec = guarded(c.fleet, w, "fleet-1w", run, mock, run, w["records"], inp, 1, w["n"],
                          url, ns, prefetch=w["prefetch"])
            say(describe(rec))
            out.append(rec)
    finally:
        mock.stop()
    return out


def producer_workload(w: dict, runs: int, ns: str) -> list[dict]:
    out = []
    w["timeout"] = 1800.0
    for size in w["sizes"]:
        inp = input_file(size)
        for run in range(1, runs + 1):
            rec = guarded(c.producer_alone, w, f"producer-{size}", run, run, size, inp, ns,
                          "http://127.0.0.1:9/users/{id}?" + w["query"])
            say(describe(rec))
            out.append(rec)
    return out


def scale_workload(w: dict, runs: int, ns: str) -> list[dict]:
    records, per = w["records"], w["per_worker"]
    inp = input_file(records)
    mock = Mock(w["id"])
    url = f"{mock.base}/users/{{id}}?{w['query']}"
    out = []
    try:
        for run in range(1, runs + 1):
            for k in w["workers"]:
                wk = dict(w, ideal=records * w["mean_delay_s"] / (per * k))
                wk["timeout"] = max(120.0, 30 * wk["ideal"])
                rec = guarded(c.fleet, wk, f"fleet-{k}w", run, mock, run, records, inp, k, per,
                              url, ns)
                rec["ideal_s"] = wk["ideal"]
                say(describe(rec))
                out.append(rec)
    finally:
        mock.stop()
    return out


def state_workload(w: dict, runs: int, ns: str) -> list[dict]:
    w["ideal"] = None
    w["timeout"] = 1200.0
    inp = input_file(w["records"])
    mock = Mock(w["id"])
    url = f"{mock.base}/users/{{id}}?{w['query']}"
    out = []
    try:
        for run in range(1, runs + 1):
            rec = guarded(c.fleet, w, f"fleet-{w['workers']}w", run, mock, run, w["records"],
                          inp, w["workers"], w["per_worker"], url, ns, measure_redis=True)
            say(describe(rec))
            out.append(rec)
    finally:
        mock.stop()
    return out


def first_line(cmd: list[str]) -> str:
    try:
        rc, out, err = run_quiet(cmd, timeout=60)
        return (out or err).strip().splitlines()[0] if (out or err).strip() else "?"
    except Exception:  # noqa: BLE001
        return "?"


def environment() -> dict:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    rabbit = first_line(["rabbitmqctl", "version"])
    try:
        redis_version = redis_info("server").get("redis_version", "?")
    except Exception:  # noqa: BLE001
        redis_version = "?"
    aiohttp = first_line([str(VENV_PY), "-c", "import aiohttp; print(aiohttp.__version__)"])
    python = first_line([str(VENV_PY), "--version"])
    wrk = first_line(["wrk", "--version"])
    build = RELEASE / "BUILD"
    if build.exists():
        volley = build.read_text().strip()
    else:
        head = first_line(["git", "-C", str(OUT.parent.parent), "rev-parse", "--short",
                           "HEAD"])
        volley = f"binaries of {RELEASE} (working tree at {head})"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "volley": volley,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": first_line(["rustc", "--version"]),
        "rabbitmq": rabbit,
        "redis": redis_version,
        "python": python,
        "aiohttp": aiohttp,
        "wrk": re.sub(r"\s+Copyright.*", "", wrk),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="W1,W2,W3,W4,W5,W6,RSS")
    ap.add_argument("--ns", default=f"bench-{secrets.token_hex(4)}")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env = environment()
    (OUT / "env.json").write_text(json.dumps(env, indent=2))
    say(f"namespace {args.ns}; runs {args.runs}; quick {args.quick}; env {env}")
    table = workloads(args.quick)
    wanted = [x.strip().upper() for x in args.only.split(",") if x.strip()]
    if "W2" in wanted and "RSS" not in wanted:
        wanted.append("RSS")  # the RSS run belongs to W2's targets
    runners = {"W1": http_workload, "W2": http_workload, "W3": http_workload,
               "W4": producer_workload, "W5": scale_workload, "W6": state_workload,
               "RSS": rss_workload}
    try:
        for wid in wanted:
            if wid not in table:
                print(f"unknown workload {wid}", file=sys.stderr)
                return 2
            w = table[wid]
            say(f"== {wid}: {w['title']}")
            started = time.time()
            recs = runners[wid](w, args.runs, args.ns)
            meta = {k: v for k, v in w.items()}
            doc = {"workload": meta, "quick": args.quick, "runs": args.runs, "env": env,
                   "namespace": args.ns, "elapsed_s": time.time() - started, "records": recs}
            (OUT / f"{wid}.json").write_text(json.dumps(doc, indent=1))
    finally:
        try:
            delete_namespace(args.ns)
            say(f"namespace {args.ns} deleted (queues, exchange, Redis keys)")
        except Exception as e:  # noqa: BLE001
            say(f"could not clean namespace {args.ns}: {e!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

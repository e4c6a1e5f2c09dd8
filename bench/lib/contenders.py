"""One run of each contender. Every function returns a run record (a dict) with the measured
figures, the processes' exit codes, times, CPU and peak RSS, the mock's request count and a
list of problems; a run with a problem is invalid and is left out of the medians."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

from common import (BENCH, OUT, VENV_PY, Mock, Timed, binary, count_lines, cpu,
                    delete_namespace, rabbit_delete_namespace, rabbit_queue, redis_delete_namespace,
                    redis_namespace_bytes, redis_used_memory, run_quiet, wait_workers,
                    write_spec)

WORK = OUT / "work"


def _base(w: dict, contender: str, run: int, records: int, in_flight: int) -> dict:
    return {"workload": w["id"], "contender": contender, "run": run, "records": records,
            "in_flight": in_flight, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "procs": [], "problems": []}


def _finish(rec: dict, mock: Mock | None, expected_requests: int | None, wall: float | None,
            ideal: float | None) -> dict:
    if mock is not None:
        rec["mock_requests"] = mock.count()
        if expected_requests is not None and rec["mock_requests"] != expected_requests:
            rec["problems"].append(
                f"mock counted {rec['mock_requests']} requests, expected {expected_requests}")
    for p in rec["procs"]:
        if p["rc"] != 0:
            rec["problems"].append(f"{p['role']} exited {p['rc']} (see {p['log']})")
        if p.get("timed_out"):
            rec["problems"].append(f"{p['role']} timed out")
    rec["wall_s"] = wall
    if wall and wall > 0:
        rec["rate"] = rec["records"] / wall
        if ideal:
            rec["ideal_s"] = ideal
            rec["efficiency"] = ideal / wall
    rec["valid"] = not rec["problems"]
    return rec


def _tag(w: dict, contender: str, run: int) -> str:
    return f"{w['id']}-{contender}-r{run}"


def _check_results_file(rec: dict, path: Path, records: int) -> None:
    if not path.exists():
        rec["problems"].append(f"no results file {path.name}")
        return
    n = count_lines(path)
    rec["result_lines"] = n
    if n != records:
        rec["problems"].append(f"results file has {n} lines, expected {records}")
    ok = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"ok":true' in line or '"ok": true' in line:
                ok += 1
    rec["ok"] = ok
    if ok != records:
        rec["problems"].append(f"{records - ok} records not ok in the results file")
    path.unlink()


def embedded(w, mock, run, records, inp, n, url, body="none"):
    WORK.mkdir(parents=True, exist_ok=True)
    tag = _tag(w, "embedded", run)
    rec = _base(w, "embedded", run, records, n)
    spec = write_spec(WORK / f"{tag}.toml", "bench-embedded", url, n, body=body)
    out = WORK / f"{tag}.jsonl"
    mock.reset()
    p = Timed("volley-run", [binary("volley"), "run", "--spec", str(spec), "--input", str(inp),
                             "--out", str(out), "--concurrency", str(n), "--json"], tag)
    res = p.wait(timeout=w["timeout"])
    rec["procs"].append(res)
    rec["cpu_s"] = cpu(res)
    rec["rss_kb"] = res["rss_kb"]
    try:
        status = json.loads(p.stdout().strip().splitlines()[-1])
        rec["status"] = {k: status.get(k) for k in ("state", "total", "done", "ok", "failed",
                                                    "retries")}
    except (ValueError, IndexError):
        rec["problems"].append("volley run printed no JSON status")
    _check_results_file(rec, out, records)
    return _finish(rec, mock, records, res["wall_s"], w.get("ideal"))


def python_seed(w, mock, run, records, inp, n, url, variant):
    WORK.mkdir(parents=True, exist_ok=True)
    contender = f"seed-{variant}"
    tag = _tag(w, contender, run)
    rec = _base(w, contender, run, records, n)
    out = WORK / f"{tag}.jsonl"
    mock.reset()
    script = BENCH / "baselines" / f"seed_{variant}.py"
    p = Timed("python", [str(VENV_PY), str(script), "--url", url, "--input", str(inp), "--out",
                         str(out), "--concurrency", str(n)], tag)
    res = p.wait(timeout=w["timeout"] * 4)
    rec["procs"].append(res)
    rec["cpu_s"] = cpu(res)
    rec["rss_kb"] = res["rss_kb"]
    _check_results_file(rec, out, records)
    return _finish(rec, mock, records, res["wall_s"], w.get("ideal"))


def floor(w, mock, run, records, inp, n, url):
    tag = _tag(w, "floor", run)
    rec = _base(w, "floor", run, records, n)
    mock.reset()
    p = Timed("volley-floor", [binary("volley-floor"), "--url", url, "--input", str(inp),
                               "--concurrency", str(n)], tag)
    res = p.wait(timeout=w["timeout"])
    rec["procs"].append(res)
    rec["cpu_s"] = cpu(res)
    rec["rss_kb"] = res["rss_kb"]
    try:
        summary = json.loads(p.stdout().strip().splitlines()[-1])
        rec["ok"] = summary["ok"]
        if summary["ok"] != records or summary["records"] != records:
            rec["problems"].append(f"floor: {summary}")
    except (ValueError, IndexError, KeyError):
        rec["problems"].append("volley-floor printed no summary")
    return _finish(rec, mock, records, res["wall_s"], w.get("ideal"))


def fleet(w, mock, run, records, inp, workers, per_worker, url, ns, contender=None,
          body="none", prefetch=None, measure_redis=False):
    """Workers first (connected, consuming), then the producer; wall = from the producer's start
    to the job's `finished_ms`. Workers get SIGTERM once `volley status --wait` returns."""
    WORK.mkdir(parents=True, exist_ok=True)
    contender = contender or f"fleet-{workers}w"
    tag = _tag(w, contender, run)
    rec = _base(w, contender, run, records, per_worker * workers)
    rec["workers"] = workers
    rec["per_worker"] = per_worker
    env = {"VOLLEY_NAMESPACE": ns}
    spec = write_spec(WORK / f"{tag}.toml", "bench-fleet", url, per_worker, body=body)
    redis_delete_namespace(ns)
    mock.reset()
    if measure_redis:
        rec["redis_used_before"] = redis_used_memory()
    procs: list[Timed] = []
    try:
        cmd = [binary("volley-worker"), "--concurrency", str(per_worker)]
        if prefetch:
            cmd += ["--prefetch", str(prefetch)]
        # The first worker declares the topology alone: on RabbitMQ 3.10, workers declaring a
        # fresh quorum queue and consuming from it at the same instant can get a connection
        # error (INTERNAL_ERROR, `noproc` in rabbit_quorum_queue:consume), and a worker exits
        # 69 on it at start-up (see the report). The others start once it consumes.
        procs.append(Timed("worker1", cmd, tag, env=env))
        wait_workers(ns, 1, timeout=30)
        for i in range(1, workers):
            procs.append(Timed(f"worker{i + 1}", cmd, tag, env=env))
        if not wait_workers(ns, workers, timeout=30):
            rec["problems"].append(f"{workers} workers were not all running after 30 s")
        t0 = time.time()
        producer = Timed("producer", [binary("volley-producer"), "--spec", str(spec), "--input",
                                      str(inp)], tag, env=env)
        pres = producer.wait(timeout=w["timeout"] * 3)
        rec["procs"].append(pres)
        job = producer.stdout().strip().splitlines()[-1] if producer.stdout().strip() else None
        rec["job"] = job
        status = None
        if job and pres["rc"] == 0:
            rc, out, err = run_quiet([binary("volley"), "status", job, "--wait", "--json",
                                      "--timeout", f"{int(w['timeout'] * 3)}s"],
                                     timeout=w["timeout"] * 3 + 30, env=env)
            rec["status_rc"] = rc
            if rc != 0:
                rec["problems"].append(f"volley status --wait exited {rc}: {err.strip()[:300]}")
            try:
                status = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                rec["problems"].append("volley status printed no JSON")
        t_status = time.time()
        if measure_redis:
            rec["redis_used_after"] = redis_used_memory()
            rec["redis_keys"], rec["redis_ns_bytes"] = redis_namespace_bytes(ns)
    finally:
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            rec["procs"].append(p.wait(timeout=60))
    wall = None
    if status:
        rec["status"] = {k: status.get(k) for k in (
            "state", "total", "done", "ok", "failed", "retries", "chunks_done", "total_chunks",
            "created_ms", "first_commit_ms", "finished_ms")}
        if status.get("state") != "completed" or status.get("ok") != records \
                or status.get("done") != records:
            rec["problems"].append(
                f"job {status.get('state')}: done {status.get('done')}, ok {status.get('ok')}, "
                f"expected {records}")
        if status.get("finished_ms"):
            wall = status["finished_ms"] / 1000.0 - t0
            rec["wall_status_poll_s"] = t_status - t0
    worker_res = [p for p in rec["procs"] if p["role"].startswith("worker")]
    producer_res = [p for p in rec["procs"] if p["role"] == "producer"]
    rec["cpu_s"] = sum(cpu(p) for p in rec["procs"])
    rec["cpu_worker_s"] = sum(cpu(p) for p in worker_res)
    rec["cpu_producer_s"] = sum(cpu(p) for p in producer_res)
    rec["rss_kb"] = max((p["rss_kb"] or 0) for p in worker_res) if worker_res else None
    if measure_redis and "redis_used_after" in rec:
        rec["redis_bytes_per_record"] = (rec["redis_used_after"] - rec["redis_used_before"]) \
            / records
        rec["redis_ns_bytes_per_record"] = rec["redis_ns_bytes"] / records
    rec["mock_requests"] = mock.count()
    delete_namespace(ns, (job,) if job else ())
    return _finish(rec, mock, records, wall, w.get("ideal"))


def producer_alone(w, run, records, inp, ns, url):
    WORK.mkdir(parents=True, exist_ok=True)
    contender = f"producer-{records}"
    tag = _tag(w, contender, run)
    rec = _base(w, contender, run, records, 0)
    env = {"VOLLEY_NAMESPACE": ns}
    spec = write_spec(WORK / f"{tag}.toml", "bench-producer", url, 64)
    redis_delete_namespace(ns)
    rabbit_delete_namespace(ns)
    p = Timed("producer", [binary("volley-producer"), "--spec", str(spec), "--input", str(inp)],
              tag, env=env)
    res = p.wait(timeout=w["timeout"])
    rec["procs"].append(res)
    rec["cpu_s"] = cpu(res)
    rec["rss_kb"] = res["rss_kb"]
    job = p.stdout().strip().splitlines()[-1] if p.stdout().strip() else None
    rec["job"] = job
    chunks = (records + 99) // 100
    if job:
        rc, out, err = run_quiet([binary("volley"), "status", job, "--json"], env=env)
        try:
            st = json.loads(out.strip().splitlines()[-1])
            rec["status"] = {k: st.get(k) for k in ("state", "total", "total_chunks",
                                                    "published_chunks", "published_records")}
            if st.get("published_records") != records or st.get("published_chunks") != chunks:
                rec["problems"].append(f"published {st.get('published_records')} records in "
                                       f"{st.get('published_chunks')} chunks")
        except (ValueError, IndexError):
            rec["problems"].append(f"volley status: {err.strip()[:200]}")
    q = rabbit_queue(ns, job) if job else None
    rec["queue_messages"] = q[0] if q else None
    if not q or q[0] != chunks:
        rec["problems"].append(f"queue holds {q[0] if q else None} messages, expected {chunks}")
    # The job never runs (no worker): the namespace is deleted queue by queue.
    rabbit_delete_namespace(ns, (job,) if job else ())
    redis_delete_namespace(ns)
    return _finish(rec, None, None, res["wall_s"], None)


WRK_RE = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")


def wrk(w, mock, run, url, connections, duration_s):
    tag = _tag(w, "wrk", run)
    rec = _base(w, "wrk", run, 0, connections)
    mock.reset()
    p = Timed("wrk", ["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", url], tag)
    res = p.wait(timeout=duration_s + 60)
    rec["procs"].append(res)
    text = p.stdout()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = WRK_RE.search(text)
    rec["mock_requests"] = mock.count()
    if not m or not total:
        rec["problems"].append("could not parse wrk output")
    else:
        rec["rate"] = float(m.group(1))
        rec["records"] = int(total.group(1))
        # wrk does not count the requests still in flight when it stops.
        if not (rec["records"] <= rec["mock_requests"] <= rec["records"] + connections):
            rec["problems"].append(f"mock counted {rec['mock_requests']}, wrk {rec['records']}")
        if "Non-2xx" in text or "Socket errors" in text:
            rec["problems"].append("wrk saw errors: " + " ".join(
                l.strip() for l in text.splitlines() if "Non-2xx" in l or "Socket errors" in l))
    rec["cpu_s"] = cpu(res)
    rec["wall_s"] = res["wall_s"]
    for proc in rec["procs"]:
        if proc["rc"] != 0:
            rec["problems"].append(f"wrk exited {proc['rc']}")
    rec["valid"] = not rec["problems"]
    return rec

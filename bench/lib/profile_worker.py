"""Profiles one volley-worker during a W2-like fleet job with `perf record`, then prints the
top symbols (self time) and writes them to bench/out/perf-worker.txt.

    bench/.venv/bin/python bench/lib/profile_worker.py [--records 100000] [--n 256]
                                                        [--query delay_ms=0] [--call-graph fp]

Uses the binaries of bench/out/bin (or $BENCH_BIN) as bench/run.sh left them; needs `perf`
(Debian: linux-perf) and the local RabbitMQ and Redis; cleans its namespace up."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (LOGS, OUT, Mock, Timed, binary, input_file,  # noqa: E402
                    delete_namespace, run_quiet, wait_workers,
                    write_spec)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--query", default="delay_ms=0")
    ap.add_argument("--call-graph", default="fp", help="fp, dwarf or lbr (perf --call-graph)")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    ns = f"bench-{secrets.token_hex(4)}"
    env = {"VOLLEY_NAMESPACE": ns}
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / "perf-worker.data"
    inp = input_file(args.records)
    mock = Mock("perf")
    url = f"{mock.base}/users/{{id}}?{args.query}"
    spec = write_spec(OUT / "perf.toml", "bench-perf", url, args.n)
    worker = Timed("worker", [binary("volley-worker"), "--concurrency", str(args.n)], "perf",
                   env=env)
    perf = None
    job = None
    try:
        if not wait_workers(ns, 1, timeout=30):
            print("worker not consuming", file=sys.stderr)
            return 1
        pid = worker.child_pid()
        perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", args.call_graph,
                                 "-p", str(pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=open(LOGS / "perf.err", "wb"))
        time.sleep(0.5)
        t0 = time.time()
        producer = Timed("producer", [binary("volley-producer"), "--spec", str(spec),
                                      "--input", str(inp)], "perf", env=env)
        producer.wait(timeout=600)
        job = producer.stdout().strip().splitlines()[-1]
        rc, out, err = run_quiet([binary("volley"), "status", job, "--wait", "--json"],
                                 timeout=600, env=env)
        print(f"job {job}: status exit {rc}, {time.time() - t0:.1f} s")
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        worker.signal(signal.SIGTERM)
        res = worker.wait(timeout=60)
        print(f"worker: {res}")
        mock.stop()
        delete_namespace(ns, (job,) if job else ())
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                             "--sort", "symbol", "-g", "none", "--percent-limit", "0.3"],
                            capture_output=True, text=True)
    lines = [l for l in report.stdout.splitlines() if l.strip() and not l.startswith("#")]
    top = lines[:args.top]
    text = "\n".join(top)
    (OUT / "perf-worker.txt").write_text(report.stdout)
    print(text)
    dso = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                          "--sort", "dso", "-g", "none"], capture_output=True, text=True)
    (OUT / "perf-worker-dso.txt").write_text(dso.stdout)
    print("\n".join(l for l in dso.stdout.splitlines() if l.strip() and not l.startswith("#")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""docker-compose.yml for real, judged by the mock API's request counter.

A stack of RabbitMQ, Redis, the mock API and 3 workers on a private network (the compose
project's own, removed at the end). A 20,000-record job runs through it while the test
kills a worker container, restarts the Redis container and scales the workers in to one.
Every record must be called and recorded exactly once, but for what the killed worker held;
the workers stopped by the scale-in must drain and exit 0. Then the README's demo commands.

Run by scripts/compose-test.sh, which builds the images first.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = os.environ.get("COMPOSE", "docker compose").split()
DOCKER = os.environ.get("DOCKER", "docker")
VOLLEY = os.environ.get("VOLLEY_BIN", str(ROOT / "target" / "release" / "volley"))

RECORDS = 20_000
CHUNK = 100
PREFETCH = 4
PROJECT = f"volleyct{os.getpid()}"
NAMESPACE = "ct"


def log(message):
    print(f"[compose-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORTS = {
    "TEST_AMQP_PORT": free_port(),
    "TEST_REDIS_PORT": free_port(),
    "TEST_MOCKAPI_PORT": free_port(),
    "RABBITMQ_MANAGEMENT_PORT": free_port(),
}
ENV = dict(os.environ)
ENV.update({k: str(v) for k, v in PORTS.items()})
ENV.update(
    {
        "COMPOSE_PROJECT_NAME": PROJECT,
        "VOLLEY_NAMESPACE": NAMESPACE,
        "VOLLEY_PREFETCH": str(PREFETCH),
        "VOLLEY_DRAIN_TIMEOUT": "20s",
        "VOLLEY_STOP_GRACE": "40s",
        "DEMO_RECORDS": "5000",
    }
)
HOST_VOLLEY_ENV = dict(os.environ)
HOST_VOLLEY_ENV.update(
    {
        "VOLLEY_AMQP_URL": f"amqp://volley:volley@127.0.0.1:{PORTS['TEST_AMQP_PORT']}/%2f",
        "VOLLEY_REDIS_URL": f"redis://:volley@127.0.0.1:{PORTS['TEST_REDIS_PORT']}/0",
        "VOLLEY_NAMESPACE": NAMESPACE,
    }
)


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def compose(*args, timeout=300, check_rc=True, capture=False):
    cmd = COMPOSE + ["-f", "docker-compose.yml", "-f", "tests/compose/ports.yml", *args]
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=ENV,
        timeout=timeout,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )
    if check_rc and done.returncode != 0:
        raise Failed(f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout or ''}")
    return done


def volley(*args, timeout=60):
    return subprocess.run(
        [VOLLEY, *args],
        env=HOST_VOLLEY_ENV,
        timeout=timeout,
        text=True,
        capture_output=True,
    )


def status(job):
    done = volley("status", job, "--json")
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return None


def mock_stats():
    url = f"http://127.0.0.1:{PORTS['TEST_MOCKAPI_PORT']}/stats"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def worker_containers():
    out = compose("ps", "-q", "worker", capture=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def wait_for_done(job, at_least, deadline):
    while time.monotonic() < deadline:
        s = status(job)
        if s and s.get("done", 0) >= at_least:
            return s
        time.sleep(0.5)
    raise Failed(f"job {job} did not reach {at_least} done records in time: {status(job)}")


class DieEvents:
    """Every container of the project that stops, with its exit code (docker events)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [
                DOCKER,
                "events",
                "--filter",
                f"label=com.docker.compose.project={PROJECT}",
                "--filter",
                "event=die",
                "--format",
                "{{json .Actor.Attributes}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.seen = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.seen.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    def stop(self):
        self.proc.terminate()


def write_job(directory):
    directory.mkdir(mode=0o755)
    (directory / "spec.toml").write_text(
        "\n".join(
            [
                'name = "compose-test"',
                "[request]",
                'method = "GET"',
                'url = "http://mockapi:8080/users/{id}?delay_ms=150"',
                'timeout = "10s"',
                "[concurrency]",
                "per_worker = 48",
                "[chunking]",
                f"size = {CHUNK}",
                "[result]",
                'body = "none"',
                "",
            ]
        )
    )
    with open(directory / "records.jsonl", "w") as f:
        for i in range(RECORDS):
            f.write(f'{{"id":"r{i:05}"}}\n')
    for p in directory.iterdir():
        p.chmod(0o644)


def scenario_fleet(workdir):
    log("up: RabbitMQ, Redis, the mock API and 3 workers")
    compose("up", "-d", "--wait", "--scale", "worker=3", "rabbitmq", "redis", "worker", "mockapi")
    check(len(worker_containers()) == 3, "3 workers are running")
    job_dir = workdir / "job"
    write_job(job_dir)
    events = DieEvents()
    try:
        log(f"publishing {RECORDS} records (job big)")
        compose(
            "run", "--rm", "-v", f"{job_dir}:/job:ro", "producer",
            "--spec", "/job/spec.toml", "--input", "/job/records.jsonl", "--job-id", "big",
        )
        deadline = time.monotonic() + 240
        wait_for_done("big", 2_000, deadline)
        victim = worker_containers()[0]
        log(f"docker kill of worker {victim[:12]} mid-job")
        subprocess.run([DOCKER, "kill", victim], check=True, stdout=subprocess.DEVNULL)
        wait_for_done("big", 6_000, deadline)
        log("restarting the Redis container mid-job")
        compose("restart", "redis")
        wait_for_done("big", 9_000, deadline)
        before = set(worker_containers())
        log(f"scale in to 1 worker while the job runs ({len(before)} running)")
        started = time.monotonic()
        compose("up", "-d", "--no-deps", "--scale", "worker=1", "worker")
        log(f"scale-in returned after {time.monotonic() - started:.1f} s")
        check(len(worker_containers()) == 1, "one worker is left")
        log("waiting for the job to end (volley status --wait in a container)")
        compose("run", "--rm", "volley", "status", "big", "--wait", "--timeout", "4m", timeout=300)
    finally:
        events.stop()

    stats = mock_stats()
    per_id = stats.get("per_id", {})
    requests = stats["requests"]
    lost = [f"r{i:05}" for i in range(RECORDS) if per_id.get(f"r{i:05}", 0) == 0]
    twice = {k: n for k, n in per_id.items() if n > 1}
    held = PREFETCH * CHUNK
    log(f"API: {requests} requests for {RECORDS} records, {len(twice)} ids called again")
    check(not lost, f"{len(lost)} records never called, first {lost[:5]}")
    check(
        RECORDS <= requests <= RECORDS + held,
        f"{requests} requests: more than the records plus what the killed worker held ({held})",
    )
    check(sum(per_id.values()) == requests, "every request is of a record of the job")

    results = volley("results", "big", "--format", "jsonl", timeout=120)
    check(results.returncode == 0, f"volley results exited {results.returncode}: {results.stderr}")
    rows = [json.loads(line) for line in results.stdout.splitlines() if line.strip()]
    ids = [r.get("id") for r in rows]
    check(len(rows) == RECORDS and len(set(ids)) == RECORDS, f"{len(rows)} result rows, {len(set(ids))} ids")
    not_ok = [r for r in rows if r.get("ok") is not True or r.get("attempts") != 1]
    verified = volley("verify", "big")
    check(verified.returncode == 0, f"volley verify exited {verified.returncode}:\n{verified.stdout}{verified.stderr}")
    check(not not_ok, f"{len(not_ok)} records did not end ok, first {not_ok[:3]}")

    workers_died = [e for e in events.seen if e.get("com.docker.compose.service") == "worker"]
    codes = {e.get("name"): e.get("exitCode") for e in workers_died}
    log(f"workers that stopped: {codes}")
    killed = [n for n, c in codes.items() if c == "137"]
    drained = [n for n, c in codes.items() if c == "0"]
    check(len(killed) == 1, f"exactly the killed worker ended by SIGKILL: {codes}")
    check(len(drained) >= 1, f"the scaled-in workers drained and exited 0: {codes}")
    check(set(codes.values()) <= {"0", "137"}, f"no worker ended otherwise: {codes}")


def scenario_readme_demo():
    log("the README's demo: docker compose --profile demo up -d")
    compose("--profile", "demo", "up", "-d", "--wait", "--scale", "worker=2", timeout=300)
    compose("run", "--rm", "volley", "status", "demo", "--wait", "--timeout", "3m", timeout=240)
    verified = compose("run", "--rm", "volley", "verify", "demo", check_rc=False, capture=True)
    check(verified.returncode == 0, f"verify demo exited {verified.returncode}:\n{verified.stdout}")
    listed = compose("run", "--rm", "volley", "jobs", capture=True).stdout
    check("demo" in listed and "big" in listed, f"volley jobs lists both jobs:\n{listed}")


def main():
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="volley-compose-"))
    workdir.chmod(0o755)
    ok = False
    try:
        scenario_fleet(workdir)
        scenario_readme_demo()
        ok = True
    except (Failed, subprocess.TimeoutExpired) as e:
        log(f"FAILED: {e}")
        compose("--profile", "demo", "--profile", "tools", "logs", "--no-color", "--tail", "40",
                check_rc=False)
    finally:
        compose("--profile", "demo", "--profile", "tools", "down", "-v", "--remove-orphans",
                "--timeout", "5", check_rc=False, capture=True)
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

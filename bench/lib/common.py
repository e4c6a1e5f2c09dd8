"""Plumbing shared by the benchmark workloads: timed processes, the mock API, Redis and
RabbitMQ look-ups and clean-up, inputs and specs. Standard library only, except pika (for
RabbitMQ queue counts and deletes), which bench/run.sh installs into bench/.venv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
RELEASE = Path(os.environ.get("BENCH_BIN", str(ROOT / "target" / "release")))
DATA = BENCH / "data"
OUT = BENCH / "out"
LOGS = OUT / "logs"
VENV_PY = BENCH / ".venv" / "bin" / "python"

AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1")
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = os.environ.get("BENCH_REDIS_PORT", "6379")

TIME_FORMAT = "%e %U %S %M"


def binary(name: str) -> str:
    return str(RELEASE / name)


# --- timed processes ---------------------------------------------------------------------


class Timed:
    """A process run under `/usr/bin/time`, its stdout and stderr in log files."""

    def __init__(self, role: str, cmd: list[str], tag: str, env: dict | None = None,
                 stdout_to_file: bool = True):
        LOGS.mkdir(parents=True, exist_ok=True)
        self.role = role
        self.cmd = cmd
        self.time_file = LOGS / f"{tag}-{role}.time"
        self.out_file = LOGS / f"{tag}-{role}.out"
        self.err_file = LOGS / f"{tag}-{role}.err"
        for f in (self.time_file,):
            if f.exists():
                f.unlink()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self._out = open(self.out_file, "wb")
        self._err = open(self.err_file, "wb")
        self.started = time.time()
        self.proc = subprocess.Popen(
            ["/usr/bin/time", "-f", TIME_FORMAT, "-o", str(self.time_file), *cmd],
            stdout=self._out, stderr=self._err, env=full_env, stdin=subprocess.DEVNULL,
        )

    def child_pid(self) -> int | None:
        """The pid of the measured program (the child of /usr/bin/time)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        for _ in range(50):
            try:
                kids = path.read_text().split()
            except OSError:
                return None
            if kids:
                return int(kids[0])
            time.sleep(0.02)
        return None

    def signal(self, sig=signal.SIGTERM) -> None:
        pid = self.child_pid()
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> dict:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait()
            self.timed_out = True
        self._out.close()
        self._err.close()
        return self.result()

    def stdout(self) -> str:
        return self.out_file.read_text(errors="replace")

    def result(self) -> dict:
        res = {"role": self.role, "rc": self.proc.returncode, "wall_s": None, "user_s": None,
               "sys_s": None, "rss_kb": None, "log": str(self.err_file.relative_to(BENCH))}
        if getattr(self, "timed_out", False):
            res["timed_out"] = True
        try:
            lines = [l for l in self.time_file.read_text().splitlines() if l.strip()]
            wall, user, sys_, rss = lines[-1].split()
            res.update(wall_s=float(wall), user_s=float(user), sys_s=float(sys_),
                       rss_kb=int(rss))
            if lines[0].startswith("Command"):
                res["time_note"] = lines[0]
        except (OSError, ValueError, IndexError):
            res["time_note"] = "no /usr/bin/time output"
        return res


def cpu(res: dict) -> float:
    return (res.get("user_s") or 0.0) + (res.get("sys_s") or 0.0)


def run_quiet(cmd: list[str], timeout: float = 60, env: dict | None = None) -> tuple[int, str, str]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    return p.returncode, p.stdout, p.stderr


# --- the mock API ------------------------------------------------------------------------


class Mock:
    """`volley-mockapi` on a free port of 127.0.0.1."""

    def __init__(self, tag: str):
        LOGS.mkdir(parents=True, exist_ok=True)
        self._err = open(LOGS / f"{tag}-mockapi.err", "wb")
        self.proc = subprocess.Popen([binary("volley-mockapi"), "--addr", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if "http://" not in line:
            raise RuntimeError(f"volley-mockapi did not start: {line!r}")
        self.base = line.split("listening on ", 1)[1].rstrip("/")
        self.port = int(self.base.rsplit(":", 1)[1])

    def count(self) -> int:
        with urllib.request.urlopen(f"{self.base}/stats", timeout=10) as r:
            return int(json.load(r)["requests"])

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.base}/stats/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def cpu_s(self) -> float:
        """User+sys CPU seconds the mock has used so far (from /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


# --- Redis -------------------------------------------------------------------------------


def redis(*args: str, timeout: float = 120) -> str:
    rc, out, err = run_quiet(["redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "--no-raw", *args],
                             timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"redis-cli {' '.join(args)}: {err.strip()}")
    return out


def redis_raw(*args: str, timeout: float = 120) -> str:
    rc, out, err = run_quiet(["redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "--raw", *args],
                             timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"redis-cli {' '.join(args)}: {err.strip()}")
    return out


def redis_info(section: str) -> dict:
    info = {}
    for line in redis_raw("INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            info[k] = v
    return info


def redis_used_memory() -> int:
    return int(redis_info("memory")["used_memory"])


def redis_keys(ns: str) -> list[str]:
    out = redis_raw("--scan", "--pattern", f"{ns}:*")
    return [k for k in out.splitlines() if k]


def redis_namespace_bytes(ns: str) -> tuple[int, int]:
    """(keys, bytes) of the namespace by MEMORY USAGE (every element sampled)."""
    total = 0
    keys = redis_keys(ns)
    for k in keys:
        v = redis_raw("MEMORY", "USAGE", k, "SAMPLES", "0").strip()
        if v.isdigit():
            total += int(v)
    return len(keys), total


def redis_delete_namespace(ns: str) -> int:
    keys = redis_keys(ns)
    for i in range(0, len(keys), 200):
        redis_raw("UNLINK", *keys[i:i + 200])
    return len(keys)


# --- RabbitMQ ----------------------------------------------------------------------------


def _amqp():
    import pika  # installed in bench/.venv by run.sh

    params = pika.ConnectionParameters(host=AMQP_HOST, port=5672,
                                       credentials=pika.PlainCredentials("guest", "guest"),
                                       heartbeat=0, blocked_connection_timeout=60)
    return pika.BlockingConnection(params)


def rabbit_queue(ns: str, job: str) -> tuple[int, int] | None:
    """(messages ready, consumers) of the job's chunk queue (`{ns}.chunks.{job}`: every job
    has a queue of its own); None when it does not exist."""
    import pika.exceptions

    conn = _amqp()
    try:
        ch = conn.channel()
        try:
            q = ch.queue_declare(queue=f"{ns}.chunks.{job}", passive=True)
            return q.method.message_count, q.method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return None
    finally:
        if conn.is_open:
            conn.close()


def rabbit_delete_namespace(ns: str, jobs: tuple[str, ...] = ()) -> None:
    """Deletes the namespace's dead-letter queue, the queues of `jobs` and the exchange
    (missing ones are fine). A namespace whose jobs all ended is better deleted whole with
    `volley namespace delete` ([`delete_namespace`])."""
    import pika.exceptions

    conn = _amqp()
    try:
        for q in [f"{ns}.chunks.{job}" for job in jobs] + [f"{ns}.dead"]:
            ch = conn.channel()
            try:
                ch.queue_delete(queue=q)
            except pika.exceptions.ChannelClosedByBroker:
                pass
            if ch.is_open:
                ch.close()
        ch = conn.channel()
        try:
            ch.exchange_delete(exchange=ns)
        except pika.exceptions.ChannelClosedByBroker:
            pass
    finally:
        if conn.is_open:
            conn.close()


def delete_namespace(ns: str, jobs: tuple[str, ...] = ()) -> None:
    """Leaves nothing of the namespace behind: `volley namespace delete` (every queue,
    exchange and key, refused while a job runs), else queue by queue and key by key."""
    rc, _, _ = run_quiet([binary("volley"), "namespace", "delete", ns], timeout=60)
    if rc != 0:
        rabbit_delete_namespace(ns, jobs)
        redis_delete_namespace(ns)


def live_workers(ns: str) -> int:
    """Workers of the namespace whose last beat says `running` (`volley workers --json`):
    connected to RabbitMQ and Redis, following the active jobs' queues."""
    rc, out, _ = run_quiet([binary("volley"), "workers", "--json"], timeout=30,
                           env={"VOLLEY_NAMESPACE": ns})
    if rc != 0:
        return 0
    try:
        beats = json.loads(out)
    except ValueError:
        return 0
    return sum(1 for b in beats if b.get("state") == "running")


def wait_workers(ns: str, n: int, timeout: float = 30) -> bool:
    """Waits for `n` running workers. Workers consume a job's queue within a second of the
    job's registration, so a job produced after this is taken at once."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if live_workers(ns) >= n:
            return True
        time.sleep(0.2)
    return False


# --- inputs and specs --------------------------------------------------------------------


def input_file(records: int) -> Path:
    """bench/data/records-N.jsonl, generated once and reused."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"records-{records}.jsonl"
    if path.exists() and count_lines(path) == records:
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="ascii") as f:
        block = []
        for i in range(records):
            block.append('{"id":"u%08d","email":"user%d@example.com"}\n' % (i, i))
            if len(block) == 10000:
                f.write("".join(block))
                block.clear()
        f.write("".join(block))
    tmp.rename(path)
    return path


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while True:
            buf = f.read(1 << 20)
            if not buf:
                return n
            n += buf.count(b"\n")


def write_spec(path: Path, name: str, url: str, per_worker: int, body: str = "none",
               chunk: int = 100) -> Path:
    path.write_text(
        f'name = "{name}"\n\n'
        f"[request]\nurl = \"{url}\"\n\n"
        f"[concurrency]\nper_worker = {per_worker}\n\n"
        f"[chunking]\nsize = {chunk}\n\n"
        f'[result]\nbody = "{body}"\n'
    )
    return path

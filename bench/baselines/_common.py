"""What both seed baselines share: arguments, reading the JSONL, one call, the results file.

Written the way users of the seed script write it: asyncio + aiohttp, one ClientSession,
`{id}` put into the URL, the body read, one JSON line per record. The connector's limit is set
to N (aiohttp's default of 100 connections would otherwise cap every run at 100 in flight).
"""

import argparse
import json
import time
import urllib.parse

import aiohttp


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="URL template with {id}")
    p.add_argument("--input", required=True, help="JSONL records with an id field")
    p.add_argument("--out", required=True, help="results JSONL")
    p.add_argument("--concurrency", type=int, default=200)
    return p.parse_args()


def read_records(path):
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


def session(concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=30)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def call(http, url_template, record):
    rid = str(record.get("id"))
    url = url_template.replace("{id}", urllib.parse.quote(rid, safe=""))
    started = time.monotonic()
    try:
        async with http.get(url) as resp:
            await resp.read()
            ok = 200 <= resp.status < 300
            return {"id": rid, "ok": ok, "status": resp.status,
                    "latency_ms": round((time.monotonic() - started) * 1000), "error": None}
    except Exception as e:  # noqa: BLE001 - a result line per record, whatever happened
        return {"id": rid, "ok": False, "status": None,
                "latency_ms": round((time.monotonic() - started) * 1000), "error": repr(e)}


def write_results(path, results):
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r))
            f.write("\n")


def summary(results, elapsed):
    ok = sum(1 for r in results if r["ok"])
    print(json.dumps({"records": len(results), "ok": ok, "failed": len(results) - ok,
                      "elapsed_s": elapsed}))
    return 0 if ok == len(results) else 1

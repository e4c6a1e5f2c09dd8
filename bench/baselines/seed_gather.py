"""The seed approach, literal flavour: gather one chunk of N records, wait for all of it, then
the next chunk (each chunk waits for its slowest call), then the results written as JSONL."""

import asyncio
import sys
import time

from _common import call, parse_args, read_records, session, summary, write_results


async def main(args):
    records = read_records(args.input)
    started = time.monotonic()
    results = []
    async with session(args.concurrency) as http:
        for i in range(0, len(records), args.concurrency):
            chunk = records[i:i + args.concurrency]
            results.extend(await asyncio.gather(*(call(http, args.url, r) for r in chunk)))
    write_results(args.out, results)
    return summary(results, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(__doc__))))

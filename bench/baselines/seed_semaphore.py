"""The seed approach, semaphore flavour: one task per record, asyncio.Semaphore(N) around each
call, asyncio.gather over all of them, then the results written as JSONL."""

import asyncio
import sys
import time

from _common import call, parse_args, read_records, session, summary, write_results


async def main(args):
    records = read_records(args.input)
    sem = asyncio.Semaphore(args.concurrency)
    started = time.monotonic()
    async with session(args.concurrency) as http:

        async def one(record):
            async with sem:
                return await call(http, args.url, record)

        results = await asyncio.gather(*(one(r) for r in records))
    write_results(args.out, results)
    return summary(results, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(__doc__))))

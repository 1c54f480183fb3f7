#!/usr/bin/env python3
"""The peer of presage's Redis publish benchmark: redis-py pipelining SETs.

Reads `key<TAB>value` lines (the keys and values presage wrote, dumped by
`crates/presage-store/benches/redis_publish.rs`), then for each run: FLUSHALL, and
SET every row with pipelines of 8,192 commands (no transaction), timed. Prints
`rows_per_second N` per run. This is how a Python materialisation (Feast's Redis
online store, for one) writes rows once it pipelines.

    pip install redis hiredis
    python3 benches/redis_peer.py --port 6379 --input rows.tsv --runs 5
"""

import argparse
import time

import redis

PIPELINE = 8192


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    rows = []
    with open(args.input, "rb") as f:
        for line in f:
            key, value = line.rstrip(b"\n").split(b"\t", 1)
            rows.append((key, value))

    r = redis.Redis(host="127.0.0.1", port=args.port)
    hiredis = redis.utils.HIREDIS_AVAILABLE
    print(f"peer redis-py {redis.__version__}{' + hiredis' if hiredis else ''}")
    for _ in range(args.runs):
        r.flushall()
        started = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for i, (key, value) in enumerate(rows, 1):
            pipe.set(key, value)
            if i % PIPELINE == 0:
                pipe.execute()
        pipe.execute()
        seconds = time.perf_counter() - started
        print(f"rows_per_second {len(rows) / seconds:.0f}", flush=True)


if __name__ == "__main__":
    main()

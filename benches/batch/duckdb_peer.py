#!/usr/bin/env python3
"""Batch prediction with DuckDB -> XGBoost -> redis-py (a peer of `presage run`).

features: one DuckDB SQL query over read_parquet() of users.parquet and the
          hive-partitioned events/ folder (all cores), fetched as Arrow;
scoring:  the XGBoost JSON model, `Booster.predict` on a DMatrix (nthread = all cores);
writing:  `SET bench:<user_id> <probability>` for every user into a redis-server (which
          benches/batch_peers.py starts, fresh, on a loopback port), with redis-py
          pipelines of 10,000 commands (no transaction).

Prints its stage times as JSON on its last stdout line. Run by benches/batch_peers.py:
    python3 benches/batch/duckdb_peer.py --data DIR --model model.json --redis-port PORT [--distinct]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from features import Stages, duckdb_arrow, duckdb_sql, feature_names  # noqa: E402

PIPELINE = 10_000
KEY_PREFIX = "bench:"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="folder with users.parquet and events/")
    p.add_argument("--model", required=True, help="the XGBoost JSON model")
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--distinct", action="store_true")
    args = p.parse_args()
    stages = Stages()

    import duckdb
    import numpy as np
    import redis
    import xgboost as xgb

    stages.mark("imports")
    threads = os.cpu_count()
    names = feature_names(args.distinct)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    users = f"read_parquet('{os.path.join(args.data, 'users.parquet')}')"
    events = f"read_parquet('{os.path.join(args.data, 'events', '*', '*.parquet')}', hive_partitioning = true)"
    feats = duckdb_arrow(con, duckdb_sql(users, events, args.distinct))
    con.close()
    stages.mark("features")

    booster = xgb.Booster(model_file=args.model)
    booster.set_param({"nthread": threads})
    X = np.column_stack([feats.column(n).to_numpy() for n in names]).astype(np.float32)
    probs = booster.predict(xgb.DMatrix(X, nthread=threads))
    del X
    stages.mark("scoring")

    r = redis.Redis(host="127.0.0.1", port=args.redis_port)
    keys = feats.column("user_id")
    n = len(probs)
    for lo in range(0, n, PIPELINE):
        pipe = r.pipeline(transaction=False)
        for key, prob in zip(keys.slice(lo, PIPELINE).to_pylist(), probs[lo:lo + PIPELINE].tolist()):
            pipe.set(KEY_PREFIX + key, prob)
        pipe.execute()
    r.close()
    stages.mark("writing")
    stages.report(rows=n, versions={"duckdb": duckdb.__version__, "xgboost": xgb.__version__,
                                    "redis-py": redis.__version__,
                                    "hiredis": bool(redis.utils.HIREDIS_AVAILABLE)})


if __name__ == "__main__":
    main()

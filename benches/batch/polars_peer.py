#!/usr/bin/env python3
"""Batch prediction with polars -> onnxruntime -> Parquet (a peer of `presage run`).

features: polars lazy (scan_parquet of users.parquet and the hive-partitioned events/
          folder, filter, group_by/agg, left join from users), collected in memory;
scoring:  the ONNX model (XGBoost converted with onnxmltools) in onnxruntime on every
          core, in chunks of 1,000,000 rows;
writing:  `user_id, probability` (float32) to a Parquet file with polars.

Prints its stage times as JSON on its last stdout line. Run by benches/batch_peers.py:
    python3 benches/batch/polars_peer.py --data DIR --model model.onnx --out predictions.parquet [--distinct]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from features import Stages, feature_names, polars_features  # noqa: E402

CHUNK = 1_000_000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="folder with users.parquet and events/")
    p.add_argument("--model", required=True, help="the ONNX model")
    p.add_argument("--out", required=True)
    p.add_argument("--distinct", action="store_true")
    args = p.parse_args()
    stages = Stages()

    import numpy as np
    import onnxruntime as ort
    import polars as pl

    stages.mark("imports")
    names = feature_names(args.distinct)
    users = pl.scan_parquet(os.path.join(args.data, "users.parquet"))
    events = pl.scan_parquet(os.path.join(args.data, "events"), hive_partitioning=True)
    feats = polars_features(users, events, args.distinct).collect()
    stages.mark("features")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count()
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    prob_output = session.get_outputs()[1].name  # (label, probabilities)
    X = feats.select(names).to_numpy().astype(np.float32)
    probs = np.empty(len(X), dtype=np.float32)
    for lo in range(0, len(X), CHUNK):
        out = session.run([prob_output], {input_name: X[lo:lo + CHUNK]})[0]
        probs[lo:lo + CHUNK] = out[:, 1]
    del X
    stages.mark("scoring")

    tmp = args.out + ".tmp"
    pl.DataFrame({"user_id": feats["user_id"], "probability": probs}).write_parquet(tmp)
    os.replace(tmp, args.out)
    stages.mark("writing")
    stages.report(rows=len(probs), versions={"polars": pl.__version__, "onnxruntime": ort.__version__})


if __name__ == "__main__":
    main()

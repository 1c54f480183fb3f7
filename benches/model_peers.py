#!/usr/bin/env python3
"""presage's tree evaluator against the libraries people score with today.

Scores the same generated rows with presage (the `score` bench of presage-model,
built in release by `cargo bench`) and with each peer, in one run, and prints
rows/s and the presage/peer ratio (medians of --runs runs):

  bench_xgb_500x8 model.onnx  presage vs onnxruntime (same file, intra_op threads matched)
  bench_xgb_500x8 model.json  presage vs XGBoost Booster.inplace_predict (nthread matched)
  a LightGBM model trained here (500 trees, num_leaves 255, 50 features)
                  model.txt   presage vs LightGBM Booster.predict (num_threads matched)
  sk_mlp_classifier model.onnx presage (dense engine) vs onnxruntime, the non-tree case

Rows: input.parquet of the benchmark fixture resampled with noise (seeded, so every
run scores the same matrix). Each peer's predictions are compared with presage's.

Usage: python3 benches/model_peers.py [--rows 1000000] [--runs 5] [--threads 1,2]
Needs: numpy pyarrow onnxruntime xgboost lightgbm, and cargo.
Fixtures: $PRESAGE_FIXTURES, or the workspace's fixtures/models.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get("PRESAGE_FIXTURES") or os.path.join(ROOT, "fixtures", "models")
BENCH = os.path.join(FIXTURES, "bench_xgb_500x8")
SEED = 20240601


def generate_rows(n, fixture=BENCH):
    """The fixture's 2000 rows resampled with 5% per-feature noise; NaNs kept."""
    table = pq.read_table(os.path.join(fixture, "input.parquet"))
    cols = [c for c in table.column_names if c.startswith("f")]
    base = np.column_stack([table.column(c).to_numpy() for c in cols]).astype(np.float32)
    rng = np.random.default_rng(SEED)
    idx = rng.integers(0, len(base), n)
    scale = np.nanstd(base, axis=0) * 0.05
    X = base[idx] + rng.normal(size=(n, base.shape[1])).astype(np.float32) * scale.astype(np.float32)
    return np.ascontiguousarray(X, dtype=np.float32)


def train_lightgbm(X, path):
    """500 trees, 255 leaves, on the first 50k rows with a synthetic binary label."""
    import lightgbm as lgb
    rng = np.random.default_rng(SEED + 1)
    Xt = X[:50_000]
    w = rng.normal(size=X.shape[1])
    z = Xt @ w / np.sqrt(X.shape[1]) + 0.5 * np.sin(Xt[:, 1] * 2) + 0.3 * Xt[:, 2] * Xt[:, 3]
    y = (z + rng.normal(scale=0.7, size=len(Xt)) > 0).astype(np.int32)
    params = {"objective": "binary", "num_leaves": 255, "learning_rate": 0.05, "min_data_in_leaf": 20,
              "seed": 0, "deterministic": True, "verbose": -1, "num_threads": os.cpu_count()}
    booster = lgb.train(params, lgb.Dataset(Xt, label=y), num_boost_round=500)
    booster.save_model(path)
    return booster


def timed(fn, runs):
    fn()  # warm-up (and first-call allocations)
    seconds = []
    out = None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), out


def run_presage(model, rows_file, n_features, runs, threads, predictions):
    cmd = ["cargo", "bench", "-q", "-p", "presage-model", "--bench", "score", "--",
           "--model", model, "--rows", rows_file, "--features", str(n_features),
           "--runs", str(runs), "--threads", ",".join(map(str, threads)),
           "--write-predictions", predictions]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    results = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["threads"]] = r["rows_per_s"]
    return results, np.fromfile(predictions, dtype=np.float32)


def onnxruntime_rate(X, path, runs, t):
    """rows/s and the headline number per row (as the score bench writes it)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = t
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sec, res = timed(lambda: sess.run(None, {name: X}), runs)
    probabilities = np.asarray(res[1])
    column = 1 if probabilities.shape[1] == 2 else 0
    return len(X) / sec, probabilities[:, column]


def peers(X, onnx_path, json_path, txt_path, runs, threads):
    import xgboost as xgb
    import lightgbm as lgb
    n = len(X)
    out = {}
    for t in threads:
        out[("onnx", t)] = onnxruntime_rate(X, onnx_path, runs, t)

        booster = xgb.Booster()
        booster.load_model(json_path)
        booster.set_param({"nthread": t})
        sec, res = timed(lambda: booster.inplace_predict(X), runs)
        out[("json", t)] = (n / sec, np.asarray(res))

        lgbm = lgb.Booster(model_file=txt_path)
        sec, res = timed(lambda: lgbm.predict(X, num_threads=t), runs)
        out[("txt", t)] = (n / sec, np.asarray(res))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--only-mlp", action="store_true", help="only the MLP against onnxruntime")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]

    import onnxruntime, xgboost, lightgbm
    with tempfile.TemporaryDirectory(prefix="presage-bench-") as tmp:
        print(f"generating {a.rows:,} rows ...", file=sys.stderr)
        X = generate_rows(a.rows)
        rows_file = os.path.join(tmp, "rows.f32")
        X.tofile(rows_file)
        txt_path = os.path.join(tmp, "lgbm_500x255.txt")
        if not a.only_mlp:
            print("training the LightGBM model (500 trees, 255 leaves) ...", file=sys.stderr)
            train_lightgbm(X, txt_path)
        models = {
            "onnx": (os.path.join(BENCH, "model.onnx"), "bench_xgb_500x8 `model.onnx`",
                     f"onnxruntime {onnxruntime.__version__}"),
            "json": (os.path.join(BENCH, "model.json"), "bench_xgb_500x8 `model.json`",
                     f"XGBoost {xgboost.__version__} `inplace_predict`"),
            "txt": (txt_path, "LightGBM 500 trees × 255 leaves `model.txt`",
                    f"LightGBM {lightgbm.__version__} `predict`"),
        }
        ours = {}
        theirs = {}
        if a.only_mlp:
            models = {}
        for key, (path, _, _) in models.items():
            print(f"presage on {path} ...", file=sys.stderr)
            ours[key] = run_presage(path, rows_file, X.shape[1], a.runs, threads,
                                    os.path.join(tmp, f"presage_{key}.f32"))
        if not a.only_mlp:
            print("peers ...", file=sys.stderr)
            theirs = peers(X, models["onnx"][0], models["json"][0], txt_path, a.runs, threads)

        mlp = os.path.join(FIXTURES, "sk_mlp_classifier")
        X_mlp = generate_rows(a.rows, mlp)
        mlp_rows = os.path.join(tmp, "mlp.f32")
        X_mlp.tofile(mlp_rows)
        models["mlp"] = (os.path.join(mlp, "model.onnx"), "sk_mlp_classifier `model.onnx`",
                         f"onnxruntime {onnxruntime.__version__}")
        print("presage and onnxruntime on the MLP ...", file=sys.stderr)
        ours["mlp"] = run_presage(models["mlp"][0], mlp_rows, X_mlp.shape[1], a.runs, threads,
                                  os.path.join(tmp, "presage_mlp.f32"))
        for t in threads:
            theirs[("mlp", t)] = onnxruntime_rate(X_mlp, models["mlp"][0], a.runs, t)

    print(f"\n{a.rows:,} rows × {X.shape[1]} features, median of {a.runs} runs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("| model | peer | threads | peer rows/s | presage rows/s | presage / peer | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key, (_, label, peer) in models.items():
        presage_rates, presage_pred = ours[key]
        for t in threads:
            peer_rate, peer_pred = theirs[(key, t)]
            diff = float(np.max(np.abs(presage_pred.astype(np.float64) - peer_pred.astype(np.float64))))
            ours_rate = presage_rates[t]
            print(f"| {label} | {peer} | {t} | {peer_rate:,.0f} | {ours_rate:,.0f} | "
                  f"{ours_rate / peer_rate:.2f}× | {diff:.1e} |")


if __name__ == "__main__":
    main()

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

--only-wrapped: the ensemble inside a larger ONNX graph. An XGBRegressor with
objective count:poisson of the same size as bench_xgb_500x8 (500 trees, depth 8,
learning_rate 0.05, 50 features), trained here, whose onnxmltools ONNX is
TreeEnsembleRegressor -> Exp -> Mul (presage engine `tract+tree`):
                  model.onnx  presage vs onnxruntime
                  model.json  presage (the bare ensemble, engine `tree`) vs XGBoost
  and the ratio presage on the ONNX / presage on the JSON.

--only-strings: scikit-learn ColumnTransformer pipelines with string inputs
(sk_column_transformer, sk_column_transformer_trees), input.parquet resampled to
--rows rows (seeded, strings stay strings, the unseen ones too): presage reads them
from a Parquet file into Arrow batches and times BatchScorer::score over them
(string encoding included); onnxruntime gets one array per named input.

Rows: input.parquet of the benchmark fixture resampled with noise (seeded, so every
run scores the same matrix). Each peer's predictions are compared with presage's.
The --only-* flags combine; with none, every part runs.

Usage: python3 benches/model_peers.py [--rows 1000000] [--runs 5] [--threads 1,2]
         [--only-mlp] [--only-wrapped] [--only-strings]
Needs: numpy pyarrow onnxruntime xgboost lightgbm (and onnxmltools, onnx for
--only-wrapped), and cargo.
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


def train_poisson(X, json_path, onnx_path):
    """bench_xgb_500x8's size as XGBRegressor(count:poisson), on the first 50k rows with
    a count label; saved as XGBoost JSON and as onnxmltools' ONNX (returns its ops)."""
    import onnx
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from xgboost import XGBRegressor
    rng = np.random.default_rng(SEED + 2)
    Xt = X[:50_000]
    w = rng.normal(size=X.shape[1])
    z = Xt @ w / np.sqrt(X.shape[1]) + 0.5 * np.sin(Xt[:, 1] * 2) + 0.3 * Xt[:, 2] * Xt[:, 3]
    y = rng.poisson(np.exp(np.clip(0.5 * z, -5, 5))).astype(np.float32)
    model = XGBRegressor(objective="count:poisson", n_estimators=500, max_depth=8, learning_rate=0.05,
                         random_state=0, n_jobs=os.cpu_count())
    model.fit(Xt, y)
    model.get_booster().save_model(json_path)
    onx = convert_xgboost(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                          target_opset=15)
    onnx.save(onx, onnx_path)
    return [n.op_type for n in onx.graph.node]


def resample_table(fixture, n, path):
    """A named-input fixture's input.parquet (minus `key`) resampled to n rows, seeded;
    written to `path` and returned as one numpy column per input."""
    import pyarrow as pa
    meta = json.load(open(os.path.join(fixture, "meta.json")))
    names = [i["name"] for i in meta["inputs"]]
    table = pq.read_table(os.path.join(fixture, "input.parquet"), columns=names)
    idx = np.random.default_rng(SEED + 3).integers(0, table.num_rows, n)
    table = table.take(pa.array(idx))
    pq.write_table(table, path)
    feeds = {}
    for i in meta["inputs"]:
        col = table.column(i["name"])
        if i["type"] == "string":
            feeds[i["name"]] = np.array(col.to_pylist(), dtype=object).reshape(-1, 1)
        else:
            feeds[i["name"]] = col.to_numpy().astype(np.float32).reshape(-1, 1)
    return feeds, table.schema


def timed(fn, runs):
    fn()  # warm-up (and first-call allocations)
    seconds = []
    out = None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), out


def run_presage(model, rows_file, n_features, runs, threads, predictions, lines=None):
    """rows/s per thread count and the predictions; with `n_features` None, `rows_file` is
    a Parquet file scored through BatchScorer. `lines` collects the bench's JSON lines."""
    source = (["--parquet", rows_file] if n_features is None
              else ["--rows", rows_file, "--features", str(n_features)])
    cmd = ["cargo", "bench", "-q", "-p", "presage-model", "--bench", "score", "--",
           "--model", model, *source,
           "--runs", str(runs), "--threads", ",".join(map(str, threads)),
           "--write-predictions", predictions]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    results = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["threads"]] = r["rows_per_s"]
            if lines is not None:
                lines.append(r)
    return results, np.fromfile(predictions, dtype=np.float32)


def onnxruntime_rate(X, path, runs, t):
    """rows/s and the headline number per row (as the score bench writes it)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = t
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = X if isinstance(X, dict) else {sess.get_inputs()[0].name: X}
    n = len(next(iter(feeds.values())))
    sec, res = timed(lambda: sess.run(None, feeds), runs)
    if len(res) == 1:  # a regressor: the value
        return n / sec, np.asarray(res[0]).reshape(n, -1)[:, 0]
    probabilities = np.asarray(res[1])
    column = 1 if probabilities.shape[1] == 2 else 0
    return n / sec, probabilities[:, column]


def xgboost_rate(X, json_path, runs, threads):
    """Rows/s and predictions of XGBoost's inplace_predict with `threads` threads."""
    import xgboost as xgb
    booster = xgb.Booster()
    booster.load_model(json_path)
    booster.set_param({"nthread": threads})
    sec, res = timed(lambda: booster.inplace_predict(X), runs)
    return len(X) / sec, np.asarray(res)


def peers(X, onnx_path, json_path, txt_path, runs, threads):
    import lightgbm as lgb
    n = len(X)
    out = {}
    for t in threads:
        out[("onnx", t)] = onnxruntime_rate(X, onnx_path, runs, t)

        out[("json", t)] = xgboost_rate(X, json_path, runs, t)

        lgbm = lgb.Booster(model_file=txt_path)
        sec, res = timed(lambda: lgbm.predict(X, num_threads=t), runs)
        out[("txt", t)] = (n / sec, np.asarray(res))
    return out


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def wrapped(X, tmp, runs, threads):
    """Part a: the poisson model as ONNX (ensemble -> Exp -> Mul) and as XGBoost JSON."""
    import onnxruntime
    import xgboost as xgb
    json_path = os.path.join(tmp, "xgb_poisson_500x8.json")
    onnx_path = os.path.join(tmp, "xgb_poisson_500x8.onnx")
    print("training the count:poisson XGBoost model (500 trees, depth 8) ...", file=sys.stderr)
    ops = train_poisson(X, json_path, onnx_path)
    print(f"ONNX graph: {' -> '.join(ops)}", file=sys.stderr)
    assert ops[0] == "TreeEnsembleRegressor" and len(ops) > 1 and "Exp" in ops, ops
    rows_file = os.path.join(tmp, "rows.f32")
    ours, lines = {}, []
    for key, path in (("onnx", onnx_path), ("json", json_path)):
        print(f"presage on {path} ...", file=sys.stderr)
        ours[key] = run_presage(path, rows_file, X.shape[1], runs, threads,
                                os.path.join(tmp, f"presage_poisson_{key}.f32"), lines)
    engines = {os.path.splitext(l["model"])[1][1:]: l["engine_kind"] for l in lines}
    assert engines == {"onnx": "tract+tree", "json": "tree"}, engines
    print("onnxruntime and XGBoost on the poisson model ...", file=sys.stderr)
    theirs = {}
    for t in threads:
        theirs[("onnx", t)] = onnxruntime_rate(X, onnx_path, runs, t)
        theirs[("json", t)] = xgboost_rate(X, json_path, runs, t)

    print(f"\nwrapped ensemble: {len(X):,} rows × {X.shape[1]} features, median of {runs} runs; "
          f"ONNX graph {' → '.join(ops)}\n")
    print("| model | engine | threads | rows/s | max abs diff vs presage `model.json` |")
    print("|---|---|---:|---:|---:|")
    labels = {"onnx": ("presage `model.onnx`", f"onnxruntime {onnxruntime.__version__} `model.onnx`"),
              "json": ("presage `model.json`", f"XGBoost {xgb.__version__} `inplace_predict` `model.json`")}
    reference = ours["json"][1]
    for t in threads:
        for key in ("onnx", "json"):
            ours_label, peer_label = labels[key]
            print(f"| count:poisson 500×8 | {ours_label} (`{engines[key]}`) | {t} | {ours[key][0][t]:,.0f} | "
                  f"{max_diff(ours[key][1], reference):.1e} |")
            print(f"| count:poisson 500×8 | {peer_label} | {t} | {theirs[(key, t)][0]:,.0f} | "
                  f"{max_diff(theirs[(key, t)][1], reference):.1e} |")
    print("\n| threads | presage ONNX / presage JSON (goal ≥ 0.9) | presage ONNX / onnxruntime (goal ≥ 2) "
          "| presage JSON / XGBoost |")
    print("|---:|---:|---:|---:|")
    for t in threads:
        onnx_rate = ours["onnx"][0][t]
        print(f"| {t} | {onnx_rate / ours['json'][0][t]:.2f}× | {onnx_rate / theirs[('onnx', t)][0]:.2f}× | "
              f"{ours['json'][0][t] / theirs[('json', t)][0]:.2f}× |")
    # relative differences too: the values are counts, so the absolute diff scales with them
    rel = np.max(np.abs(ours["onnx"][1] - reference) / np.maximum(np.abs(reference), 1e-6))
    print(f"\nmax relative diff presage ONNX vs JSON: {rel:.1e}; "
          f"predictions range {reference.min():.3g} .. {reference.max():.3g}")


def strings(n, tmp, runs, threads):
    """Part b: ColumnTransformer pipelines with string inputs, from Parquet through BatchScorer."""
    import onnxruntime
    rows = []
    for name in ("sk_column_transformer", "sk_column_transformer_trees"):
        fixture = os.path.join(FIXTURES, name)
        parquet = os.path.join(tmp, f"{name}.parquet")
        print(f"resampling {name} to {n:,} rows ...", file=sys.stderr)
        feeds, schema = resample_table(fixture, n, parquet)
        model = os.path.join(fixture, "model.onnx")
        lines = []
        print(f"presage on {model} ...", file=sys.stderr)
        ours = run_presage(model, parquet, None, runs, threads, os.path.join(tmp, f"presage_{name}.f32"), lines)
        print(f"onnxruntime on {model} ...", file=sys.stderr)
        for t in threads:
            peer_rate, peer_pred = onnxruntime_rate(feeds, model, runs, t)
            line = next(l for l in lines if l["threads"] == t)
            rows.append((name, line, t, peer_rate, ours[0][t], max_diff(ours[1], peer_pred)))
        del feeds
    line = rows[0][1]
    print(f"\nstring inputs: {n:,} rows, median of {runs} runs; presage: Parquet read into "
          f"{line['batches']} batches of {line['batch_rows']} rows (string columns {line['string_columns']}), "
          f"BatchScorer::score timed over all of them; onnxruntime {onnxruntime.__version__}: one call "
          f"on [N,1] arrays (object for strings, float32 for numbers)\n")
    print("| model | threads | onnxruntime rows/s | presage rows/s | presage / onnxruntime | "
          "presage model alone rows/s | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, line, t, peer_rate, ours_rate, diff in rows:
        print(f"| {name} `model.onnx` (`{line['engine_kind']}`) | {t} | {peer_rate:,.0f} | {ours_rate:,.0f} | "
              f"**{ours_rate / peer_rate:.2f}×** | {line['model_rows_per_s']:,.0f} | {diff:.1e} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--only-mlp", action="store_true", help="only the MLP against onnxruntime")
    ap.add_argument("--only-wrapped", action="store_true",
                    help="only the count:poisson ensemble inside an ONNX graph against its bare form")
    ap.add_argument("--only-strings", action="store_true",
                    help="only the ColumnTransformer pipelines with string inputs")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    everything = not (a.only_mlp or a.only_wrapped or a.only_strings)
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    if everything or a.only_mlp:
        peer_table(a, threads, trees=everything)
    with tempfile.TemporaryDirectory(prefix="presage-bench-") as tmp:
        if everything or a.only_wrapped:
            print(f"generating {a.rows:,} rows ...", file=sys.stderr)
            X = generate_rows(a.rows)
            X.tofile(os.path.join(tmp, "rows.f32"))
            wrapped(X, tmp, a.runs, threads)
            del X
        if everything or a.only_strings:
            strings(a.rows, tmp, a.runs, threads)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


def peer_table(a, threads, trees):
    """The tree models against their peers (with `trees`) and the MLP against onnxruntime."""
    import onnxruntime, xgboost, lightgbm
    with tempfile.TemporaryDirectory(prefix="presage-bench-") as tmp:
        print(f"generating {a.rows:,} rows ...", file=sys.stderr)
        X = generate_rows(a.rows)
        rows_file = os.path.join(tmp, "rows.f32")
        X.tofile(rows_file)
        txt_path = os.path.join(tmp, "lgbm_500x255.txt")
        if trees:
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
        if not trees:
            models = {}
        for key, (path, _, _) in models.items():
            print(f"presage on {path} ...", file=sys.stderr)
            ours[key] = run_presage(path, rows_file, X.shape[1], a.runs, threads,
                                    os.path.join(tmp, f"presage_{key}.f32"))
        if trees:
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

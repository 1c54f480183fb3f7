"""Train the quickstart's churn model on the quickstart's own data and export it to ONNX.

    pip install numpy pyarrow scikit-learn skl2onnx onnx onnxruntime "datafusion==55.*"
    presage quickstart --dir demo --no-run      # writes the data and presage.toml, runs nothing
    python examples/churn/train.py demo         # writes examples/churn/model.onnx

The features are exactly the ones presage computes: the feature set's SQL is read from
DIR/presage.toml and run by DataFusion (the Python bindings of the engine presage
embeds), rendered at several past cutoffs. A (user, cutoff) row is labelled 1 when the
user cancels within 14 days after the cutoff. Cutoffs are weekly from day 30 of the
90-day window (so the 30-day windows are full) through the last one whose 14-day
labels end before the hold-out cutoff (`end` - 14 days); the model is a standard
scaler and a logistic regression, which export to the ONNX-ML ops `Scaler` and
`LinearClassifier`.

It prints the hold-out ROC AUC with fresh features and with the same users' features
7 days stale (as of cutoff - 7 days), the price of running the job a week late.
"""

import argparse
import datetime as dt
import pathlib
import sys
import tomllib

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = "user_activity"
MODEL = "churn"
JOB = "churn"
WINDOW_DAYS = 90
HORIZON = dt.timedelta(days=14)
STALE = dt.timedelta(days=7)
DAY = dt.timedelta(days=1)
HERE = pathlib.Path(__file__).resolve().parent


def register(ctx, name, path, fmt):
    """Registers a presage source the way presage does: format from `format` or the extension."""
    fmt = fmt or {"parquet": "parquet", "pq": "parquet", "csv": "csv", "json": "json",
                  "jsonl": "json", "ndjson": "json"}[path.rsplit(".", 1)[-1].lower()]
    if fmt == "parquet":
        ctx.register_parquet(name, path)
    elif fmt == "csv":
        ctx.register_csv(name, path, has_header=True)
    else:
        ctx.register_json(name, path)


def literal(instant):
    """`{{as_of}}` as presage renders it: a naive UTC timestamp literal."""
    return "TIMESTAMP '%s'" % instant.strftime("%Y-%m-%dT%H:%M:%S.%f")


class Project:
    def __init__(self, root):
        root = pathlib.Path(root)
        with open(root / "presage.toml", "rb") as f:
            self.config = tomllib.load(f)
        self.ctx = SessionContext()
        for name, source in self.config["sources"].items():
            register(self.ctx, name, str(root / source["path"]), source.get("format"))
        features = self.config["features"][FEATURES]
        self.key = features["key"]
        self.sql = features["sql"]
        self.inputs = self.config["models"][MODEL]["inputs"]
        # The data ends at the first midnight after the last event.
        last = self.ctx.sql("SELECT max(ts) AS t FROM events").to_arrow_table()["t"][0].as_py()
        self.end = dt.datetime.combine(last.date() + DAY, dt.time())
        self.start = self.end - WINDOW_DAYS * DAY

    def features(self, as_of):
        """The feature rows at `as_of`: (keys, float64 matrix in model input order)."""
        # A batch row: the prediction is made at the data cutoff, so `{{now}}` is it too.
        sql = self.sql.replace("{{as_of}}", literal(as_of)).replace("{{now}}", literal(as_of))
        table = self.ctx.sql(sql).to_arrow_table().sort_by(self.key)
        x = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in self.inputs])
        if np.isnan(x).any():
            sys.exit(f"features at {as_of} have missing values")
        return table[self.key], x

    def labels(self, keys, cutoff):
        """1 where the user cancels within the horizon after `cutoff`."""
        cancels = self.ctx.sql(
            f"SELECT {self.key} AS key FROM events WHERE kind = 'cancel' "
            f"AND ts >= {literal(cutoff)} AND ts < {literal(cutoff + HORIZON)}"
        ).to_arrow_table()["key"]
        # Parquet strings come back as string views, CSV ones as strings.
        cancels = pc.cast(cancels, pa.string())
        return pc.is_in(pc.cast(keys, pa.string()), value_set=cancels).to_numpy(zero_copy_only=False).astype(np.int64)


def training_cutoffs(start, holdout):
    """Weekly from day 30 (so 30-day windows are full) while the labels end by `holdout`."""
    cutoffs = []
    cutoff = start + 30 * DAY
    while cutoff + HORIZON <= holdout:
        cutoffs.append(cutoff)
        cutoff += 7 * DAY
    return cutoffs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a project written by `presage quickstart --no-run`")
    parser.add_argument("--out", default=str(HERE / "model.onnx"))
    args = parser.parse_args()

    project = Project(args.dir)
    holdout = project.end - HORIZON
    train_cutoffs = training_cutoffs(project.start, holdout)
    print(f"data {project.start:%Y-%m-%d} to {project.end:%Y-%m-%d}; inputs: {', '.join(project.inputs)}")

    xs, ys = [], []
    for cutoff in train_cutoffs:
        keys, x = project.features(cutoff)
        y = project.labels(keys, cutoff)
        print(f"train cutoff {cutoff:%Y-%m-%d}: {len(y)} users, {y.mean():.2%} cancel within 14 days")
        xs.append(x)
        ys.append(y)
    x_train, y_train = np.vstack(xs), np.concatenate(ys)

    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=1000))])
    model.fit(x_train, y_train)
    coefs = dict(zip(project.inputs, model.named_steps["classify"].coef_[0]))
    print("standardised coefficients: " + ", ".join(f"{k} {v:+.2f}" for k, v in coefs.items()))

    # Hold-out: the last cutoff whose labels are complete, after every training label.
    keys, x_fresh = project.features(holdout)
    y = project.labels(keys, holdout)
    stale_keys, x_stale_all = project.features(holdout - STALE)
    # The same users, scored on the feature row a run 7 days earlier produced; users
    # who signed up in between have no stale row and are left out of both numbers.
    position = {k: i for i, k in enumerate(stale_keys.to_pylist())}
    both = np.array([k in position for k in keys.to_pylist()])
    x_stale = x_stale_all[[position[k] for k in np.asarray(keys.to_pylist())[both]]]
    p_fresh = model.predict_proba(x_fresh)[:, 1]
    p_stale = model.predict_proba(x_stale)[:, 1]
    auc_all = roc_auc_score(y, p_fresh)
    auc_fresh = roc_auc_score(y[both], p_fresh[both])
    auc_stale = roc_auc_score(y[both], p_stale)
    print(f"hold-out cutoff {holdout:%Y-%m-%d}: {len(y)} users, {y.mean():.2%} cancel within 14 days")
    print(f"hold-out ROC AUC, fresh features: {auc_all:.4f}")
    print(f"same {both.sum()} users, fresh: {auc_fresh:.4f}; features 7 days stale: {auc_stale:.4f} "
          f"(drop {auc_fresh - auc_stale:.4f})")

    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, len(project.inputs)]))],
        options={id(model.named_steps["classify"]): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 1},
    )
    onnx.checker.check_model(onx)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x_fresh.astype(np.float32)})
    outputs = {o.name: v for o, v in zip(session.get_outputs(), got)}
    expected = model.predict_proba(x_fresh.astype(np.float32))
    worst = np.abs(outputs["probabilities"] - expected).max()
    print(f"onnxruntime vs scikit-learn: max |probability difference| {worst:.2e} over {len(expected)} rows")
    if worst > 1e-4:
        sys.exit("the exported model disagrees with scikit-learn")
    pathlib.Path(args.out).write_bytes(onx.SerializeToString())
    ops = sorted({n.op_type for n in onx.graph.node})
    print(f"wrote {args.out}: ops {', '.join(ops)}; outputs {', '.join(outputs)}")


if __name__ == "__main__":
    main()

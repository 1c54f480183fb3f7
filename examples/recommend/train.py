"""Train the quickstart's add-on recommender on the quickstart's own data.

    pip install numpy pyarrow lightgbm "datafusion==55.*"
    presage quickstart --dir demo --no-run        # writes the data and presage.toml, runs nothing
    python examples/recommend/train.py demo       # writes examples/recommend/addon_affinity.txt

A candidate row is an (active user, add-on) pair at a cutoff, with the features of the
`addon_candidates` feature set in DIR/presage.toml, computed by DataFusion (the Python
bindings of the engine presage embeds) exactly as presage computes them. It is labelled
1 when the user buys that add-on within 14 days after the cutoff. Cutoffs are weekly
from day 30 of the 90-day window through the last one whose labels end before the
hold-out cutoff (`end` - 14 days). The model is a LightGBM binary classifier saved in
LightGBM's text format, which presage reads natively.

On the hold-out cutoff it prints, for the users who bought an add-on in the 14 days
after it, how often one of the bought add-ons is among the user's top 3 (hit rate@3),
for the model and for recommending the three best sellers of the last 30 days.
"""

import argparse
import datetime as dt
import importlib.util
import pathlib
import sys

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HERE = pathlib.Path(__file__).resolve().parent


def _churn_trainer():
    """examples/churn/train.py, for its helpers (both scripts are called train.py)."""
    spec = importlib.util.spec_from_file_location("churn_train", HERE.parent / "churn" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_churn = _churn_trainer()
DAY, HORIZON = _churn.DAY, _churn.HORIZON
literal = _churn.literal

FEATURES = "addon_candidates"
MODEL = "addon_affinity"
TOP_K = 3
SEED = 7


class Project(_churn.Project):
    """The churn trainer's project (sources registered, the data's window), read
    for the recommender's feature set and model."""

    def __init__(self, root):
        super().__init__(root)
        features = self.config["features"][FEATURES]
        self.key, self.item, self.sql = features["key"], features["item"], features["sql"]
        self.inputs = self.config["models"][MODEL]["inputs"]

    def candidates(self, as_of):
        """Candidate rows at `as_of`, sorted by (key, item): (keys, items, float64 matrix)."""
        sql = self.sql.replace("{{as_of}}", literal(as_of)).replace("{{now}}", literal(as_of))
        table = self.ctx.sql(sql).to_arrow_table().sort_by([(self.key, "ascending"), (self.item, "ascending")])
        x = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in self.inputs])
        if np.isnan(x).any():
            sys.exit(f"candidates at {as_of} have missing values")
        keys = pc.cast(table[self.key], pa.string()).to_numpy(zero_copy_only=False)
        items = pc.cast(table[self.item], pa.string()).to_numpy(zero_copy_only=False)
        return keys, items, x

    def bought(self, since, until):
        """(user, product) pairs with an add-on purchase in [since, until)."""
        table = self.ctx.sql(
            f"SELECT DISTINCT {self.key} AS k, product AS p FROM events "
            f"WHERE kind = 'purchase' AND product IS NOT NULL "
            f"AND ts >= {literal(since)} AND ts < {literal(until)}"
        ).to_arrow_table()
        return set(zip(pc.cast(table["k"], pa.string()).to_pylist(), pc.cast(table["p"], pa.string()).to_pylist()))

    def best_sellers(self, since, until, n):
        table = self.ctx.sql(
            f"SELECT product AS p, count(*) AS n FROM events "
            f"WHERE kind = 'purchase' AND product IS NOT NULL "
            f"AND ts >= {literal(since)} AND ts < {literal(until)} GROUP BY product ORDER BY n DESC, p"
        ).to_arrow_table()
        return pc.cast(table["p"], pa.string()).to_pylist()[:n]


def labels(keys, items, bought):
    return np.fromiter(((k, i) in bought for k, i in zip(keys, items)), dtype=np.int64, count=len(keys))


def top_k(keys, items, scores, k):
    """Each user's k best items, ties broken by item as presage does."""
    order = np.lexsort((items, -scores, keys))
    best = {}
    for i in order:
        lst = best.setdefault(keys[i], [])
        if len(lst) < k:
            lst.append(items[i])
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a project written by `presage quickstart --no-run`")
    parser.add_argument("--out", default=str(HERE / "addon_affinity.txt"))
    args = parser.parse_args()

    project = Project(args.dir)
    holdout = project.end - HORIZON
    cutoffs = _churn.training_cutoffs(project.start, holdout)
    print(f"data {project.start:%Y-%m-%d} to {project.end:%Y-%m-%d}; inputs: {', '.join(project.inputs)}")

    xs, ys = [], []
    for cutoff in cutoffs:
        keys, items, x = project.candidates(cutoff)
        y = labels(keys, items, project.bought(cutoff, cutoff + HORIZON))
        print(f"train cutoff {cutoff:%Y-%m-%d}: {len(y)} candidates, {y.mean():.2%} bought within 14 days")
        xs.append(x)
        ys.append(y)
    x_train, y_train = np.vstack(xs), np.concatenate(ys)

    model = lgb.LGBMClassifier(
        n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=200,
        random_state=SEED, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1,
    )
    model.fit(x_train, y_train)

    keys, items, x = project.candidates(holdout)
    bought = project.bought(holdout, holdout + HORIZON)
    scores = model.predict_proba(x)[:, 1]
    best = top_k(keys, items, scores, TOP_K)
    popular = project.best_sellers(holdout - 30 * DAY, holdout, TOP_K)
    buyers = {}
    for user, product in bought:
        if user in best:
            buyers.setdefault(user, set()).add(product)
    hits = sum(bool(buyers[u] & set(best[u])) for u in buyers)
    hits_popular = sum(bool(buyers[u] & set(popular)) for u in buyers)
    print(f"hold-out cutoff {holdout:%Y-%m-%d}: {len(best)} users, {len(buyers)} bought an add-on within 14 days")
    print(f"hit rate@{TOP_K}: model {hits / len(buyers):.3f}; best sellers {', '.join(popular)}: "
          f"{hits_popular / len(buyers):.3f}")

    model.booster_.save_model(args.out)
    reloaded = lgb.Booster(model_file=args.out)
    worst = np.abs(reloaded.predict(x) - scores).max()
    if worst > 1e-9:
        sys.exit(f"the saved model disagrees with the trained one by {worst:.2e}")
    print(f"wrote {args.out} (lightgbm {lgb.__version__})")


if __name__ == "__main__":
    main()

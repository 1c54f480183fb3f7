#!/usr/bin/env python3
"""Small models for the tree evaluator's unit tests: the split rules the shared
fixtures do not reach (categorical splits, zero-as-missing, every ONNX node mode,
aggregate and post_transform, opset-5 TreeEnsemble, more objectives, CatBoost's
JSON), each with inputs on the edges and the reference library's own predictions.

Writes, per case, the model file and `<case>.expected.json`:
  {"model": file, "inputs": [[x or null (NaN) or "inf" / "-inf"]], "labels": [..] | null,
   "outputs": [[y or "nan" / "inf" / "-inf"]]}   # probabilities per class, or values per target
Run from this folder: python3 make_testdata.py [xgboost|lightgbm|onnx|catboost ...]
(no argument: every section).
"""
import json
import sys
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, TensorProto
import xgboost as xgb
import lightgbm as lgb


def dump(case, model_file, inputs, outputs, labels=None):
    inputs = [[None if np.isnan(v) else float(v) if np.isfinite(v) else str(v) for v in row]
              for row in np.asarray(inputs, dtype=np.float32)]
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    doc = {"model": model_file, "inputs": inputs,
           "labels": None if labels is None else [int(l) for l in labels],
           "outputs": [[v if np.isfinite(v) else str(v) for v in row] for row in outputs.tolist()]}
    with open(f"{case}.expected.json", "w") as f:
        json.dump(doc, f)


def edge_rows(rng, n, cat_values, d):
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] = rng.choice(cat_values, n)
    X[rng.random(size=X.shape) < 0.1] = np.nan
    return X


def xgboost_cases():
    # --- XGBoost: categorical splits (partition and one-hot), NaN, odd category values.
    rng = np.random.default_rng(1)
    n = 3000
    cat = rng.integers(0, 12, n).astype(np.float32)
    X = np.column_stack([cat, rng.normal(size=n), rng.normal(size=n)]).astype(np.float32)
    y = (((cat % 3) == 0) * 1.0 + X[:, 1] + 0.3 * (cat == 7) > 0.5).astype(np.float32)
    X[rng.random(size=X.shape) < 0.1] = np.nan
    for case, onehot in [("xgb_categorical", 1), ("xgb_categorical_onehot", 64)]:
        dm = xgb.DMatrix(X, y, feature_types=["c", "q", "q"], enable_categorical=True)
        b = xgb.train({"objective": "binary:logistic", "max_depth": 4, "max_cat_to_onehot": onehot,
                       "tree_method": "hist", "seed": 0}, dm, 8)
        b.save_model(f"{case}.json")
        T = edge_rows(rng, 60, [0, 1, 2, 3, 5, 7, 11, 2.5, 7.9, 12, 15, 40, 31, 32, 33, 64], 3)
        p = b.inplace_predict(T)
        dump(case, f"{case}.json", T, np.column_stack([1 - p, p]), (p > 0.5).astype(int))

    # --- XGBoost objectives: dart, poisson, reg:logistic, hinge, softmax.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 5)).astype(np.float32)
    X[rng.random(size=X.shape) < 0.05] = np.nan
    z = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1])
    T = rng.normal(size=(50, 5)).astype(np.float32)
    T[rng.random(size=T.shape) < 0.1] = np.nan
    for case, params, label in [
        ("xgb_dart", {"booster": "dart", "objective": "binary:logistic", "rate_drop": 0.3, "skip_drop": 0.0}, (z > 0).astype(np.float32)),
        ("xgb_poisson", {"objective": "count:poisson"}, np.round(np.exp(z / 2)).astype(np.float32)),
        ("xgb_reg_logistic", {"objective": "reg:logistic"}, 1 / (1 + np.exp(-z))),
        ("xgb_hinge", {"objective": "binary:hinge"}, (z > 0).astype(np.float32)),
        ("xgb_softmax", {"objective": "multi:softmax", "num_class": 3}, np.digitize(z, [-0.5, 0.5]).astype(np.float32)),
    ]:
        b = xgb.train({**params, "max_depth": 3, "seed": 0}, xgb.DMatrix(X, label), 6)
        b.save_model(f"{case}.json")
        if case == "xgb_dart":
            m = b.inplace_predict(T)  # all trees, weighted
            dump(case, f"{case}.json", T, np.column_stack([1 - m, m]), (m > 0.5).astype(int))
        elif case == "xgb_hinge":
            m = b.inplace_predict(T)
            dump(case, f"{case}.json", T, np.column_stack([1 - m, m]), (m > 0.5).astype(int))
        elif case == "xgb_softmax":
            m = b.predict(xgb.DMatrix(T), output_margin=True)
            e = np.exp(m - m.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
            dump(case, f"{case}.json", T, probs, b.inplace_predict(T).astype(int))
        else:
            dump(case, f"{case}.json", T, b.inplace_predict(T))


def lightgbm_cases():
    # --- LightGBM: categorical, zero-as-missing, missing type None, multiclass, ova, poisson, rf.
    rng = np.random.default_rng(3)
    n = 4000
    cat = rng.integers(0, 40, n).astype(np.float32)
    X = np.column_stack([cat, rng.normal(size=n), rng.normal(size=n)]).astype(np.float32)
    X[rng.random(size=n) < 0.3, 1] = 0.0
    X[rng.random(size=X.shape) < 0.1] = np.nan
    z = ((cat % 4) == 1) * 1.0 + np.nan_to_num(X[:, 1]) - 0.5 * np.nan_to_num(X[:, 2])
    ybin = (z + rng.normal(scale=0.3, size=n) > 0.5).astype(np.float32)
    T = edge_rows(rng, 80, [0, 1, 2, 5, 9, 13, 39, -0.5, -1, -3, 1.7, 40, 100, 1e10], 3)
    T[::7, 1] = 0.0
    T[1::7, 1] = 1e-36
    T[2::7, 1] = -1e-36
    T[3::7, 1] = 1e-35
    T[4::7, 1] = -1e-35
    T[5::7, 1] = 2e-35
    base = {"num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 0, "deterministic": True,
            "num_threads": 1}
    for case, params, label, ds_kw in [
        ("lgbm_categorical", {"objective": "binary", "max_cat_to_onehot": 4, "cat_smooth": 1, "min_data_per_group": 5}, ybin,
         {"categorical_feature": [0]}),
        ("lgbm_categorical_onehot", {"objective": "binary", "max_cat_to_onehot": 64, "min_data_per_group": 5}, ybin,
         {"categorical_feature": [0]}),
        ("lgbm_zero_missing", {"objective": "binary", "zero_as_missing": True}, ybin, {}),
        ("lgbm_no_missing", {"objective": "binary", "use_missing": False}, ybin, {}),
        ("lgbm_multiclass", {"objective": "multiclass", "num_class": 3}, np.digitize(z, [0.0, 1.0]).astype(np.float32), {}),
        ("lgbm_ova", {"objective": "multiclassova", "num_class": 3}, np.digitize(z, [0.0, 1.0]).astype(np.float32), {}),
        ("lgbm_poisson", {"objective": "poisson"}, np.round(np.exp(z / 2)).astype(np.float32), {}),
        ("lgbm_rf", {"objective": "regression", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7}, z.astype(np.float32), {}),
        ("lgbm_sqrt", {"objective": "regression", "reg_sqrt": True}, (z * 3).astype(np.float32), {}),
    ]:
        b = lgb.train({**base, **params}, lgb.Dataset(X, label, **ds_kw), 8)
        b.save_model(f"{case}.txt")
        out = b.predict(T)
        if params["objective"] == "binary":
            dump(case, f"{case}.txt", T, np.column_stack([1 - out, out]), np.argmax(np.column_stack([1 - out, out]), axis=1))
        elif params["objective"] in ("multiclass", "multiclassova"):
            dump(case, f"{case}.txt", T, out, np.argmax(out, axis=1))
        else:
            dump(case, f"{case}.txt", T, out)


def onnx_cases():
    # --- ONNX: hand-built ensembles covering every node mode, missing tracking,
    # aggregate functions and post transforms, scored by onnxruntime.
    def onnx_model(op, attrs, outputs, opset=3, name="ensemble"):
        node = helper.make_node(op, ["input"], [o[0] for o in outputs], domain="ai.onnx.ml", name=name, **attrs)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])],
                                  [helper.make_tensor_value_info(o[0], o[1], o[2]) for o in outputs])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", opset)])
        m.ir_version = 9
        return m


    # Two trees over 3 features. Tree 0: root (mode varies) -> two splits -> four leaves.
    def three_node_tree(tree, modes, values, feats, tracks):
        return dict(treeids=[tree] * 7, nodeids=list(range(7)), featureids=feats + [0] * 4,
                    modes=modes + ["LEAF"] * 4, values=values + [0.0] * 4,
                    true=[1, 3, 5, 0, 0, 0, 0], false=[2, 4, 6, 0, 0, 0, 0], tracks=tracks + [0] * 4)


    trees = [
        three_node_tree(0, ["BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ"], [0.25, -0.5, 1.0], [0, 1, 2], [1, 0, 1]),
        three_node_tree(1, ["BRANCH_NEQ", "BRANCH_LEQ", "BRANCH_LT"], [0.0, 0.5, -1.0], [1, 2, 0], [0, 1, 0]),
    ]
    cat = lambda k: sum((t[k] for t in trees), [])
    node_attrs = dict(nodes_treeids=cat("treeids"), nodes_nodeids=cat("nodeids"), nodes_featureids=cat("featureids"),
                      nodes_modes=cat("modes"), nodes_values=cat("values"), nodes_truenodeids=cat("true"),
                      nodes_falsenodeids=cat("false"), nodes_missing_value_tracks_true=cat("tracks"))
    leaves = [(t, n) for t in range(2) for n in range(3, 7)]
    rng = np.random.default_rng(4)
    T = rng.choice(np.array([0.25, -0.5, 1.0, 0.0, 0.5, -1.0, 0.3, -2.0, 2.0, np.nan], dtype=np.float32), size=(120, 3))
    T = np.vstack([T[:60], np.nextafter(T[60:], np.float32(np.inf)), np.nextafter(T[:60], np.float32(-np.inf))]).astype(np.float32)


    def run(m, case):
        onnx.checker.check_model(m)
        path = f"{case}.onnx"
        onnx.save(m, path)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        res = sess.run(None, {"input": T})
        return res


    for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
        for post in ["NONE", "PROBIT"] if agg != "SUM" else ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]:
            targets = 2
            w_t, w_n, w_id, w_v = [], [], [], []
            for i, (t, nid) in enumerate(leaves):
                for k in range(targets):
                    if (i + k) % 3 == 2:
                        continue  # some leaves leave a target unset: has_score matters for MIN/MAX
                    w_t.append(t); w_n.append(nid); w_id.append(k); w_v.append(round(0.1 * (i + 1) * (1 if k else -1) + 0.05 * k, 3))
            attrs = dict(node_attrs, n_targets=targets, target_treeids=w_t, target_nodeids=w_n, target_ids=w_id,
                         target_weights=w_v, aggregate_function=agg, post_transform=post, base_values=[0.5, -0.25])
            if post == "PROBIT":
                attrs["target_weights"] = [abs(v) / 10 for v in w_v]
                attrs["base_values"] = [0.1, 0.2]
            case = f"onnx_regressor_{agg.lower()}_{post.lower()}"
            (values,) = run(onnx_model("TreeEnsembleRegressor", attrs, [("variable", TensorProto.FLOAT, [None, targets])]), case)
            dump(case, f"{case}.onnx", T, values)

    # Single-target regressor with AVERAGE and a base value.
    attrs = dict(node_attrs, n_targets=1, target_treeids=[t for t, _ in leaves], target_nodeids=[n for _, n in leaves],
                 target_ids=[0] * 8, target_weights=[0.5 * i - 1 for i in range(8)], aggregate_function="AVERAGE",
                 base_values=[3.0])
    (values,) = run(onnx_model("TreeEnsembleRegressor", attrs, [("variable", TensorProto.FLOAT, [None, 1])]), "onnx_regressor_single")
    dump("onnx_regressor_single", "onnx_regressor_single.onnx", T, values)

    # Classifiers: three classes with SOFTMAX_ZERO, binary with weights on both classes,
    # binary with one class column and all-positive weights, string labels.
    for case, labels, weights, post, base in [
        ("onnx_classifier_3", dict(classlabels_int64s=[10, 20, 30]),
         lambda i: [(k, 0.2 * ((i * (k + 2)) % 5) - 0.3) for k in range(3) if (i + k) % 4], "SOFTMAX_ZERO", None),
        ("onnx_classifier_two_columns", dict(classlabels_int64s=[0, 1]),
         lambda i: [(0, 0.1 * i - 0.3), (1, 0.3 - 0.1 * i)], "LOGISTIC", None),
        ("onnx_classifier_rf", dict(classlabels_int64s=[0, 1]),
         lambda i: [(0, 0.125 * (i % 5))], "NONE", None),
        ("onnx_classifier_strings", dict(classlabels_strings=["no", "yes"]),
         lambda i: [(0, 0.4 * i - 1.5)], "LOGISTIC", [0.25]),
    ]:
        w_t, w_n, w_id, w_v = [], [], [], []
        for i, (t, nid) in enumerate(leaves):
            for k, v in weights(i):
                w_t.append(t); w_n.append(nid); w_id.append(k); w_v.append(v)
        attrs = dict(node_attrs, class_treeids=w_t, class_nodeids=w_n, class_ids=w_id, class_weights=w_v,
                     post_transform=post, **labels)
        if base is not None:
            attrs["base_values"] = base
        strings = "classlabels_strings" in labels
        label_type = TensorProto.STRING if strings else TensorProto.INT64
        n_classes = len(labels.get("classlabels_int64s", labels.get("classlabels_strings")))
        label, probs = run(onnx_model("TreeEnsembleClassifier", attrs,
                                      [("label", label_type, [None]), ("probabilities", TensorProto.FLOAT, [None, n_classes])]), case)
        names = labels.get("classlabels_int64s", labels.get("classlabels_strings"))
        dump(case, f"{case}.onnx", T, probs, [list(names).index(l if not strings else l) for l in label])

    # Opset 5 TreeEnsemble with a BRANCH_MEMBER split.
    # tree 0: node0 x0 in {0.25, 1.0, 2.0} ? node1 : leaf0; node1 x1 <= 0.5 ? leaf1 : leaf2
    # tree 1: node2 x2 < -1.0 ? leaf3 : leaf4
    attrs = dict(
        n_targets=1, aggregate_function=1, post_transform=0, tree_roots=[0, 2],
        nodes_featureids=[0, 1, 2],
        nodes_modes=helper.make_tensor("modes", TensorProto.UINT8, [3], [6, 0, 1]),
        nodes_splits=helper.make_tensor("splits", TensorProto.FLOAT, [3], [0.0, 0.5, -1.0]),
        nodes_truenodeids=[1, 1, 3], nodes_trueleafs=[0, 1, 1],
        nodes_falsenodeids=[0, 2, 4], nodes_falseleafs=[1, 1, 1],
        nodes_missing_value_tracks_true=[1, 0, 0],
        membership_values=helper.make_tensor("members", TensorProto.FLOAT, [3], [0.25, 1.0, 2.0]),
        leaf_targetids=[0, 0, 0, 0, 0],
        leaf_weights=helper.make_tensor("weights", TensorProto.FLOAT, [5], [1.0, 2.0, 3.0, 40.0, 50.0]),
    )
    (values,) = run(onnx_model("TreeEnsemble", attrs, [("variable", TensorProto.FLOAT, [None, 1])], opset=5), "onnx_tree_ensemble_v5")
    dump("onnx_tree_ensemble_v5", "onnx_tree_ensemble_v5.onnx", T, values)

    # Shared subtrees (a DAG, as onnxmltools writes categorical splits): tree 0 is a
    # chain of BRANCH_EQ nodes on x0 sharing their true child (x0 in {1, 3, 5}); tree 1
    # shares one subtree between two ordinary splits.
    dag = dict(
        nodes_treeids=[0] * 7 + [1] * 8,
        nodes_nodeids=list(range(7)) + list(range(8)),
        nodes_featureids=[0, 0, 0, 0, 1, 0, 0] + [2, 1, 0, 1, 0, 0, 0, 0],
        nodes_modes=["BRANCH_EQ"] * 3 + ["LEAF", "BRANCH_LEQ", "LEAF", "LEAF"]
        + ["BRANCH_LT", "BRANCH_GT", "BRANCH_GTE", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "LEAF"],
        nodes_values=[1.0, 3.0, 5.0, 0.0, 0.5, 0.0, 0.0] + [0.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        nodes_truenodeids=[4, 4, 4, 0, 5, 0, 0] + [1, 3, 3, 6, 0, 0, 0, 0],
        nodes_falsenodeids=[1, 2, 3, 0, 6, 0, 0] + [2, 4, 5, 7, 0, 0, 0, 0],
        nodes_missing_value_tracks_true=[1, 1, 1, 0, 0, 0, 0] + [0, 1, 0, 0, 0, 0, 0, 0],
        n_targets=1,
        target_treeids=[0, 0, 0, 1, 1, 1, 1],
        target_nodeids=[3, 5, 6, 4, 5, 6, 7],
        target_ids=[0] * 7,
        target_weights=[1.0, 10.0, 20.0, 100.0, 200.0, 300.0, 400.0],
    )
    Td = rng.choice(np.array([1.0, 3.0, 5.0, 2.0, 0.0, 0.5, -1.0, 4.0, np.nan], dtype=np.float32), size=(90, 3)).astype(np.float32)
    T = Td  # `run` scores `T`
    (values,) = run(onnx_model("TreeEnsembleRegressor", dag, [("variable", TensorProto.FLOAT, [None, 1])]), "onnx_shared_subtrees")
    dump("onnx_shared_subtrees", "onnx_shared_subtrees.onnx", Td, values)


def catboost_cases():
    # --- CatBoost JSON: oblivious trees (`x > border` in float, NaN as Min / Max),
    # non-symmetric trees, the losses presage maps, string labels, a probability
    # threshold; inputs on every border and one ulp either side.
    from catboost import CatBoostClassifier, CatBoostRanker, CatBoostRegressor, Pool

    rng = np.random.default_rng(5)
    n = 2000
    X = rng.normal(size=(n, 4)).astype(np.float32)
    X[rng.random(size=X.shape) < 0.1] = np.nan
    z = np.nan_to_num(X[:, 0]) + 0.7 * np.nan_to_num(X[:, 1], nan=1.0) - 0.5 * np.nan_to_num(X[:, 2])
    ybin = (z + rng.normal(scale=0.3, size=n) > 0.3).astype(int)
    y3 = np.digitize(z, [-0.5, 0.5])
    T = rng.normal(size=(30, 4)).astype(np.float32)
    T[rng.random(size=T.shape) < 0.15] = np.nan
    T[0] = np.nan
    common = dict(depth=4, iterations=6, border_count=32, random_seed=0, verbose=0, allow_writing_files=False)

    def edge_inputs(path):
        """T, then rows with one value on a border of the model, or one ulp above or below it."""
        features = json.load(open(path))["features_info"]["float_features"]
        rows = [T]
        for f in features:
            for k, b in enumerate(f["borders"]):
                b = np.float32(b)
                for v in (b, np.nextafter(b, np.float32(np.inf)), np.nextafter(b, np.float32(-np.inf))):
                    row = T[(k * 3 + len(rows)) % len(T)].copy()
                    row[f["flat_feature_index"]] = v
                    rows.append(row[None, :])
        return np.vstack(rows)

    def save(case, model):
        model.save_model(f"{case}.json", format="json")
        return edge_inputs(f"{case}.json")

    def classifier(case, model):
        E = save(case, model)
        classes = list(model.classes_)
        dump(case, f"{case}.json", E, model.predict_proba(E), [classes.index(l) for l in model.predict(E).ravel()])

    def regressor(case, model):
        E = save(case, model)
        dump(case, f"{case}.json", E, model.predict(E))

    classifier("cb_binary_min", CatBoostClassifier(**common, nan_mode="Min").fit(X, ybin))
    model = CatBoostClassifier(**common, nan_mode="Max").fit(X, ybin)
    model.set_probability_threshold(0.3)
    classifier("cb_binary_max", model)
    classifier("cb_strings", CatBoostClassifier(**common).fit(X, np.where(ybin == 1, "yes", "no")))
    classifier("cb_multiclass", CatBoostClassifier(**common, loss_function="MultiClass").fit(X, y3))
    classifier("cb_ova", CatBoostClassifier(**common, loss_function="MultiClassOneVsAll").fit(X, y3))
    classifier("cb_depthwise", CatBoostClassifier(**{**common, "depth": 3}, loss_function="MultiClass",
                                                  grow_policy="Depthwise", nan_mode="Max").fit(X, y3))
    regressor("cb_regressor", CatBoostRegressor(**{**common, "depth": 6}).fit(X, z))
    regressor("cb_poisson", CatBoostRegressor(**common, loss_function="Poisson").fit(X, np.round(np.exp(z / 2))))
    regressor("cb_multirmse", CatBoostRegressor(**common, loss_function="MultiRMSE").fit(X, np.column_stack([z, -2 * z])))
    groups = np.repeat(np.arange(n // 10), 10)
    regressor("cb_yetirank", CatBoostRanker(**common, loss_function="YetiRank").fit(Pool(X, np.round(z + 1).clip(0, 3), group_id=groups)))
    # Refused at load: a categorical feature (one-hot and CTR splits).
    C = np.column_stack([X[:, 0].astype(object), rng.choice(["a", "b", "c"], n).astype(object)])
    CatBoostClassifier(**{**common, "iterations": 2, "depth": 2}).fit(
        Pool(C, ybin, cat_features=[1], feature_names=["amount", "city"])).save_model("cb_categorical.json", format="json")


SECTIONS = {"xgboost": xgboost_cases, "lightgbm": lightgbm_cases, "onnx": onnx_cases, "catboost": catboost_cases}

if __name__ == "__main__":
    for section in sys.argv[1:] or SECTIONS:
        SECTIONS[section]()
    print("done")

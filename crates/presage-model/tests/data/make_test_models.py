#!/usr/bin/env python3
"""Tiny ONNX models for the tract engine's tests (`tests/it/onnx.rs`): graphs the
shared fixtures do not cover. Run from this folder: python3 make_test_models.py

Rejected at load (no expected outputs):
  svm_classifier.onnx          an `SVMClassifier` node tract has no kernel for
  unsupported_in_subgraph.onnx an `SVMRegressor` inside an `If` branch
  custom_domain.onnx           an operator from a domain nobody implements

Loaded, checked by hand in the tests:
  logreg_zipmap.onnx           skl2onnx's default export, ending in `ZipMap`
  two_inputs.onnx              two graph inputs
  int64_input.onnx             an int64 input
  strict_onehot.onnx           a string input one-hot encoded with handle_unknown="error"

Scored through tract, with onnxruntime's outputs in `<case>.expected.json`:
  {"inputs": [[x or null (NaN)]], "labels": [int or str] | null, "outputs": [[probability or value]]}
  scaler_logreg_strings.onnx   StandardScaler + multinomial LogisticRegression, string classes
  mlp_labels_3_7.onnx          StandardScaler + MLPClassifier on classes 3 and 7 (labels via ArrayFeatureExtractor)
  scaler_broadcast.onnx        Scaler with one offset and scale for all features + two-target LinearRegressor
  imputer_logreg.onnx          SimpleImputer (NaN -> mean) + binary LogisticRegression, NaN in the inputs
"""
import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

ML = helper.make_opsetid("ai.onnx.ml", 1)
CORE = helper.make_opsetid("", 17)


def save(model, name):
    onnx.checker.check_model(model)
    onnx.save(model, name)


def float_input(name, width):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width])


def dump(case, inputs, outputs, labels=None):
    doc = {
        "inputs": [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(inputs, dtype=np.float32)],
        "labels": None if labels is None else [l.item() if hasattr(l, "item") else l for l in labels],
        "outputs": np.asarray(outputs, dtype=np.float64).tolist(),
    }
    with open(f"{case}.expected.json", "w") as f:
        json.dump(doc, f)


def run(name, X):
    session = ort.InferenceSession(name, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


# --- Rejected graphs.
svm = helper.make_node(
    "SVMClassifier", ["X"], ["label", "probabilities"], name="svm", domain="ai.onnx.ml",
    classlabels_ints=[0, 1], coefficients=[1.0, -1.0], kernel_type="LINEAR",
    rho=[0.0], support_vectors=[0.5, 0.5, 0.5, -0.5, -0.5, -0.5], vectors_per_class=[1, 1],
)
graph = helper.make_graph(
    [svm], "svm", [float_input("X", 3)],
    [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
     helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
)
save(helper.make_model(graph, opset_imports=[CORE, ML]), "svm_classifier.onnx")

svr = helper.make_node(
    "SVMRegressor", ["X"], ["y"], name="inner_svr", domain="ai.onnx.ml",
    coefficients=[1.0], kernel_type="LINEAR", n_supports=1, rho=[0.0], support_vectors=[1.0, 1.0, 1.0],
)
then_branch = helper.make_graph([svr], "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])
else_branch = helper.make_graph(
    [helper.make_node("ReduceSum", ["X", "axes"], ["z"], name="sum", keepdims=1)], "else", [],
    [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 1])],
)
graph = helper.make_graph(
    [helper.make_node("If", ["cond"], ["out"], name="branch", then_branch=then_branch, else_branch=else_branch)],
    "subgraph", [float_input("X", 3)],
    [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 1])],
    initializer=[helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
                 helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
)
save(helper.make_model(graph, opset_imports=[CORE, ML]), "unsupported_in_subgraph.onnx")

graph = helper.make_graph(
    [helper.make_node("Frobnicate", ["X"], ["y"], name="frob", domain="com.example")],
    "custom", [float_input("X", 3)], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
)
model = helper.make_model(graph, opset_imports=[CORE, helper.make_opsetid("com.example", 1)])
onnx.save(model, "custom_domain.onnx")  # the checker rightly knows no `Frobnicate`

rng = np.random.default_rng(7)
X = rng.normal(size=(300, 4)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
zipmap = to_onnx(LogisticRegression().fit(X, y), X[:1], target_opset={"": 17, "ai.onnx.ml": 1})
save(zipmap, "logreg_zipmap.onnx")

graph = helper.make_graph(
    [helper.make_node("Add", ["a", "b"], ["y"], name="add")], "two_inputs",
    [float_input("a", 2), float_input("b", 2)], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
)
save(helper.make_model(graph, opset_imports=[CORE]), "two_inputs.onnx")

graph = helper.make_graph(
    [helper.make_node("Cast", ["ids"], ["y"], name="cast", to=TensorProto.FLOAT)], "int64_input",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
)
save(helper.make_model(graph, opset_imports=[CORE]), "int64_input.onnx")

# --- Scored graphs.
opsets = {"": 17, "ai.onnx.ml": 1}
X = rng.normal(size=(400, 5)).astype(np.float32) * [1, 10, 100, 0.1, 1] + [0, 5, -50, 1, 0]
X = X.astype(np.float32)
names = np.array(["cat", "dog", "eel"])
y = names[(X[:, 0] > 0).astype(int) + (X[:, 1] > 5).astype(int)]
pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
save(to_onnx(pipe, X[:1], target_opset=opsets, options={"zipmap": False}), "scaler_logreg_strings.onnx")
T = X[:40]
label, proba = run("scaler_logreg_strings.onnx", T)
dump("scaler_logreg_strings", T, proba, list(label))

y = np.where(X[:, 0] * X[:, 3] > 0, 3, 7)
mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=2000, random_state=0)).fit(X, y)
mlp_onnx = to_onnx(mlp, X[:1], target_opset=opsets, options={"zipmap": False})
save(mlp_onnx, "mlp_labels_3_7.onnx")
label, proba = run("mlp_labels_3_7.onnx", T)
dump("mlp_labels_3_7", T, proba, list(label))

scaler = helper.make_node("Scaler", ["X"], ["scaled"], name="scaler", domain="ai.onnx.ml",
                          offset=[0.5], scale=[2.0])
linear = helper.make_node("LinearRegressor", ["scaled"], ["variable"], name="linear", domain="ai.onnx.ml",
                          coefficients=[0.1, 0.2, 0.3, 0.4, 0.5, -1.0, 0.0, 1.0, 0.0, 2.0],
                          intercepts=[1.0, -1.0], targets=2)
graph = helper.make_graph([scaler, linear], "scaler_broadcast", [float_input("X", 5)],
                          [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 2])])
save(helper.make_model(graph, opset_imports=[CORE, ML]), "scaler_broadcast.onnx")
(values,) = run("scaler_broadcast.onnx", T)
dump("scaler_broadcast", T, values)

Xn = X.copy()
Xn[rng.random(size=Xn.shape) < 0.2] = np.nan
y = (np.nan_to_num(Xn[:, 0]) > 0).astype(np.int64)
pipe = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(Xn, y)
save(to_onnx(pipe, Xn[:1], target_opset=opsets, options={"zipmap": False}), "imputer_logreg.onnx")
T = Xn[:40]
label, proba = run("imputer_logreg.onnx", T)
dump("imputer_logreg", T, proba, list(label))

# A string input whose encoder refuses unknown categories.
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
frame = pd.DataFrame({"plan": ["basic", "pro", "team"] * 20, "age": np.arange(60, dtype=np.float32)})
strict = make_pipeline(
    ColumnTransformer([("plan", OneHotEncoder(handle_unknown="error"), ["plan"]), ("age", "passthrough", ["age"])]),
    LogisticRegression(max_iter=500),
).fit(frame, np.arange(60) % 2)
save(to_onnx(strict, initial_types=[("plan", StringTensorType([None, 1])), ("age", FloatTensorType([None, 1]))],
             target_opset=opsets, options={"zipmap": False}), "strict_onehot.onnx")

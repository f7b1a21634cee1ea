"""Real models for the serving tests, made with the frameworks themselves
(Debian's python3-sklearn, python3-xgboost, python3-torch, python3-onnx), each
with the reference answers its own framework (or numpy) gives. Imported by
tests/api/test_serving*.py and tests/sdk; every model is small and made in
well under a second."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

RNG = np.random.default_rng(20261123)


def tabular(n: int = 200, k: int = 4, classes: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    if not classes:
        y = X @ np.arange(1, k + 1) + 0.5 + rng.normal(scale=0.01, size=n)
        return X, y
    score = X @ rng.normal(size=(k, classes))
    return X, score.argmax(axis=1)


def sk_regression():
    from sklearn.linear_model import LinearRegression
    X, y = tabular()
    return LinearRegression().fit(X, y), X


def sk_binary():
    from sklearn.linear_model import LogisticRegression
    X, y = tabular(classes=2, seed=1)
    return LogisticRegression().fit(X, y), X


def sk_multiclass(string_labels: bool = False):
    from sklearn.linear_model import LogisticRegression
    X, y = tabular(classes=3, seed=2)
    if string_labels:
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    return LogisticRegression(max_iter=500).fit(X, y), X


def sk_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = tabular(classes=3, seed=3)
    X = X * np.array([1000.0, 0.001, 1.0, 50.0])
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(X, y), X


def pickled(model) -> bytes:
    return pickle.dumps(model, protocol=4)


def joblibbed(model) -> bytes:
    import joblib
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def xgb_regressor(feature_names=None):
    import xgboost as xgb
    X, y = tabular(n=300, k=5, seed=4)
    X[::7, 1] = np.nan  # missing values are part of the model's world
    d = xgb.DMatrix(X, label=y, feature_names=feature_names)
    b = xgb.train({"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror", "nthread": 1}, d, 20)
    return b, X.astype(np.float32)


def xgb_multiclass():
    import xgboost as xgb
    X, y = tabular(n=300, k=5, classes=3, seed=5)
    d = xgb.DMatrix(X, label=y)
    b = xgb.train({"max_depth": 3, "objective": "multi:softprob", "num_class": 3, "nthread": 1}, d, 10)
    return b, X.astype(np.float32)


def xgb_bytes(booster, ext: str = "json") -> bytes:
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m." + ext)
        booster.save_model(p)
        with open(p, "rb") as f:
            return f.read()


def xgb_predict(booster, X, **kw):
    import xgboost as xgb
    # a booster trained with feature names refuses a DMatrix without them
    return booster.predict(xgb.DMatrix(X, feature_names=booster.feature_names), **kw)


def torchscript_mlp():
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net.eval()
    ts = torch.jit.script(net)
    buf = io.BytesIO()
    torch.jit.save(ts, buf)
    X = RNG.normal(size=(6, 4)).astype(np.float32)
    with torch.no_grad():
        ref = ts(torch.from_numpy(X)).numpy()
    return buf.getvalue(), X, ref


def torchscript_slow():
    """forward(x) runs x[0, 0] rounds of a 192x192 matrix product before it
    answers x * 2: a model whose speed the test chooses per request."""
    import torch

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.eye(192) * 0.5, requires_grad=False)

        def forward(self, x):
            n = int(x[0, 0].item())
            acc = torch.zeros(192, 192)
            for _ in range(n):
                acc = acc + self.w @ self.w
            return x * 2.0 + acc.sum() * 0.0

    ts = torch.jit.script(Slow())
    buf = io.BytesIO()
    torch.jit.save(ts, buf)
    return buf.getvalue()


# ---- ONNX, built node by node, with numpy references -----------------------------------------

def _onnx_model(graph, ml: bool = False):
    from onnx import helper
    opsets = [helper.make_opsetid("", 13)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", 1))
    m = helper.make_model(graph, opset_imports=opsets, producer_name="kiln-tests")
    m.ir_version = 8
    return m.SerializeToString()


def onnx_mlp():
    """Two dense layers with a ReLU, dynamic batch: y = relu(x W1 + b1) W2 + b2."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    W1 = rng.normal(size=(4, 8)).astype(np.float32)
    b1 = rng.normal(size=(8,)).astype(np.float32)
    W2 = rng.normal(size=(8, 3)).astype(np.float32)
    b2 = rng.normal(size=(3,)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
             helper.make_node("Add", ["h3", "b2"], ["y"])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                          [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"))])

    def ref(X):
        X = X.astype(np.float32)
        return np.maximum(X @ W1 + b1, 0) @ W2 + b2

    return _onnx_model(g), ref


def onnx_linear_classifier_zipmap():
    """ai.onnx.ml LinearClassifier (3 classes, softmax) followed by ZipMap:
    label [N] int64 and probabilities as one {class: p} map per row."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(8)
    coef = rng.normal(size=(3, 4)).astype(np.float32)
    inter = rng.normal(size=(3,)).astype(np.float32)
    nodes = [
        helper.make_node("LinearClassifier", ["x"], ["label", "probs"], domain="ai.onnx.ml",
                         coefficients=coef.flatten().tolist(), intercepts=inter.tolist(), classlabels_ints=[0, 1, 2],
                         post_transform="SOFTMAX", multi_class=1),
        helper.make_node("ZipMap", ["probs"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2]),
    ]
    # onnx 1.12's helper has no make_map_type_proto: the TypeProto by hand
    import onnx
    mt = onnx.TypeProto()
    mt.map_type.key_type = TensorProto.INT64
    mt.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    seq_map = helper.make_sequence_type_proto(mt)
    g = helper.make_graph(nodes, "linclf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                           helper.make_value_info("probabilities", seq_map)])

    def ref(X):
        s = X.astype(np.float32) @ coef.T + inter
        e = np.exp(s - s.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return p.argmax(axis=1), p

    return _onnx_model(g, ml=True), ref


def onnx_tree_regressor():
    """ai.onnx.ml TreeEnsembleRegressor: two depth-1 trees summed."""
    from onnx import TensorProto, helper
    # tree 0: x0 <= 0.5 ? 1.0 : 2.0 ; tree 1: x1 <= -0.25 ? 10.0 : 20.0
    node = helper.make_node(
        "TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 0, 1, 2],
        nodes_featureids=[0, 0, 0, 1, 0, 0], nodes_values=[0.5, 0, 0, -0.25, 0, 0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0, 1, 0, 0], nodes_falsenodeids=[2, 0, 0, 2, 0, 0],
        target_treeids=[0, 0, 1, 1], target_nodeids=[1, 2, 1, 2], target_ids=[0, 0, 0, 0],
        target_weights=[1.0, 2.0, 10.0, 20.0], aggregate_function="SUM")
    g = helper.make_graph([node], "trees", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])])

    def ref(X):
        X = X.astype(np.float32)
        a = np.where(X[:, 0] <= 0.5, 1.0, 2.0)
        b = np.where(X[:, 1] <= -0.25, 10.0, 20.0)
        return (a + b).reshape(-1, 1).astype(np.float32)

    return _onnx_model(g, ml=True), ref


def close(got: Any, want: Any, rel: float = 1e-6) -> bool:
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    return g.shape == w.shape and bool(np.all(np.abs(g - w) <= rel * np.maximum(np.abs(w), 1.0)))


def as_lists(X) -> list:
    return [[float(v) for v in row] for row in np.asarray(X)]

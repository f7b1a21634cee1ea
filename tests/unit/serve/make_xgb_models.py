#!/usr/bin/python3
"""Trains small XGBoost 1.7 models for tests/unit/serve/test_xgboost.c and
writes them in every format (plus extension-less copies) with Python's own
predictions as the reference: DIR/refs.json. Usage: DIR [MODEL...] (the
regression model and the damaged files are always written)."""
import json
import math
import os
import shutil
import sys

import numpy as np
import xgboost as xgb

out = sys.argv[1]
wanted = set(sys.argv[2:])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def data(n, nf, nan_frac=0.1):
    X = rng.normal(size=(n, nf)).astype(np.float32)
    X[rng.random(size=X.shape) < nan_frac] = np.nan  # missing values
    return X


def jnum(a):
    """Flattened list with NaN as null (JSON has no NaN)."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


models = []


def want(name):
    return not wanted or name in wanted or name == "reg"


def save(name, booster, X, objective, num_class=0, num_target=1, feature_names=None, formats=("json", "ubj", "deprecated")):
    files = {}
    for fmt in formats:
        p = os.path.join(out, f"{name}.{fmt}")
        booster.save_model(p)
        files[fmt] = p
        # the registry keeps blobs under names without an extension
        bare = os.path.join(out, f"{name}_{fmt}_noext")
        shutil.copyfile(p, bare)
        files[fmt + "_noext"] = bare
    d = xgb.DMatrix(X, missing=np.nan, feature_names=feature_names)
    pred = booster.predict(d)
    margin = booster.predict(d, output_margin=True)
    m = {
        "name": name,
        "objective": objective,
        "num_feature": X.shape[1],
        "num_class": num_class,
        "num_target": num_target,
        "feature_names": feature_names,
        "files": files,
        "rows": X.shape[0],
        "X": jnum(X),
        "pred": jnum(pred),
        "pred_shape": list(pred.shape),
        "margin": jnum(margin),
        "margin_shape": list(margin.shape),
    }
    if objective == "multi:softmax":
        z = margin.astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        m["proba_ref"] = jnum(z / z.sum(axis=1, keepdims=True))
    models.append(m)


nf = 5
X = data(200, nf)
w = rng.normal(size=nf)
lin = np.nan_to_num(X) @ w

b = xgb.train({"objective": "reg:squarederror", "max_depth": 3, "nthread": 1},
              xgb.DMatrix(X, label=lin + rng.normal(scale=0.1, size=len(lin)), missing=np.nan), 20)
save("reg", b, X[:40], "reg:squarederror")

names = [f"f_{c}" for c in "abcde"]
if want("bin"):
    b = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                  xgb.DMatrix(X, label=(lin > 0).astype(int), missing=np.nan, feature_names=names), 20)
    save("bin", b, X[:40], "binary:logistic", feature_names=names)

if want("logitraw"):
    b = xgb.train({"objective": "binary:logitraw", "max_depth": 3, "nthread": 1},
                  xgb.DMatrix(X, label=(lin > 0).astype(int), missing=np.nan), 10)
    save("logitraw", b, X[:40], "binary:logitraw")

y3 = np.digitize(lin, np.quantile(lin, [1 / 3, 2 / 3]))
for obj in ("multi:softprob", "multi:softmax"):
    if want(obj.split(":")[1]):
        b = xgb.train({"objective": obj, "num_class": 3, "max_depth": 3, "nthread": 1},
                      xgb.DMatrix(X, label=y3, missing=np.nan), 15)
        save(obj.split(":")[1], b, X[:40], obj, num_class=3)

# two targets from one booster (XGBoost 1.6+; hist grows one tree per target)
if want("multiout"):
    Y2 = np.stack([lin, np.nan_to_num(X[:, 0]) * 2 - 1], axis=1)
    b = xgb.train({"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 3, "nthread": 1},
                  xgb.DMatrix(X, label=Y2, missing=np.nan), 10)
    save("multiout", b, X[:40], "reg:squarederror", num_target=2)

# gblinear has no in-place prediction (the backend goes through a DMatrix);
# dart sums its trees with weights
if want("linear"):
    b = xgb.train({"booster": "gblinear", "objective": "binary:logistic", "nthread": 1},
                  xgb.DMatrix(X, label=(lin > 0).astype(int), missing=np.nan), 10)
    save("linear", b, X[:40], "binary:logistic")
if want("dart"):
    b = xgb.train({"booster": "dart", "objective": "reg:squarederror", "rate_drop": 0.2, "max_depth": 3,
                   "nthread": 1, "seed": 3},
                  xgb.DMatrix(X, label=lin, missing=np.nan), 15)
    save("dart", b, X[:40], "reg:squarederror")

# the benchmark's shape: 100 trees on scikit-learn's bundled diabetes data
# (read from its package files: importing sklearn costs more than training)
if want("diabetes"):
    import importlib.util
    base = os.path.join(importlib.util.find_spec("sklearn").submodule_search_locations[0], "datasets", "data")
    Xd = np.loadtxt(os.path.join(base, "diabetes_data_raw.csv.gz")).astype(np.float32)
    yd = np.loadtxt(os.path.join(base, "diabetes_target.csv.gz"))
    b = xgb.train({"objective": "reg:squarederror", "max_depth": 6, "nthread": 1},
                  xgb.DMatrix(Xd, label=yd), 100)
    save("diabetes", b, Xd[:32], "reg:squarederror", formats=("json",))

with open(os.path.join(out, "corrupt.json"), "w") as f:
    f.write('{"learner": {"attributes": {}, "feature_names": [], "gradient_booster": {"name": "gbtree", "mod')
with open(models[0]["files"]["ubj"], "rb") as f:
    ubj = f.read()
with open(os.path.join(out, "truncated.ubj"), "wb") as f:
    f.write(ubj[: len(ubj) // 2])
with open(models[0]["files"]["deprecated"], "rb") as f:
    raw = f.read()
with open(os.path.join(out, "truncated.bin"), "wb") as f:
    f.write(raw[: len(raw) // 3])
with open(os.path.join(out, "garbage.bin"), "wb") as f:
    f.write(rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
open(os.path.join(out, "empty.json"), "wb").close()

with open(os.path.join(out, "refs.json"), "w") as f:
    json.dump({"xgboost": xgb.__version__, "models": models}, f)
print(os.path.join(out, "refs.json"))

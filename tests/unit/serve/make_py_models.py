#!/usr/bin/python3
"""Makes the models the python serving backend's tests load, and their
references computed with each framework's own predict / predict_proba /
forward.

usage: make_py_models.py OUTDIR
Writes OUTDIR/<model files> and OUTDIR/refs.json:
  {"X": rows every reference was computed on,
   "<model>": {"predict": [...], "proba": [[...]], "margin": [...],
               "classes": [...], "columns": [...] | null},
   "mlp": {"forward": [[...]]}}
"""
import json
import os
import pickle
import sys
import warnings

import joblib
import numpy as np
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.RandomState(7)
X = rng.rand(60, 4) * [4.0, 2.0, 6.0, 2.5] + [4.0, 2.0, 1.0, 0.1]
Xt = rng.rand(9, 4) * [4.0, 2.0, 6.0, 2.5] + [4.0, 2.0, 1.0, 0.1]
refs = {"X": Xt.tolist()}


def save(name, model):
    with open(os.path.join(out, name + ".pkl"), "wb") as f:
        pickle.dump(model, f, protocol=4)
    joblib.dump(model, os.path.join(out, name + ".joblib"))


def ref(name, model, columns=None):
    r = {"predict": model.predict(Xt).tolist(), "columns": columns}
    if hasattr(model, "predict_proba"):
        r["proba"] = model.predict_proba(Xt).tolist()
        r["classes"] = model.classes_.tolist()
    if hasattr(model, "decision_function"):
        r["margin"] = model.decision_function(Xt).tolist()
    refs[name] = r


# regression
lin = LinearRegression().fit(X, X @ [0.5, -1.25, 2.0, 0.75] + 3.0 + rng.normal(0, 0.1, len(X)))
save("lin", lin)
ref("lin", lin)

# binary classification, integer labels
yb = (X[:, 0] + X[:, 2] > 7.0).astype(np.int64)
binary = LogisticRegression().fit(X, yb)
save("bin", binary)
ref("bin", binary)

# three classes with string labels (they come back as BYTES)
names = np.array(["setosa", "versicolor", "virginica"])
ym = names[np.digitize(X[:, 2], [2.8, 5.0])]
multi = LogisticRegression(max_iter=1000).fit(X, ym)
save("multi", multi)
ref("multi", multi)

# a pipeline with a scaler, fit on a plain array: it names no features
yp = np.digitize(X[:, 0] - X[:, 1], [2.5, 3.5])
pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(X, yp)
save("pipe", pipe)
ref("pipe", pipe)

# named features: fit on a DataFrame (pandas when installed; scikit-learn
# reads feature_names_in_ from any table with a `columns` attribute)
cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
try:
    import pandas

    table = pandas.DataFrame(X, columns=cols)
except ImportError:
    class Table:
        def __init__(self, a, columns):
            self.a, self.columns = a, columns
            self.shape = a.shape

        def __array__(self, dtype=None):
            return self.a if dtype is None else self.a.astype(dtype)

        def __len__(self):
            return len(self.a)

    table = Table(X, cols)
named = LogisticRegression(max_iter=1000).fit(table, yp)
assert list(named.feature_names_in_) == cols
save("named", named)
ref("named", named, cols)

# TorchScript: a small MLP
torch.manual_seed(0)
mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
ts = torch.jit.script(mlp.eval())
ts.save(os.path.join(out, "mlp.pt"))
with torch.no_grad():
    refs["mlp"] = {"forward": ts(torch.from_numpy(Xt.astype(np.float32))).numpy().astype(np.float64).tolist()}


class Slow(torch.nn.Module):
    """Spins forever when x[0, 0] > 100 (a hung model), else doubles x."""

    def forward(self, x):
        n = 0
        while bool(x[0, 0] > 100.0):
            n += 1
        return x * 2.0


torch.jit.script(Slow()).save(os.path.join(out, "slow.pt"))


class Two(torch.nn.Module):
    """Two outputs: x + 1 and the row sums."""

    def forward(self, x):
        return x + 1.0, x.sum(dim=1)


torch.jit.script(Two()).save(os.path.join(out, "two.pt"))

# load failures: an object with no predict, and a truncated pickle
with open(os.path.join(out, "nopredict.pkl"), "wb") as f:
    pickle.dump({"weights": [1, 2, 3]}, f, protocol=4)
with open(os.path.join(out, "lin.pkl"), "rb") as f:
    whole = f.read()
with open(os.path.join(out, "truncated.pkl"), "wb") as f:
    f.write(whole[: len(whole) // 2])

with open(os.path.join(out, "refs.json"), "w") as f:
    json.dump(refs, f)

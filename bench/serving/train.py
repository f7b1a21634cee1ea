"""bench/serving's models and request bodies: a scikit-learn RandomForest
(joblib) and an XGBoost regressor (JSON) trained on scikit-learn's bundled
diabetes data, the way a user builds them today, plus the JSON bodies that
wrk posts (1 and 32 rows, MLflow scoring and KServe V2 shapes).

usage: train.py OUT_DIR"""

import json
import os
import sys

import joblib
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor

ROW_COUNTS = (1, 32)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # Numpy in, numpy out (no pandas on the machine): the models name no
    # columns, so both servers take rows positionally.
    X, y = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)

    rf = RandomForestRegressor(n_estimators=100, max_depth=8, random_state=0)
    rf.fit(X, y)
    joblib.dump(rf, os.path.join(out, "rf.joblib"))

    xg = xgb.XGBRegressor(n_estimators=100, max_depth=6, random_state=0)
    xg.fit(X, y)
    xg.save_model(os.path.join(out, "xgb.json"))

    # Rows as the shortest decimals that read back as the same float32, so
    # that both servers see bit-identical inputs whichever parser they use.
    def rows(n):
        return [[float(np.format_float_positional(v, unique=True)) for v in r] for r in X[:n]]

    expected = {}
    for n in ROW_COUNTS:
        data = rows(n)
        with open(os.path.join(out, "predict-%d.json" % n), "w") as f:
            json.dump({"inputs": data}, f, separators=(",", ":"))
        flat = [v for r in data for v in r]
        with open(os.path.join(out, "v2-%d.json" % n), "w") as f:
            json.dump({"inputs": [{"name": "input", "shape": [n, X.shape[1]], "datatype": "FP32", "data": flat}]},
                      f, separators=(",", ":"))
        Xn = np.asarray(data, dtype=np.float32)
        expected["xgb-%d" % n] = xg.predict(Xn).tolist()
        expected["rf-%d" % n] = rf.predict(Xn).tolist()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print("bench/serving: trained rf (RandomForestRegressor 100 trees, depth 8) and xgb (XGBRegressor 100 trees,"
          " depth 6) on diabetes (%d rows, %d features) into %s" % (X.shape[0], X.shape[1], out))


if __name__ == "__main__":
    main()

"""client.predict and the serving calls against a real `kiln server`:
scikit-learn (joblib) and XGBoost (JSON) models trained here and uploaded
with upload_model answer what the frameworks answer themselves (1e-6
relative) for every input shape the SDK takes — lists of rows, dicts of
columns, records, numpy arrays — with and without probabilities; the binary
tensor path answers what the JSON path answers; model_metadata,
serving_models, load_model and unload_model; errors carry the server's
words."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import joblib
import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import kiln
from kiln import serving

from test_tracking import ADMIN_PASSWORD, Server

RTOL = 1e-6
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kiln-predict") / "data").start()
    admin = kiln.Client(srv.url, username="admin", password=ADMIN_PASSWORD)
    srv.key = admin.create_api_key("sdk-predict", scopes=["read", "write", "predict"])["key"]  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> kiln.Client:
    return kiln.Client(server.url, api_key=server.key, timeout=120)  # type: ignore[attr-defined]


def uniq(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), rtol=RTOL,
                               atol=1e-12)


@pytest.fixture(scope="module")
def iris() -> Dict[str, Any]:
    X, y = load_iris(return_X_y=True)
    return {"X": X, "y": y}


@pytest.fixture(scope="module")
def sk_classifier(client: kiln.Client, iris: Dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """A scaler + multinomial logistic regression on iris (joblib): three classes."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(iris["X"], iris["y"])
    f = tmp_path_factory.mktemp("sk") / "iris.joblib"
    joblib.dump(model, f)
    name = uniq("iris")
    mv = client.upload_model(f, name)
    assert mv["status"] == "READY" and mv["format"] == "joblib", mv
    return {"name": name, "model": model, "version": mv["version"]}


@pytest.fixture(scope="module")
def sk_regressor(client: kiln.Client, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    X, y = load_diabetes(return_X_y=True)
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    f = tmp_path_factory.mktemp("skr") / "diabetes.joblib"
    joblib.dump(model, f)
    name = uniq("diabetes")
    mv = client.upload_model(f, name)
    assert mv["status"] == "READY", mv
    return {"name": name, "model": model, "X": X}


@pytest.fixture(scope="module")
def xgb_model(client: kiln.Client, iris: Dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """A binary XGBoost classifier (versicolor or not) with named features, saved as JSON."""
    X, y = iris["X"], (iris["y"] == 1).astype(np.float32)
    d = xgb.DMatrix(X, label=y, feature_names=COLUMNS)
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0}, d, 20)
    f = tmp_path_factory.mktemp("xgb") / "versicolor.json"
    bst.save_model(str(f))
    name = uniq("versicolor")
    mv = client.upload_model(f, name)
    assert mv["status"] == "READY" and mv["format"] == "xgboost-json", mv
    return {"name": name, "bst": bst, "X": X}


def xgb_predict(bst: xgb.Booster, X: np.ndarray, margin: bool = False) -> np.ndarray:
    return bst.predict(xgb.DMatrix(X, feature_names=COLUMNS), output_margin=margin)


# ---- scikit-learn ------------------------------------------------------------------


def test_sklearn_classifier_labels_and_probabilities(client: kiln.Client, sk_classifier: Dict[str, Any],
                                                     iris: Dict[str, Any]) -> None:
    model, name = sk_classifier["model"], sk_classifier["name"]
    X = iris["X"][::7]
    rows = X.tolist()
    assert client.predict(name, rows) == model.predict(X).tolist()  # integer labels: exactly
    close(client.predict(name, rows, proba=True), model.predict_proba(X))
    # a small numpy array goes as JSON and answers the same
    assert client.predict(name, X, version=sk_classifier["version"]) == model.predict(X).tolist()
    close(client.predict(name, X.astype(np.float32), proba=True), model.predict_proba(X.astype(np.float32)))
    # one row
    assert client.predict(name, [rows[3]]) == [int(model.predict(X[3:4])[0])]


def test_sklearn_regressor(client: kiln.Client, sk_regressor: Dict[str, Any]) -> None:
    X = sk_regressor["X"][:50]
    close(client.predict(sk_regressor["name"], X.tolist()), sk_regressor["model"].predict(X))


def test_binary_path_answers_what_the_json_path_answers(client: kiln.Client, sk_regressor: Dict[str, Any],
                                                        sk_classifier: Dict[str, Any], iris: Dict[str, Any]) -> None:
    X = np.ascontiguousarray(np.tile(sk_regressor["X"], (3, 1))[:1000])  # 10,000 numbers: binary by default
    assert X.size > serving.BINARY_MIN_ELEMENTS
    got = client.predict(sk_regressor["name"], X)
    assert isinstance(got, np.ndarray) and got.shape[0] == 1000
    want_json = client.predict(sk_regressor["name"], X, binary=False)
    assert isinstance(want_json, list)
    close(got.reshape(1000), want_json)
    close(got.reshape(1000), sk_regressor["model"].predict(X))
    # forced binary for a small array, with probabilities
    small = iris["X"][:5]
    p = client.predict(sk_classifier["name"], small, proba=True, binary=True)
    assert isinstance(p, np.ndarray) and p.shape == (5, 3)
    close(p, client.predict(sk_classifier["name"], small, proba=True))
    close(p, sk_classifier["model"].predict_proba(small))
    with pytest.raises(ValueError):
        client.predict(sk_classifier["name"], small.tolist(), binary=True)


# ---- XGBoost: named columns, so dicts and records map by name ----------------------


def test_xgboost_every_input_shape(client: kiln.Client, xgb_model: Dict[str, Any]) -> None:
    name, bst, X = xgb_model["name"], xgb_model["bst"], xgb_model["X"][::5]
    want = xgb_predict(bst, X)
    close(client.predict(name, X.tolist()), want)
    close(client.predict(name, X), want)
    close(client.predict(name, {c: X[:, k].tolist() for k, c in enumerate(COLUMNS)}), want)
    # columns in another order map by name
    close(client.predict(name, {c: X[:, k].tolist() for k, c in reversed(list(enumerate(COLUMNS)))}), want)
    close(client.predict(name, [dict(zip(COLUMNS, r)) for r in X.tolist()]), want)
    close(client.predict(name, dict(zip(COLUMNS, X[0].tolist()))), want[:1])
    close(client.predict(name, X, output_margin=True), xgb_predict(bst, X, margin=True))


def test_xgboost_binary_path_and_missing_values(client: kiln.Client, xgb_model: Dict[str, Any]) -> None:
    name, bst = xgb_model["name"], xgb_model["bst"]
    X = np.tile(xgb_model["X"], (3, 1)).astype(np.float32)  # 450 x 4 = 1,800 numbers
    got = client.predict(name, X)
    assert isinstance(got, np.ndarray)
    close(got.reshape(-1), xgb_predict(bst, X))
    close(got.reshape(-1), client.predict(name, X, binary=False))
    # NaN is XGBoost's missing value: sent as null on the JSON path, raw on the binary one
    Xn = X[:8].copy()
    Xn[0, 1] = np.nan
    Xn[3, 2] = np.nan
    want = xgb_predict(bst, Xn)
    close(client.predict(name, Xn.tolist()), want)
    close(client.predict(name, Xn, binary=True).reshape(-1), want)


def test_versions_latest_and_aliases(client: kiln.Client, xgb_model: Dict[str, Any],
                                     tmp_path: Path) -> None:
    name, X = xgb_model["name"], xgb_model["X"][:4]
    # version 2: another model under the same name
    d = xgb.DMatrix(xgb_model["X"], label=np.arange(150) % 2, feature_names=COLUMNS)
    other = xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": 0}, d, 3)
    f = tmp_path / "v2.json"
    other.save_model(str(f))
    assert client.upload_model(f, name)["version"] == "2"
    # the server re-resolves "latest" and aliases at most once a second
    answers_like(lambda: client.predict(name, X), xgb_predict(other, X))
    close(client.predict(name, X, version="latest"), xgb_predict(other, X))
    close(client.predict(name, X, version=1), xgb_predict(xgb_model["bst"], X))
    client.set_registered_model_alias(name, "champion", "1")
    answers_like(lambda: client.predict(name, X, version="champion"), xgb_predict(xgb_model["bst"], X))
    client.set_registered_model_alias(name, "champion", "2")
    answers_like(lambda: client.predict(name, X, version="champion"), xgb_predict(other, X))


def answers_like(call: Any, want: Any, within_s: float = 10.0) -> None:
    """call() answers want within a few seconds (after a version or an alias moved)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            close(call(), want)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---- metadata and the loaded models ------------------------------------------------


def test_metadata_and_serving_models(client: kiln.Client, xgb_model: Dict[str, Any],
                                     sk_classifier: Dict[str, Any]) -> None:
    meta = client.model_metadata(xgb_model["name"], 1)
    assert meta["name"] == xgb_model["name"] and meta["versions"] == ["1"]
    assert meta["columns"] == COLUMNS
    assert [i["shape"] for i in meta["inputs"]] == [[-1, 4]]
    sk = client.model_metadata(sk_classifier["name"])
    assert sk["classes"] == [0, 1, 2]
    client.predict(sk_classifier["name"], [[5.1, 3.5, 1.4, 0.2]])
    loaded = {(m["name"], m["version"]): m for m in client.serving_models()}
    m = loaded[(sk_classifier["name"], sk_classifier["version"])]
    assert m["state"] == "READY" and m["format"] == "joblib" and m["requests"] >= 1
    assert m["memory_bytes"] > 0 and m["last_used_at"] >= m["loaded_at"] > 0

    client.unload_model(sk_classifier["name"], sk_classifier["version"])
    assert (sk_classifier["name"], sk_classifier["version"]) not in {
        (x["name"], x["version"]) for x in client.serving_models() if x["state"] != "UNLOADING"}
    m = client.load_model(sk_classifier["name"], sk_classifier["version"], max_batch_size=8, max_queue_delay_us=100)
    assert m["state"] == "READY" and m["settings"]["max_batch_size"] == 8
    assert client.predict(sk_classifier["name"], [[5.1, 3.5, 1.4, 0.2]]) == [0]
    with pytest.raises(kiln.BadRequest) as err:
        client.load_model(sk_classifier["name"], sk_classifier["version"], max_batch_size=0)
    assert "max_batch_size" in err.value.message


# ---- errors ---------------------------------------------------------------------------


def test_errors_name_what_is_wrong(client: kiln.Client, xgb_model: Dict[str, Any]) -> None:
    name = xgb_model["name"]
    with pytest.raises(kiln.BadRequest) as err:
        client.predict(name, {"sepal_length": [1.0], "sepal_width": [2.0], "petal_length": [1.0]})
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and "petal_width" in err.value.message
    with pytest.raises(kiln.BadRequest) as err:
        client.predict(name, [[1.0, 2.0, "x", 4.0]])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(kiln.NotFound) as nf:
        client.predict(uniq("missing"), [[1.0]])
    assert nf.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(kiln.NotFound):
        client.predict(name, [[1.0, 2.0, 3.0, 4.0]], version=99)
    with pytest.raises(TypeError):
        client.predict(name, "1,2,3,4")
    with pytest.raises(ValueError):
        client.predict(name, {"a": [1, 2], "b": [1]})


def test_requests_the_sdk_builds() -> None:
    """What goes on the wire for each kind of data (no server needed)."""
    assert serving.mlflow_payload({"a": [1, 2], "b": [3.0, float("nan")]}, True, False) == {
        "dataframe_split": {"columns": ["a", "b"], "data": [[1, 3.0], [2, None]]}, "params": {"predict_proba": True}}
    assert serving.mlflow_payload([{"a": 1}], False, True) == {"dataframe_records": [{"a": 1}],
                                                              "params": {"output_margin": True}}
    assert serving.mlflow_payload(np.arange(4).reshape(2, 2), False, False) == {"instances": [[0, 1], [2, 3]]}
    assert serving.mlflow_payload({"x": np.zeros((1, 2))}, False, False) == {"inputs": {"x": [[0.0, 0.0]]}}
    body, n = serving.encode_binary([("x", np.arange(6, dtype=">f4").reshape(2, 3))], False, False)
    head: Dict[str, Any] = json.loads(body[:n])
    assert head["inputs"] == [{"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}]
    assert head["parameters"] == {"binary_data_output": True}
    assert np.frombuffer(body[n:], dtype="<f4").tolist() == [0, 1, 2, 3, 4, 5]  # little-endian whatever the input
    with pytest.raises(ValueError):
        serving.decode_v2(b'{"outputs": []}', 99)  # a header length past the body
    short = json.dumps({"outputs": [{"name": "y", "datatype": "FP32", "shape": [2],
                                     "parameters": {"binary_data_size": 8}}]}).encode()
    with pytest.raises(ValueError):
        serving.decode_v2(short + b"\x00\x00", len(short))  # 2 of the 8 bytes it declares
    head2, arrays = serving.decode_v2(short + np.array([1.5, -2], dtype="<f4").tobytes(), len(short))
    assert head2["outputs"][0]["name"] == "y" and arrays["y"].tolist() == [1.5, -2.0]

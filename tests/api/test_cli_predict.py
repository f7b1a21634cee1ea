"""`kiln predict` and `kiln serving` against a real server: XGBoost (JSON,
named features) and scikit-learn (joblib) models trained here and pushed
with `kiln models push`; --json with bare rows, MLflow payloads, @FILE and
stdin; --csv in several batches answering what one batch answers (and what
the framework answers); --proba and --output csv with class names; the
server's refusals printed with a non-zero exit; the loaded-models table,
load and unload."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess

import numpy as np
import pytest

from kiln_harness import scaled

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
RTOL = 1e-6


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, data):
    import joblib
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression

    X, y = data
    out = tmp_path_factory.mktemp("predict-models")
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 0},
                    xgb.DMatrix(X, label=(y == 2).astype(np.float32), feature_names=COLUMNS), 15)
    bst.save_model(str(out / "virginica.json"))
    clf = LogisticRegression(max_iter=500).fit(X, y)
    joblib.dump(clf, out / "iris.joblib")
    return {"xgb": out / "virginica.json", "bst": bst, "sk": out / "iris.joblib", "clf": clf}


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def kiln(server, kiln_binary, tmp_path, user):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "cfg"), KILN_URL=server.url)

    def run(*args, ok=True, stdin=None):
        p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True, env=env,
                           timeout=scaled(120))
        if ok:
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    run("login", "--username", user.username, "--password-stdin", stdin=user.password + "\n")
    return run


@pytest.fixture
def pushed(kiln, model_files):
    kiln("models", "push", str(model_files["xgb"]), "--name", "virginica")
    kiln("models", "push", str(model_files["sk"]), "--name", "iris-lr")
    return model_files


def xgb_want(bst, X, margin=False):
    import xgboost as xgb

    return bst.predict(xgb.DMatrix(X, feature_names=COLUMNS), output_margin=margin)


def close(got, want):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), rtol=RTOL,
                               atol=1e-12)


def write_csv(path, X, header=COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in X.tolist():
            w.writerow([repr(v) for v in row])


def requests_of(user, name, version="1"):
    models = user.client().get("/api/v1/serving/models").json()["models"]
    return next((m["requests"] for m in models if m["name"] == name and m["version"] == version), 0)


def test_predict_json_payloads(kiln, pushed, data, tmp_path):
    X = data[0][::10]
    want = xgb_want(pushed["bst"], X)
    out = json.loads(kiln("predict", "virginica", "--json", json.dumps(X.tolist())).stdout)
    close(out, want)
    payload = {"dataframe_split": {"columns": COLUMNS, "data": X.tolist()}}
    close(json.loads(kiln("predict", "virginica@1", "--json", json.dumps(payload)).stdout), want)
    records = {"dataframe_records": [dict(zip(COLUMNS, r)) for r in X.tolist()]}
    f = tmp_path / "records.json"
    f.write_text(json.dumps(records))
    close(json.loads(kiln("predict", "virginica@latest", "--json", f"@{f}").stdout), want)
    close(json.loads(kiln("predict", "virginica", "--json", "-", stdin=json.dumps(X.tolist())).stdout), want)
    # raw margins
    close(json.loads(kiln("predict", "virginica", "--json", json.dumps(X.tolist()), "--margin").stdout),
          xgb_want(pushed["bst"], X, margin=True))
    # one prediction per line inside one JSON array
    text = kiln("predict", "virginica", "--json", json.dumps(X[:3].tolist())).stdout
    assert text.startswith("[\n  ") and text.endswith("\n]\n") and len(text.splitlines()) == 5


def test_predict_csv_in_batches(kiln, user, pushed, data, tmp_path):
    X = data[0][:25]
    f = tmp_path / "rows.csv"
    write_csv(f, X)
    want = xgb_want(pushed["bst"], X)
    one = kiln("predict", "virginica", "--csv", str(f))
    before = requests_of(user, "virginica")
    many = kiln("predict", "virginica", "--csv", str(f), "--batch-rows", "7")
    assert requests_of(user, "virginica") - before == 4  # 7 + 7 + 7 + 4 rows
    assert many.stdout == one.stdout
    assert many.stderr == ""  # no progress bar when stderr is not a terminal
    close(json.loads(many.stdout), want)
    # the same as CSV lines
    lines = kiln("predict", "virginica", "--csv", str(f), "--batch-rows", "10", "--output", "csv").stdout.splitlines()
    assert lines[0] == "prediction" and len(lines) == 26
    close([float(x) for x in lines[1:]], want)
    # columns in another order (and blank lines, CRLF) map by name
    g = tmp_path / "reordered.csv"
    order = [3, 1, 0, 2]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([COLUMNS[k] for k in order])
    for row in X[:, order].tolist():
        w.writerow(row)
        buf.write("\r\n")
    g.write_text(buf.getvalue())
    close(json.loads(kiln("predict", "virginica", "--csv", str(g), "--batch-rows", "3").stdout), want)
    # stdin
    close(json.loads(kiln("predict", "virginica", "--csv", "-", stdin=f.read_text()).stdout), want)


def test_progress_on_a_terminal(kiln, server, kiln_binary, pushed, data, tmp_path):
    """A long file shows a progress bar when stderr is a terminal (a pty from script(1))."""
    X = np.tile(data[0], (4, 1))  # 600 rows
    f = tmp_path / "long.csv"
    write_csv(f, X)
    out = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "cfg"), KILN_URL=server.url)
    cmd = (f"{shlex.quote(kiln_binary)} predict virginica --csv {shlex.quote(str(f))} --batch-rows 100"
           f" > {shlex.quote(str(out))}")
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=env,
                       timeout=scaled(120))
    assert p.returncode == 0, p.stdout
    # one update per batch (text mode reads its \r as a line end)
    shown = [line for line in p.stdout.splitlines() if line.strip()]
    assert len(shown) == 6 and shown[-1].startswith("[###") and shown[-1].rstrip().endswith("100%  600 rows"), shown
    close(json.loads(out.read_text()), xgb_want(pushed["bst"], X))


def test_predict_proba_and_class_names(kiln, pushed, data, tmp_path):
    X = data[0][::15]
    clf = pushed["clf"]
    labels = json.loads(kiln("predict", "iris-lr", "--json", json.dumps(X.tolist())).stdout)
    assert labels == clf.predict(X).tolist()
    proba = json.loads(kiln("predict", "iris-lr", "--json", json.dumps(X.tolist()), "--proba").stdout)
    close(proba, clf.predict_proba(X))
    f = tmp_path / "iris.csv"
    write_csv(f, X, header=["a", "b", "c", "d"])  # the model names no columns: matched by position
    lines = kiln("predict", "iris-lr", "--csv", str(f), "--proba", "--output", "csv", "--batch-rows", "4").stdout
    rows = list(csv.reader(io.StringIO(lines)))
    assert rows[0] == ["0", "1", "2"]  # the classes as the header
    close([[float(v) for v in r] for r in rows[1:]], clf.predict_proba(X))


def test_predict_errors(kiln, pushed, data, tmp_path):
    f = tmp_path / "short.csv"
    write_csv(f, data[0][:5, :3], header=COLUMNS[:3])
    p = kiln("predict", "virginica", "--csv", str(f), ok=False)
    assert p.returncode == 1 and "INVALID_PARAMETER_VALUE (400)" in p.stderr and "petal_width" in p.stderr
    assert p.stdout == ""
    p = kiln("predict", "virginica", "--json", '[[1, 2, "x", 4]]', ok=False)
    assert p.returncode == 1 and "INVALID_PARAMETER_VALUE (400)" in p.stderr
    p = kiln("predict", "no-such-model", "--json", "[[1, 2, 3, 4]]", ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    p = kiln("predict", "virginica@7", "--json", "[[1, 2, 3, 4]]", ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    # a CSV row with a missing field is caught before anything is sent
    g = tmp_path / "ragged.csv"
    g.write_text("a,b,c,d\n1,2,3,4\n1,2,3\n")
    p = kiln("predict", "virginica", "--csv", str(g), ok=False)
    assert p.returncode == 1 and "line 3 has 3 fields; the header has 4" in p.stderr
    # usage errors exit 2
    for args in (("predict",), ("predict", "virginica"), ("predict", "virginica", "--json", "[]", "--csv", str(f)),
                 ("predict", "virginica", "--json", '{"rows": []}'), ("predict", "virginica", "--json", "[1,"),
                 ("predict", "virginica", "--csv", str(f), "--batch-rows", "0"),
                 ("predict", "virginica", "--json", "[]", "--output", "xml"), ("predict", "@3", "--json", "[]"),
                 ("serving",), ("serving", "unload", "virginica"), ("serving", "list", "--bogus")):
        p = kiln(*args, ok=False)
        assert p.returncode == 2, (args, p.stderr)


def test_serving_list_load_unload(kiln, user, pushed, data):
    kiln("predict", "virginica", "--json", json.dumps(data[0][:2].tolist()))
    text = kiln("serving", "list").stdout
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "BACKEND", "STATE", "MEMORY", "QUEUE", "REQUESTS", "ERRORS",
                                "LAST", "USED", "(UTC)"]
    row = next(line.split() for line in lines[1:] if line.startswith("virginica "))
    assert row[1] == "1" and row[3] == "READY"
    listed = json.loads(kiln("serving", "list", "--json").stdout)
    assert any(m["name"] == "virginica" and m["state"] == "READY" for m in listed["models"])
    assert "virginica version 1 unloaded" in kiln("serving", "unload", "virginica@1").stdout
    assert not any(m["name"] == "virginica" and m["state"] == "READY"
                   for m in json.loads(kiln("serving", "list", "--json").stdout)["models"])
    out = kiln("serving", "load", "virginica@1", "--max-batch-size", "16").stdout
    assert out.startswith("virginica version 1: READY")
    m = next(m for m in user.client().get("/api/v1/serving/models").json()["models"] if m["name"] == "virginica")
    assert m["settings"]["max_batch_size"] == 16
    p = kiln("serving", "load", "virginica@1", "--max-batch-size", "0", ok=False)
    assert p.returncode == 2


def test_predict_help(kiln):
    p = kiln("help", "predict")
    assert p.stdout.startswith("usage: kiln predict") and all(
        w in p.stdout for w in ["--json", "--csv", "--batch-rows", "--proba", "--output", "latest", "alias"])
    assert "serving" in kiln("help").stdout and "predict" in kiln("help").stdout
    assert kiln("help", "serving").stdout.startswith("usage: kiln serving list")

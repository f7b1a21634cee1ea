"""Serving against a real server: models made here with scikit-learn,
XGBoost, PyTorch and ONNX are uploaded, then answered through the MLflow-style
predict endpoint and KServe V2 (JSON and the binary tensor extension); the
answers equal the frameworks' own within 1e-6 relative (labels exactly).
Also: bad inputs give 400s that name the input, the loaded-models view,
explicit load/unload, access rules, and the upload's prediction_url."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import serving_models as sm
from kiln_harness import unique_name

UPLOAD = "/api/v1/models/upload"


def upload(c, name, data: bytes):
    r = c.post(UPLOAD, params={"name": name}, data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    mv = r.json()["model_version"]
    assert mv["status"] == "READY", mv
    return mv


def predict(c, name, payload, version="latest", expect=200, **kw):
    r = c.post(f"/api/v1/models/{name}/versions/{version}/predict", json=payload, **kw)
    assert r.status_code == expect, r.text
    return r


def infer(c, name, body, version=None, expect=200, headers=None):
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    r = c.post(path, data=body if isinstance(body, bytes) else json.dumps(body),
               headers=headers or {"Content-Type": "application/json"})
    if expect is not None:
        assert r.status_code == expect, r.text
    return r


def v2_json(name, X, datatype="FP32"):
    X = np.asarray(X)
    return {"inputs": [{"name": name, "shape": list(X.shape), "datatype": datatype, "data": X.flatten().tolist()}]}


NP = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4", "BOOL": "|b1", "UINT8": "|u1"}


def v2_binary(inputs, outputs=None, binary_out=True):
    """A binary-extension body: the JSON header, then each input's raw bytes."""
    hdr = {"inputs": [], "parameters": {"binary_data_output": binary_out}}
    raw = b""
    for name, arr, dt in inputs:
        b = np.ascontiguousarray(arr, dtype=NP[dt]).tobytes()
        hdr["inputs"].append({"name": name, "shape": list(arr.shape), "datatype": dt,
                              "parameters": {"binary_data_size": len(b)}})
        raw += b
    if outputs:
        hdr["outputs"] = outputs
    h = json.dumps(hdr).encode()
    return h + raw, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(h))}


def v2_decode(r):
    """{output name: numpy array} of a V2 answer, JSON or binary."""
    hl = r.headers.get("Inference-Header-Content-Length")
    body = r.content
    if hl is None:
        doc = json.loads(body)
        raw = b""
    else:
        doc = json.loads(body[:int(hl)])
        raw = body[int(hl):]
    out, pos = {}, 0
    for o in doc["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if o["datatype"] == "BYTES":
                vals, p = [], pos
                while p < pos + size:
                    (n,) = struct.unpack_from("<I", raw, p)
                    vals.append(raw[p + 4:p + 4 + n].decode())
                    p += 4 + n
                out[o["name"]] = np.array(vals, dtype=object).reshape(o["shape"])
            else:
                out[o["name"]] = np.frombuffer(raw[pos:pos + size], dtype=NP[o["datatype"]]).reshape(o["shape"])
            pos += size
        else:
            out[o["name"]] = np.array(o["data"], dtype=object if o["datatype"] == "BYTES" else None).reshape(o["shape"])
    assert pos == len(raw)
    return doc, out


@pytest.fixture
def c(server, make_user):
    return make_user().client()


def timing(r):
    """Server-Timing as {name: ms}."""
    out = {}
    for part in r.headers["Server-Timing"].split(","):
        k, _, v = part.strip().partition(";dur=")
        out[k] = float(v)
    return out


# ---- scikit-learn through the Python worker -------------------------------------------------------

def test_sklearn_regression_pickle_every_payload_shape(c):
    model, X = sm.sk_regression()
    name = unique_name("skreg")
    mv = upload(c, name, sm.pickled(model))
    assert mv["prediction_url"] == f"/api/v1/models/{name}/versions/1/predict"
    want = model.predict(X[:5])
    rows = sm.as_lists(X[:5])
    r = predict(c, name, {"instances": rows})
    assert sm.close(r.json()["predictions"], want)
    assert r.headers["X-Kiln-Model-Version"] == "1"
    t = timing(r)
    assert t["total"] >= t["compute"] >= 0 and t["queue"] >= 0
    assert sm.close(predict(c, name, {"inputs": rows}).json()["predictions"], want)
    cols = [f"f{i}" for i in range(4)]
    # without names in the model, dataframe columns are taken in order
    r = predict(c, name, {"dataframe_split": {"columns": cols, "data": rows}}, version="1")
    assert sm.close(r.json()["predictions"], want)
    r = c.post(mv["prediction_url"], json={"instances": rows})
    assert r.status_code == 200 and sm.close(r.json()["predictions"], want)


@pytest.mark.parametrize("fmt", ["pickle", "joblib"])
def test_sklearn_classifiers_labels_and_probabilities(c, fmt):
    for make in (sm.sk_binary, sm.sk_multiclass, sm.sk_pipeline):
        model, X = make()
        name = unique_name("skclf")
        upload(c, name, sm.pickled(model) if fmt == "pickle" else sm.joblibbed(model))
        rows = sm.as_lists(X[:7])
        labels = predict(c, name, {"instances": rows}).json()["predictions"]
        assert labels == model.predict(X[:7]).tolist()
        proba = predict(c, name, {"instances": rows, "params": {"predict_proba": True}}).json()["predictions"]
        assert sm.close(proba, model.predict_proba(X[:7]))
        # the same through V2, with the Kiln parameter
        doc, out = v2_decode(infer(c, name, {**v2_json("input", X[:7], "FP64"), "parameters": {"predict_proba": True}}))
        assert doc["model_name"] == name and doc["model_version"] == "1"
        assert sm.close(next(iter(out.values())), model.predict_proba(X[:7]))


def test_sklearn_string_class_labels_come_back_as_strings(c):
    model, X = sm.sk_multiclass(string_labels=True)
    name = unique_name("skstr")
    upload(c, name, sm.joblibbed(model))
    got = predict(c, name, {"instances": sm.as_lists(X[:9])}).json()["predictions"]
    assert got == model.predict(X[:9]).tolist()
    meta = c.get(f"/v2/models/{name}").json()
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["inputs"][0]["shape"] == [-1, 4]


# ---- XGBoost through libxgboost --------------------------------------------------------------------

def test_xgboost_regressor_with_missing_values_json_and_ubj(c):
    cols = ["age", "bmi", "bp", "s1", "s2"]
    booster, X = sm.xgb_regressor(feature_names=cols)
    for ext in ("json", "ubj"):
        name = unique_name("xgb" + ext)
        upload(c, name, sm.xgb_bytes(booster, ext))
        want = sm.xgb_predict(booster, X[:10])
        # NaN (missing) travels as JSON null in a dataframe and as raw NaN in binary
        data = [[None if np.isnan(v) else float(v) for v in row] for row in X[:10]]
        r = predict(c, name, {"dataframe_split": {"columns": cols, "data": data}})
        assert sm.close(r.json()["predictions"], want)
        # columns are matched by name, not position
        perm = [4, 2, 0, 1, 3]
        r = predict(c, name, {"dataframe_split": {"columns": [cols[i] for i in perm],
                                                  "data": [[row[i] for i in perm] for row in data]}})
        assert sm.close(r.json()["predictions"], want)
        records = [{k: v for k, v in zip(cols, row)} for row in data]
        assert sm.close(predict(c, name, {"dataframe_records": records}).json()["predictions"], want)
        body, hdrs = v2_binary([("input", X[:10], "FP32")])
        doc, out = v2_decode(infer(c, name, body, headers=hdrs))
        assert sm.close(out["predictions"], want)
        margin = predict(c, name, {"instances": data, "params": {"output_margin": True}}).json()["predictions"]
        assert sm.close(margin, sm.xgb_predict(booster, X[:10], output_margin=True))
        meta = c.get(f"/v2/models/{name}").json()
        assert meta["columns"] == cols and meta["platform"] == "xgboost"


def test_xgboost_multiclass_probabilities(c):
    booster, X = sm.xgb_multiclass()
    name = unique_name("xgbmc")
    upload(c, name, sm.xgb_bytes(booster))
    want = sm.xgb_predict(booster, X[:8])
    doc, out = v2_decode(infer(c, name, v2_json("input", X[:8])))
    assert out["predictions"].shape == (8, 3) and sm.close(out["predictions"], want)
    got = predict(c, name, {"instances": sm.as_lists(X[:8]), "params": {"predict_proba": True}}).json()
    assert sm.close(got["predictions"], want)


# ---- ONNX through ONNX Runtime -----------------------------------------------------------------------

def test_onnx_mlp_dynamic_batch_json_and_binary(c):
    data, ref = sm.onnx_mlp()
    name = unique_name("mlp")
    upload(c, name, data)
    meta = c.get(f"/v2/models/{name}/versions/1").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["platform"] == "onnx" and meta["versions"] == ["1"]
    for n in (1, 5, 64):
        X = sm.RNG.normal(size=(n, 4)).astype(np.float32)
        doc, out = v2_decode(infer(c, name, {**v2_json("x", X), "id": f"req-{n}"}, version="1"))
        assert doc["id"] == f"req-{n}" and out["y"].shape == (n, 3)
        assert sm.close(out["y"], ref(X))
        body, hdrs = v2_binary([("x", X, "FP32")])
        r = infer(c, name, body, headers=hdrs)
        assert r.headers["Content-Type"].startswith("application/octet-stream")
        doc, out = v2_decode(r)
        assert out["y"].dtype == np.float32 and sm.close(out["y"], ref(X))
    # binary input, JSON output
    X = sm.RNG.normal(size=(3, 4)).astype(np.float32)
    body, hdrs = v2_binary([("x", X, "FP32")], binary_out=False)
    r = infer(c, name, body, headers=hdrs)
    assert "Inference-Header-Content-Length" not in r.headers
    assert sm.close(v2_decode(r)[1]["y"], ref(X))
    # integers are coerced to the model's FP32
    doc, out = v2_decode(infer(c, name, v2_json("x", np.array([[1, 2, 3, 4]]), "INT64")))
    assert sm.close(out["y"], ref(np.array([[1, 2, 3, 4]], dtype=np.float32)))


def test_onnx_linear_classifier_with_zipmap(c):
    data, ref = sm.onnx_linear_classifier_zipmap()
    name = unique_name("linclf")
    upload(c, name, data)
    X = sm.RNG.normal(size=(6, 4)).astype(np.float32)
    labels, probs = ref(X)
    doc, out = v2_decode(infer(c, name, v2_json("x", X)))
    assert out["label"].tolist() == labels.tolist()
    maps = [json.loads(s) for s in out["probabilities"].tolist()]
    assert sm.close([[m[str(k)] for k in range(3)] for m in maps], probs)
    # the simple endpoint gives one object per row with both outputs
    rows = predict(c, name, {"inputs": {"x": sm.as_lists(X)}}).json()["predictions"]
    assert [r["label"] for r in rows] == labels.tolist()
    assert sm.close([[r["probabilities"][str(k)] for k in range(3)] for r in rows], probs)
    # asking for one output
    body = {**v2_json("x", X), "outputs": [{"name": "label"}]}
    doc, out = v2_decode(infer(c, name, body))
    assert list(out) == ["label"] and out["label"].tolist() == labels.tolist()


def test_onnx_tree_ensemble(c):
    data, ref = sm.onnx_tree_regressor()
    name = unique_name("trees")
    upload(c, name, data)
    X = np.array([[0.1, -1.0], [0.9, 0.0], [0.5, -0.25], [3.0, 7.0]], dtype=np.float32)
    doc, out = v2_decode(infer(c, name, v2_json("x", X)))
    assert out["y"].tolist() == ref(X).tolist()


# ---- TorchScript through the Python worker -------------------------------------------------------------

def test_torchscript_mlp(c):
    data, X, ref = sm.torchscript_mlp()
    name = unique_name("ts")
    upload(c, name, data)
    doc, out = v2_decode(infer(c, name, v2_json("input", X)))
    got = next(iter(out.values()))
    assert sm.close(got, ref)
    body, hdrs = v2_binary([("input", X, "FP32")])
    assert sm.close(next(iter(v2_decode(infer(c, name, body, headers=hdrs))[1].values())), ref)


# ---- the protocol around the model ----------------------------------------------------------------------

def test_v2_server_endpoints(c, server):
    assert c.get("/v2/health/live").json() == {"live": True}
    meta = c.get("/v2").json()
    assert meta["name"] == "kiln" and "binary_tensor_data" in meta["extensions"]
    r = c.get("/v2/health/ready")
    assert r.status_code in (200, 503)
    data, ref = sm.onnx_mlp()
    name = unique_name("ready")
    upload(c, name, data)
    r = c.get(f"/v2/models/{name}/ready")
    assert r.status_code in (200, 503)  # the first call starts the load
    from kiln_harness import wait_for
    wait_for(lambda: c.get(f"/v2/models/{name}/ready").status_code == 200, timeout=30)
    assert c.get(f"/v2/models/{name}/versions/1/ready").json() == {"name": name, "ready": True}
    assert c.get(f"/v2/models/{name}/versions/9/ready").status_code == 404
    assert c.get("/v2/models/no-such-model/ready").status_code == 404


def bad(c, name, body, status=400, headers=None, version=None):
    r = infer(c, name, body, version=version, expect=status, headers=headers)
    doc = r.json()
    assert doc["error"] == doc["message"] and doc["error_code"]
    return doc["message"]


def test_bad_inputs_are_400s_that_say_what_is_wrong(c, server):
    data, ref = sm.onnx_mlp()
    name = unique_name("bad")
    upload(c, name, data)
    X = np.ones((2, 4), dtype=np.float32)
    assert "x" in bad(c, name, v2_json("wrong", X))  # names the expected input
    msg = bad(c, name, {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1] * 6}]})
    assert "x" in msg and "4" in msg  # names the input and the expected dimension
    msg = bad(c, name, {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1] * 7}]})
    assert "8" in msg and "7" in msg
    assert "x" in bad(c, name, {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES",
                                            "data": ["a", "b", "c", "d"]}]})
    msg = bad(c, name, {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                                   {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]}]})
    assert "extra" in msg
    assert "inputs" in bad(c, name, {"nothing": []})
    assert bad(c, name, b"{not json", headers={"Content-Type": "application/json"})
    # binary extension: a header length past the body, and sizes that do not add up
    body, hdrs = v2_binary([("x", X, "FP32")])
    assert "Inference-Header-Content-Length" in bad(c, name, body, headers={**hdrs, "Inference-Header-Content-Length": str(len(body) + 5)})
    assert bad(c, name, body[:-4], headers=hdrs)
    assert bad(c, name, body, headers={**hdrs, "Inference-Header-Content-Length": "12"})
    assert bad(c, name, body, headers={**hdrs, "Inference-Header-Content-Length": "-1"})
    # non-finite values are refused for models that do not take missing values
    body, hdrs = v2_binary([("x", np.array([[1, np.inf, 0, 0]], dtype=np.float32), "FP32")])
    assert "Inf" in bad(c, name, body, headers=hdrs)
    body, hdrs = v2_binary([("x", np.array([[1, np.nan, 0, 0]], dtype=np.float32), "FP32")])
    assert "NaN" in bad(c, name, body, headers=hdrs)
    # unknown model / version
    assert bad(c, "no-such-model-" + name, v2_json("x", X), status=404)
    assert bad(c, name, v2_json("x", X), status=404, version="7")
    # MLflow payloads
    r = predict(c, name, {"instances": [[1, 2, 3]]}, expect=400)
    assert "x" in r.json()["message"]
    r = predict(c, name, {"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}, expect=400)
    assert "dataframe_split" in r.json()["message"]


def test_huge_batch_is_refused(c, make_server):
    srv = make_server(args=["--serve-max-rows", "10"])
    ca = srv.admin_client()
    data, ref = sm.onnx_mlp()
    name = unique_name("huge")
    upload(ca, name, data)
    X = np.ones((11, 4), dtype=np.float32)
    r = infer(ca, name, v2_json("x", X), expect=400)
    assert "11" in r.json()["message"] and "10" in r.json()["message"]
    doc, out = v2_decode(infer(ca, name, v2_json("x", X[:10])))
    assert out["y"].shape == (10, 3)


def test_formats_kiln_does_not_serve_and_unknown_versions(c):
    name = unique_name("h5")
    import h5py, io  # noqa: E401
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        f.create_group("model_weights")
    upload(c, name, buf.getvalue())
    r = predict(c, name, {"instances": [[1]]}, expect=400)
    assert r.json()["error_code"] == "INVALID_STATE" and "serves" in r.json()["message"]
    r = predict(c, name, {"instances": [[1]]}, version="champion", expect=404)
    assert "champion" in r.json()["message"]


# ---- the loaded-models view, load and unload ---------------------------------------------------------------

def test_load_settings_unload_and_the_models_view(c):
    data, ref = sm.onnx_mlp()
    name = unique_name("ld")
    upload(c, name, data)
    r = c.post(f"/api/v1/models/{name}/versions/1/load", json={"max_batch_size": 8, "max_queue_delay_us": 500})
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["state"] == "READY" and m["backend"] == "onnx" and m["format"] == "onnx"
    assert m["settings"]["max_batch_size"] == 8 and m["settings"]["max_queue_delay_us"] == 500
    assert m["memory_bytes"] > 0 and m["signature"]["inputs"][0]["name"] == "x"
    X = np.ones((2, 4), dtype=np.float32)
    v2_decode(infer(c, name, v2_json("x", X)))
    listed = {(x["name"], x["version"]): x for x in c.get("/api/v1/serving/models").json()["models"]}
    assert listed[(name, "1")]["requests"] >= 1 and listed[(name, "1")]["state"] == "READY"
    bad_settings = c.post(f"/api/v1/models/{name}/versions/1/load", json={"max_batch_size": 0})
    assert bad_settings.status_code == 400 and "max_batch_size" in bad_settings.json()["message"]
    assert c.post(f"/api/v1/models/{name}/versions/1/load", json={"nope": 1}).status_code == 400
    assert c.post(f"/api/v1/models/{name}/versions/1/unload").status_code == 200
    listed = {(x["name"], x["version"]) for x in c.get("/api/v1/serving/models").json()["models"]}
    assert (name, "1") not in listed
    assert c.post(f"/api/v1/models/{name}/versions/1/unload").status_code == 404
    # the next request loads it again
    assert sm.close(v2_decode(infer(c, name, v2_json("x", X)))[1]["y"], ref(X))


def test_access_rules(c, server, make_user, admin_client):
    data, ref = sm.onnx_mlp()
    name = unique_name("acl")
    upload(c, name, data)
    # a predict-only key of the model's project predicts but cannot load or unload
    proj = c.get("/api/v1/auth/whoami").json()
    key = c.post("/api/v1/api-keys", json={"name": unique_name("k"), "scopes": ["predict"]})
    assert key.status_code == 200, key.text
    from kiln_harness import register_secret
    register_secret(key.json()["key"])
    kc = server.client()
    kc.headers["X-API-Key"] = key.json()["key"]
    X = np.ones((1, 4), dtype=np.float32)
    assert sm.close(v2_decode(infer(kc, name, v2_json("x", X)))[1]["y"], ref(X))
    assert kc.post(f"/api/v1/models/{name}/versions/1/load").status_code == 403
    assert kc.get("/api/v1/serving/models").status_code == 403
    # another user's project does not see the model at all
    other = make_user().client()
    infer(other, name, v2_json("x", X), expect=404)
    # no credentials at all
    anon = server.client()
    assert anon.post(f"/v2/models/{name}/infer", json=v2_json("x", X)).status_code == 401
    assert proj

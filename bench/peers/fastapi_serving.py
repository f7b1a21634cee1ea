"""bench/serving's peer: the model server a Python user writes today with
FastAPI, serving the same scikit-learn (joblib) and XGBoost (JSON) models as
kiln on the same two routes (MLflow scoring JSON and KServe V2 JSON), so one
wrk script drives both. Run it in its best configuration:

  PEER_MODELS=xgb=build/bench/serving/xgb.json,rf=build/bench/serving/rf.joblib \
  /usr/bin/python3 -m uvicorn fastapi_serving:app --app-dir bench/peers --workers 2 \
      --loop uvloop --http httptools --no-access-log --port 8000

Every fair advantage: async handlers (no thread-pool hop), the body parsed
once with the C json module (orjson is not packaged for Debian 12) and no
pydantic model, the answer written as bytes without FastAPI's encoder,
XGBoost's in-place prediction (what XGBRegressor.predict on a numpy array
does) with one thread per worker so two workers do not fight over two cores
(PEER_XGB_THREADS)."""

import json
import os

import joblib
import numpy as np
import xgboost as xgb
from fastapi import FastAPI, Request, Response

app = FastAPI()
MODELS = {}


def _load():
    spec = os.environ.get("PEER_MODELS", "")
    threads = int(os.environ.get("PEER_XGB_THREADS", "1"))
    for item in filter(None, spec.split(",")):
        name, _, path = item.partition("=")
        if path.endswith(".json") or path.endswith(".ubj"):
            m = xgb.XGBRegressor()
            m.load_model(path)
            if threads > 0:
                m.set_params(n_jobs=threads)
        else:
            m = joblib.load(path)
        MODELS[name] = m


_load()


def _error(status, code, message):
    return Response(json.dumps({"error_code": code, "message": message}), status_code=status,
                    media_type="application/json")


def _rows(body):
    """Rows of an MLflow scoring payload (positional: the models name no columns)."""
    if "dataframe_split" in body:
        return body["dataframe_split"]["data"]
    if "inputs" in body:
        return body["inputs"]
    if "instances" in body:
        return body["instances"]
    if "dataframe_records" in body:
        return [list(r.values()) for r in body["dataframe_records"]]
    raise ValueError("expected dataframe_split, dataframe_records, instances or inputs")


@app.get("/healthz")
async def healthz():
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/api/v1/models/{name}/versions/{version}/predict")
async def predict(name: str, version: str, request: Request):
    model = MODELS.get(name)
    if model is None:
        return _error(404, "RESOURCE_DOES_NOT_EXIST", "no model %r" % name)
    try:
        X = np.asarray(_rows(json.loads(await request.body())), dtype=np.float32)
        if X.ndim != 2:
            raise ValueError("rows must be a 2-d array")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _error(400, "INVALID_PARAMETER_VALUE", str(exc))
    y = model.predict(X)
    return Response(json.dumps({"predictions": y.tolist()}), media_type="application/json")


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    model = MODELS.get(name)
    if model is None:
        return _error(404, "RESOURCE_DOES_NOT_EXIST", "no model %r" % name)
    try:
        body = json.loads(await request.body())
        inp = body["inputs"][0]
        X = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return _error(400, "INVALID_PARAMETER_VALUE", str(exc))
    y = model.predict(X)
    out = {"model_name": name, "model_version": "1", "id": body.get("id", ""),
           "outputs": [{"name": "output", "datatype": "FP32" if y.dtype == np.float32 else "FP64",
                        "shape": list(y.shape), "data": y.ravel().tolist()}]}
    return Response(json.dumps(out), media_type="application/json")

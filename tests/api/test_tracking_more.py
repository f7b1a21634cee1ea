"""The rest of the MLflow tracking API and Kiln's chart endpoints over HTTP:
get-history-bulk-interval, runs/log-inputs, runs/log-model, MLflow 3's
logged models and server-info, the sampled series
(/api/v1/runs/{id}/metrics/{key}/sampled) and live updates as Server-Sent
Events (/api/v1/runs/{id}/events): happy paths, errors, limits and
projects never seeing each other."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

PREFIXES = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"]


def err(r, status, code, fragment=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code, r.text
    if fragment is not None:
        assert fragment in body["message"], body["message"]
    return body["message"]


class ML:
    def __init__(self, client, prefix=PREFIXES[0], headers=None):
        self.c, self.prefix, self.headers = client, prefix, dict(headers or {})

    def req(self, method, path, body=None, **params):
        if method == "GET":
            return self.c.get(self.prefix + "/" + path, params=params, headers=self.headers)
        return self.c.request(method, self.prefix + "/" + path, json={} if body is None else body,
                              headers=self.headers)

    def post(self, path, body=None):
        return self.req("POST", path, body)

    def get(self, path, **params):
        return self.req("GET", path, **params)

    def ok(self, method, path, body=None, **params):
        r = self.req(method, path, body, **params)
        assert r.status_code == 200, (method, path, r.status_code, r.text)
        return r.json()

    def p(self, path, body=None):
        return self.ok("POST", path, body)

    def g(self, path, **params):
        return self.ok("GET", path, **params)

    def experiment(self, name):
        return self.p("experiments/create", {"name": name})["experiment_id"]

    def run(self, experiment_id):
        return self.p("runs/create", {"experiment_id": experiment_id})["run"]["info"]["run_id"]

    def log_series(self, run_id, key, values, t0=1_700_000_000_000):
        for i in range(0, len(values), 1000):
            ms = [{"key": key, "value": v, "timestamp": t0 + i + k, "step": i + k}
                  for k, v in enumerate(values[i:i + 1000])]
            self.p("runs/log-batch", {"run_id": run_id, "metrics": ms})


@pytest.fixture
def ml(make_user):
    return ML(make_user().client())


@pytest.fixture(params=PREFIXES, ids=["api", "ajax-api"])
def mlp(make_user, request):
    return ML(make_user().client(), request.param)


@pytest.fixture
def stranger(make_user):
    """Another user, in a project of their own."""
    return ML(make_user().client())


# ---- get-history-bulk-interval ---------------------------------------------------------


def test_bulk_interval_samples_each_run_keeping_peaks(mlp):
    eid = mlp.experiment("bulk")
    a, b = mlp.run(eid), mlp.run(eid)
    va = [((i * 37) % 101) / 10.0 for i in range(3000)]
    va[1234], va[2222] = -50.0, 75.0
    mlp.log_series(a, "loss", va)
    mlp.log_series(b, "loss", [float(i) for i in range(500)])
    out = mlp.g("metrics/get-history-bulk-interval", run_ids=[a, b], metric_key="loss", max_results=100)["metrics"]
    of_a = [m for m in out if m["run_id"] == a]
    of_b = [m for m in out if m["run_id"] == b]
    assert 0 < len(of_a) <= 100 and 0 < len(of_b) <= 100
    assert {m["value"] for m in of_a} >= {-50.0, 75.0}
    assert [m["step"] for m in of_a] == sorted(m["step"] for m in of_a)
    assert of_a[0]["step"] == 0 and of_a[-1]["step"] == 2999
    assert all(m["key"] == "loss" for m in out)
    # a run shorter than max_results comes back whole when the range allows
    whole = mlp.g("metrics/get-history-bulk-interval", run_ids=[b], metric_key="loss", max_results=2500)["metrics"]
    assert [m["step"] for m in whole] == list(range(500))
    # step range, inclusive
    part = mlp.g("metrics/get-history-bulk-interval", run_ids=[b], metric_key="loss", start_step=10, end_step=19)
    assert [m["step"] for m in part["metrics"]] == list(range(10, 20))
    # default max_results (2500 per run)
    assert len(mlp.g("metrics/get-history-bulk-interval", run_ids=[a], metric_key="loss")["metrics"]) <= 2500
    # no points for the key: an empty message
    assert mlp.g("metrics/get-history-bulk-interval", run_ids=[a], metric_key="nothing") == {}


def test_bulk_interval_errors_and_limits(ml, stranger):
    eid = ml.experiment("bulk-errors")
    rid = ml.run(eid)
    ml.log_series(rid, "m", [1.0, 2.0])
    get = lambda **q: ml.get("metrics/get-history-bulk-interval", **q)  # noqa: E731
    err(get(run_ids=[rid]), 400, "INVALID_PARAMETER_VALUE", "metric_key")
    err(get(metric_key="m"), 400, "INVALID_PARAMETER_VALUE", "at least one run_id")
    err(get(run_ids=[rid] * 101, metric_key="m"), 400, "INVALID_PARAMETER_VALUE", "100")
    err(get(run_ids=[rid], metric_key="m", max_results=0), 400, "INVALID_PARAMETER_VALUE", "max_results")
    err(get(run_ids=[rid], metric_key="m", max_results=2501), 400, "INVALID_PARAMETER_VALUE", "2500")
    err(get(run_ids=[rid], metric_key="m", max_results="x"), 400, "INVALID_PARAMETER_VALUE")
    err(get(run_ids=[rid], metric_key="m", start_step=5, end_step=1), 400, "INVALID_PARAMETER_VALUE", "end_step")
    err(get(run_ids=["0" * 32], metric_key="m"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert len(get(run_ids=[rid] * 100, metric_key="m").json()["metrics"]) == 200
    # another project's run answers like a missing one
    err(stranger.get("metrics/get-history-bulk-interval", run_ids=[rid], metric_key="m"), 404,
        "RESOURCE_DOES_NOT_EXIST")


# ---- Kiln's sampled series ---------------------------------------------------------------


def sampled(ml, run_id, key, **q):
    return ml.c.get(f"/api/v1/runs/{run_id}/metrics/{key}/sampled", params=q, headers=ml.headers)


def test_sampled_200k_series_keeps_global_min_and_max(ml):
    rid = ml.run(ml.experiment("long"))
    rnd = random.Random(7)
    values = [rnd.uniform(-1, 1) for _ in range(200_000)]
    lo_at, hi_at = rnd.randrange(200_000), rnd.randrange(200_000)
    values[lo_at], values[hi_at] = -1234.5, 4321.5
    ml.log_series(rid, "train/loss", values)
    t = time.monotonic()
    r = sampled(ml, rid, "train/loss", points=400)
    took = time.monotonic() - t
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_points"] == 200_000 and body["sampled"] is True and body["x"] == "step"
    pts = body["metrics"]
    assert body["points"] == len(pts) and 100 <= len(pts) <= 400
    vals = [p["value"] for p in pts]
    assert min(vals) == -1234.5 and max(vals) == 4321.5
    steps = [p["step"] for p in pts]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 199_999
    assert {p["step"] for p in pts} >= {lo_at, hi_at}
    assert took < 5, took
    # the same over timestamps, and a range
    bt = sampled(ml, rid, "train/loss", points=400, x="time").json()
    assert bt["x"] == "time" and min(p["value"] for p in bt["metrics"]) == -1234.5
    part = sampled(ml, rid, "train/loss", points=1000, start=100, end=599).json()
    assert part["total_points"] == 500 and part["sampled"] is False
    assert [p["step"] for p in part["metrics"]] == list(range(100, 600))
    # the dashboard's name for the size
    assert len(sampled(ml, rid, "train/loss", max_points=40).json()["metrics"]) <= 40


def test_sampled_small_series_errors_and_projects(ml, stranger):
    rid = ml.run(ml.experiment("short"))
    ml.log_series(rid, "acc", [0.1, 0.5, 0.3])
    body = sampled(ml, rid, "acc").json()
    assert [p["value"] for p in body["metrics"]] == [0.1, 0.5, 0.3] and body["sampled"] is False
    assert sampled(ml, rid, "nothing").json()["total_points"] == 0
    assert len(sampled(ml, rid, "acc", points=1).json()["metrics"]) == 1
    err(sampled(ml, rid, "acc", points=0), 400, "INVALID_PARAMETER_VALUE", "points")
    err(sampled(ml, rid, "acc", points=100_001), 400, "INVALID_PARAMETER_VALUE", "points")
    err(sampled(ml, rid, "acc", x="value"), 400, "INVALID_PARAMETER_VALUE", "x must be")
    err(sampled(ml, rid, "acc", start=5, end=1), 400, "INVALID_PARAMETER_VALUE")
    err(ml.c.get(f"/api/v1/runs/{rid}/metrics/acc"), 404, "ENDPOINT_NOT_FOUND")
    err(sampled(ml, "f" * 32, "acc"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(sampled(stranger, rid, "acc"), 404, "RESOURCE_DOES_NOT_EXIST")


# ---- runs/log-inputs ------------------------------------------------------------------------


def dataset(name="train", digest="abc123", **kw):
    return {"name": name, "digest": digest, "source_type": "local", "source": '{"uri": "/data/train.csv"}', **kw}


def test_log_inputs_shown_in_get_and_search(mlp):
    eid = mlp.experiment("inputs")
    a, b = mlp.run(eid), mlp.run(eid)
    ds = dataset(schema='{"mlflow_colspec": []}', profile='{"num_rows": 10}')
    mlp.p("runs/log-inputs", {"run_id": a, "datasets": [
        {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": ds},
        {"dataset": dataset("eval", "ffff")}]})
    # the same dataset again (other tags): the first input stays
    mlp.p("runs/log-inputs", {"run_id": a, "datasets": [
        {"tags": [{"key": "mlflow.data.context", "value": "other"}], "dataset": ds}]})
    mlp.p("runs/log-inputs", {"run_id": b, "datasets": [{"dataset": ds}]})
    run = mlp.g("runs/get", run_id=a)["run"]
    inputs = run["inputs"]["dataset_inputs"]
    assert [i["dataset"]["name"] for i in inputs] == ["train", "eval"]
    assert inputs[0]["tags"] == [{"key": "mlflow.data.context", "value": "training"}]
    assert inputs[0]["dataset"] == ds
    assert "tags" not in inputs[1]
    found = mlp.p("runs/search", {"experiment_ids": [eid]})["runs"]
    by_id = {r["info"]["run_id"]: r for r in found}
    assert by_id[b]["inputs"]["dataset_inputs"] == [{"dataset": ds}]
    # models as inputs; a run without inputs has an empty RunInputs
    mlp.p("runs/log-inputs", {"run_id": b, "models": [{"model_id": "m-" + "1" * 32}]})
    assert mlp.g("runs/get", run_id=b)["run"]["inputs"]["model_inputs"] == [{"model_id": "m-" + "1" * 32}]
    assert mlp.g("runs/get", run_id=mlp.run(eid))["run"]["inputs"] == {}


def test_log_inputs_errors_and_limits(ml, stranger):
    rid = ml.run(ml.experiment("inputs-errors"))
    li = lambda body: ml.post("runs/log-inputs", body)  # noqa: E731
    err(li({"datasets": [{"dataset": dataset()}]}), 400, "INVALID_PARAMETER_VALUE", "run_id")
    err(li({"run_id": rid, "datasets": [{"tags": []}]}), 400, "INVALID_PARAMETER_VALUE", "dataset")
    err(li({"run_id": rid, "datasets": [{"dataset": {"name": "x", "digest": "d", "source_type": "local"}}]}), 400,
        "INVALID_PARAMETER_VALUE", "source")
    err(li({"run_id": rid, "datasets": [{"dataset": dataset(digest="d" * 37)}]}), 400, "INVALID_PARAMETER_VALUE",
        "digest")
    assert li({"run_id": rid, "datasets": [{"dataset": dataset(digest="d" * 36)}]}).status_code == 200
    err(li({"run_id": rid, "datasets": [{"dataset": dataset(name="n" * 501)}]}), 400, "INVALID_PARAMETER_VALUE",
        "name")
    err(li({"run_id": rid, "datasets": [{"dataset": dataset(), "tags": [{"key": "k", "value": "v" * 501}]}]}), 400,
        "INVALID_PARAMETER_VALUE", "value")
    err(li({"run_id": rid, "datasets": [{"dataset": dataset(), "tags": [{"key": "k" * 256, "value": "v"}]}]}), 400,
        "INVALID_PARAMETER_VALUE", "key")
    err(li({"run_id": rid, "datasets": "nope"}), 400, "INVALID_PARAMETER_VALUE")
    err(li({"run_id": "0" * 32, "datasets": [{"dataset": dataset()}]}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(stranger.post("runs/log-inputs", {"run_id": rid, "datasets": [{"dataset": dataset()}]}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    ml.p("runs/delete", {"run_id": rid})
    err(li({"run_id": rid, "datasets": [{"dataset": dataset()}]}), 400, "INVALID_PARAMETER_VALUE", "active")


# ---- runs/log-model ------------------------------------------------------------------------------


def mlmodel(run_id, path="model"):
    return json.dumps({"artifact_path": path, "run_id": run_id, "utc_time_created": "2024-01-01 00:00:00.000000",
                       "flavors": {"sklearn": {"sklearn_version": "1.2"}}})


def test_log_model_appends_history_tag(mlp, stranger):
    rid = mlp.run(mlp.experiment("log-model"))
    mlp.p("runs/log-model", {"run_id": rid, "model_json": mlmodel(rid)})
    mlp.p("runs/log-model", {"run_uuid": rid, "model_json": mlmodel(rid, "second")})
    tags = {t["key"]: t["value"] for t in mlp.g("runs/get", run_id=rid)["run"]["data"]["tags"]}
    hist = json.loads(tags["mlflow.log-model.history"])
    assert [m["artifact_path"] for m in hist] == ["model", "second"]
    err(mlp.post("runs/log-model", {"run_id": rid}), 400, "INVALID_PARAMETER_VALUE", "model_json")
    err(mlp.post("runs/log-model", {"run_id": rid, "model_json": "{not json"}), 400, "INVALID_PARAMETER_VALUE",
        "not a valid JSON")
    err(mlp.post("runs/log-model", {"run_id": rid, "model_json": json.dumps({"artifact_path": "x"})}), 400,
        "INVALID_PARAMETER_VALUE", "mandatory fields")
    err(mlp.post("runs/log-model", {"model_json": mlmodel(rid)}), 400, "INVALID_PARAMETER_VALUE", "run_id")
    err(stranger.post("runs/log-model", {"run_id": rid, "model_json": mlmodel(rid)}), 404, "RESOURCE_DOES_NOT_EXIST")


# ---- logged models (MLflow 3) -----------------------------------------------------------------------


def test_logged_models_lifecycle(mlp, stranger):
    eid = mlp.experiment("logged-models")
    rid = mlp.run(eid)
    m = mlp.p("logged-models", {"experiment_id": eid, "name": "clf", "model_type": "sklearn", "source_run_id": rid,
                                "params": [{"key": "alpha", "value": "0.1"}],
                                "tags": [{"key": "mlflow.source.name", "value": "train.py"}]})["model"]
    info = m["info"]
    mid = info["model_id"]
    assert mid.startswith("m-") and info["status"] == "LOGGED_MODEL_PENDING" and info["experiment_id"] == eid
    assert info["artifact_uri"].endswith(f"/models/{mid}/artifacts") and info["source_run_id"] == rid
    assert m["data"]["params"] == [{"key": "alpha", "value": "0.1"}]
    assert mlp.g(f"logged-models/{mid}")["model"] == m
    done = mlp.ok("PATCH", f"logged-models/{mid}", {"status": "LOGGED_MODEL_READY"})["model"]
    assert done["info"]["status"] == "LOGGED_MODEL_READY"
    assert mlp.ok("PATCH", f"logged-models/{mid}", {"status": 3})["model"]["info"]["status"] == \
        "LOGGED_MODEL_UPLOAD_FAILED"
    tagged = mlp.ok("PATCH", f"logged-models/{mid}/tags", {"tags": [{"key": "stage", "value": "dev"}]})["model"]
    assert {"key": "stage", "value": "dev"} in tagged["info"]["tags"]
    assert mlp.ok("DELETE", f"logged-models/{mid}/tags/stage") == {}
    err(mlp.req("DELETE", f"logged-models/{mid}/tags/stage"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert mlp.p(f"logged-models/{mid}/params", {"params": [{"key": "beta", "value": "2"}]}) == {}
    assert {"key": "beta", "value": "2"} in mlp.g(f"logged-models/{mid}")["model"]["data"]["params"]
    # unnamed: a generated name
    other = mlp.p("logged-models", {"experiment_id": eid})["model"]["info"]
    assert other["name"] and other["status"] == "LOGGED_MODEL_PENDING"
    # search: newest first, filter, paging
    found = mlp.p("logged-models/search", {"experiment_ids": [eid]})["models"]
    assert [x["info"]["model_id"] for x in found] == [other["model_id"], mid] or \
        {x["info"]["model_id"] for x in found} == {other["model_id"], mid}
    byname = mlp.p("logged-models/search", {"experiment_ids": [eid], "filter": "name = 'clf'"})["models"]
    assert [x["info"]["model_id"] for x in byname] == [mid]
    byrun = mlp.p("logged-models/search", {"filter": f"attributes.source_run_id = '{rid}' AND name = 'clf'"})
    assert [x["info"]["model_id"] for x in byrun["models"]] == [mid]
    page = mlp.p("logged-models/search", {"experiment_ids": [eid], "max_results": 1})
    assert len(page["models"]) == 1 and page["next_page_token"]
    rest = mlp.p("logged-models/search", {"experiment_ids": [eid], "max_results": 1,
                                          "page_token": page["next_page_token"]})
    assert len(rest["models"]) == 1 and "next_page_token" not in rest
    # other projects see nothing of it
    err(stranger.get(f"logged-models/{mid}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(stranger.req("PATCH", f"logged-models/{mid}", {"status": "LOGGED_MODEL_READY"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    assert stranger.p("logged-models/search", {}) == {}
    # delete: then it is gone
    assert mlp.ok("DELETE", f"logged-models/{mid}") == {}
    err(mlp.get(f"logged-models/{mid}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.req("DELETE", f"logged-models/{mid}"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_logged_models_errors(ml):
    eid = ml.experiment("lm-errors")
    err(ml.post("logged-models", {"name": "x"}), 400, "INVALID_PARAMETER_VALUE", "experiment_id")
    err(ml.post("logged-models", {"experiment_id": "999999"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.post("logged-models", {"experiment_id": eid, "source_run_id": "0" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.post("logged-models", {"experiment_id": eid, "params": [{"key": "../x", "value": "1"}]}), 400,
        "INVALID_PARAMETER_VALUE")
    mid = ml.p("logged-models", {"experiment_id": eid})["model"]["info"]["model_id"]
    err(ml.req("PATCH", f"logged-models/{mid}", {}), 400, "INVALID_PARAMETER_VALUE", "status")
    err(ml.req("PATCH", f"logged-models/{mid}", {"status": "DONE"}), 400, "INVALID_PARAMETER_VALUE", "status")
    err(ml.get("logged-models/m-" + "0" * 32), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.post(f"logged-models/{'m-' + '0' * 32}/params", {"params": [{"key": "a", "value": "1"}]}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("PATCH", f"logged-models/{'m-' + '0' * 32}/tags", {"tags": []}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.post("logged-models/search", {"filter": "metrics.acc > 1"}), 400, "INVALID_PARAMETER_VALUE", "position 1")
    err(ml.post("logged-models/search", {"filter": "name = 'x' OR name = 'y'"}), 400, "INVALID_PARAMETER_VALUE",
        "expected AND")
    err(ml.post("logged-models/search", {"max_results": 0}), 400, "INVALID_PARAMETER_VALUE", "max_results")
    err(ml.post("logged-models/search", {"max_results": 1001}), 400, "INVALID_PARAMETER_VALUE", "1000")
    err(ml.post("logged-models/search", {"page_token": "!!"}), 400, "INVALID_PARAMETER_VALUE")
    ml.p("experiments/delete", {"experiment_id": eid})
    err(ml.post("logged-models", {"experiment_id": eid}), 400, "INVALID_PARAMETER_VALUE", "active")


def test_server_info(client):
    for prefix in ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"):
        r = client.get(prefix + "/server-info")
        assert r.status_code == 200, r.text
        assert r.json()["store_type"] == "SqlStore" and r.json()["workspaces_enabled"] is False


# ---- live updates (Server-Sent Events) ---------------------------------------------------------------


def read_events(resp, until_end=True, limit_s=20.0):
    """[(event, data)] of an SSE response (or of its line iterator, to go on
    where another read stopped) until the stream ends."""
    events, ev, data = [], "message", []
    deadline = time.monotonic() + limit_s
    lines = resp.iter_lines(decode_unicode=True) if hasattr(resp, "iter_lines") else resp
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line == "":
            if data:
                events.append((ev, json.loads("\n".join(data))))
            ev, data = "message", []
        elif line.startswith(":"):
            events.append(("comment", line))
        elif line.startswith("event:"):
            ev = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def test_events_stream_points_logged_after_subscribing(ml):
    rid = ml.run(ml.experiment("live"))
    r = ml.c.get(f"/api/v1/runs/{rid}/events", stream=True, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    lines = r.iter_lines(decode_unicode=True)
    first = [next(lines) for _ in range(4)]  # retry, blank, event: status, data
    assert "event: status" in first and any('"RUNNING"' in x for x in first)

    def writer():
        for i in range(5):
            ml.p("runs/log-batch", {"run_id": rid, "metrics": [
                {"key": "loss", "value": 1.0 / (i * 10 + k + 1), "timestamp": 1000 + i * 10 + k, "step": i * 10 + k}
                for k in range(10)]})
            time.sleep(0.1)
        ml.p("runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.9, "timestamp": 5000, "step": 50})
        ml.p("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 6000})

    t = threading.Thread(target=writer)
    t.start()
    events = []
    ev, data = "message", []
    for line in lines:
        if line == "":
            if data:
                events.append((ev, json.loads("\n".join(data))))
            ev, data = "message", []
        elif line.startswith("event:"):
            ev = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    t.join()
    points = [m for e, d in events if e == "metrics" for m in d["metrics"]]
    assert sorted(p["step"] for p in points if p["key"] == "loss") == list(range(50))
    assert [p["value"] for p in points if p["key"] == "acc"] == [0.9]
    # batched: fewer metric events than writes
    assert 1 <= sum(1 for e, _ in events if e == "metrics") <= 6
    assert events[-1] == ("status", {"run_id": rid, "status": "FINISHED"})


def test_events_of_a_finished_run_end_at_once_and_projects(ml, stranger):
    rid = ml.run(ml.experiment("live-done"))
    ml.p("runs/update", {"run_id": rid, "status": "KILLED"})
    r = ml.c.get(f"/api/v1/runs/{rid}/events", stream=True, timeout=10)
    events = read_events(r)
    assert events == [("status", {"run_id": rid, "status": "KILLED"})]
    err(ml.c.get(f"/api/v1/runs/{'0' * 32}/events"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(stranger.c.get(f"/api/v1/runs/{rid}/events"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_events_streams_end_when_their_run_or_experiment_is_deleted(ml):
    eid = ml.experiment("live-deleted")
    gone, other = ml.run(eid), ml.run(eid)
    r = ml.c.get(f"/api/v1/runs/{gone}/events", stream=True, timeout=15)
    lines = r.iter_lines(decode_unicode=True)
    assert "event: status" in [next(lines) for _ in range(4)]
    # NaN and infinities go out as the history answers them
    ml.p("runs/log-batch", {"run_id": gone, "metrics": [
        {"key": "odd", "value": v, "timestamp": 1, "step": i} for i, v in enumerate(["NaN", "Infinity", "-Infinity"])]})
    time.sleep(0.6)  # past one flush, so the points go out before the deletion
    ml.p("runs/delete", {"run_id": gone})
    events = read_events(lines)
    points = [m for e, d in events if e == "metrics" for m in d["metrics"]]
    assert [p["value"] for p in points] == ["NaN", 1.7976931348623157e308, -1.7976931348623157e308]
    assert events[-1] == ("deleted", {"run_id": gone})
    # a whole experiment: every stream of its runs ends
    s2 = ml.c.get(f"/api/v1/runs/{other}/events", stream=True, timeout=15)
    lines2 = s2.iter_lines(decode_unicode=True)
    next(lines2)
    ml.p("experiments/delete", {"experiment_id": eid})
    assert read_events(lines2)[-1] == ("deleted", {"run_id": other})
    # restored, its runs stream again
    ml.p("experiments/restore", {"experiment_id": eid})
    s3 = ml.c.get(f"/api/v1/runs/{other}/events", stream=True, timeout=15)
    assert s3.status_code == 200
    ml.p("runs/update", {"run_id": other, "status": "FINISHED"})
    assert read_events(s3)[-1] == ("status", {"run_id": other, "status": "FINISHED"})


def test_events_stream_gauge_and_drop_counter_exported(ml, server, make_server):
    fresh = make_server().client().get("/metrics").text  # registered at start, before any stream
    assert "kiln_track_events_subscribers 0" in fresh and "kiln_track_events_dropped_total 0" in fresh
    rid = ml.run(ml.experiment("live-metrics"))
    r = ml.c.get(f"/api/v1/runs/{rid}/events", stream=True, timeout=10)
    next(r.iter_lines())
    text = server.client().get("/metrics").text
    assert "kiln_track_events_subscribers" in text and "kiln_track_events_dropped_total" in text
    ml.p("runs/update", {"run_id": rid, "status": "FINISHED"})
    read_events(r)


def test_events_streams_end_when_the_server_stops(make_server):
    srv = make_server()
    admin = ML(srv.admin_client())
    rid = admin.run(admin.experiment("live-shutdown"))
    streams = [srv.admin_client().get(f"/api/v1/runs/{rid}/events", stream=True, timeout=20) for _ in range(3)]
    for r in streams:
        assert r.status_code == 200
        next(r.iter_lines())  # the stream is open and parked
    t = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t < 5
    for r in streams:
        r.close()

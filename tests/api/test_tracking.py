"""MLflow tracking REST API (experiments, runs, params, metrics, tags) over
HTTP, under /api/2.0/mlflow and its /ajax-api alias: happy paths, MLflow's
error codes and messages, limits, lifecycle, param immutability, the
latest-metric rule, paging, and tenancy (projects never see each other)."""

from __future__ import annotations

import time

import pytest

from kiln_harness import wait_for

PREFIXES = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"]


def err(r, status, code, fragment=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code, r.text
    if fragment is not None:
        assert fragment in body["message"], body["message"]
    return body["message"]


class ML:
    """MLflow calls on a checking client; .post/.get answer the response,
    .p/.g assert 200 and answer the JSON."""

    def __init__(self, client, prefix=PREFIXES[0], headers=None):
        self.c, self.prefix, self.headers = client, prefix, dict(headers or {})

    def post(self, path, body=None, **kw):
        return self.c.post(self.prefix + "/" + path, json={} if body is None else body,
                           headers=self.headers, **kw)

    def get(self, path, **params):
        return self.c.get(self.prefix + "/" + path, params=params, headers=self.headers)

    def p(self, path, body=None):
        r = self.post(path, body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def g(self, path, **params):
        r = self.get(path, **params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    # helpers
    def experiment(self, name, **kw):
        return self.p("experiments/create", {"name": name, **kw})["experiment_id"]

    def run(self, experiment_id, **kw):
        return self.p("runs/create", {"experiment_id": experiment_id, **kw})["run"]

    def history(self, run_id, key, **kw):
        return self.g("metrics/get-history", run_id=run_id, metric_key=key, **kw).get("metrics", [])


@pytest.fixture
def ml(make_user):
    u = make_user()
    return ML(u.client())


@pytest.fixture(params=PREFIXES, ids=["api", "ajax-api"])
def mlp(make_user, request):
    """A fresh user's MLflow client on either path prefix."""
    u = make_user()
    return ML(u.client(), request.param)


def tags_of(entity):
    return {t["key"]: t.get("value", "") for t in entity.get("tags", entity.get("data", {}).get("tags", []))}


# ---- experiments -----------------------------------------------------------------------


def test_experiment_lifecycle_and_errors(mlp):
    eid = mlp.experiment("exp-a", tags=[{"key": "team", "value": "fraud"}])
    assert eid.isdigit() and eid != "0"
    e = mlp.g("experiments/get", experiment_id=eid)["experiment"]
    assert e["name"] == "exp-a" and e["lifecycle_stage"] == "active"
    assert e["artifact_location"] == f"mlflow-artifacts:/{eid}"
    assert e["creation_time"] == e["last_update_time"] > 0
    assert tags_of(e) == {"team": "fraud"}
    assert mlp.g("experiments/get-by-name", experiment_name="exp-a")["experiment"] == e

    # errors on create
    err(mlp.post("experiments/create", {"name": "exp-a"}), 400, "RESOURCE_ALREADY_EXISTS",
        "Experiment(name=exp-a) already exists")
    err(mlp.post("experiments/create", {}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'name'")
    err(mlp.post("experiments/create", {"name": 5.5}), 400, "INVALID_PARAMETER_VALUE", "Invalid value 5.5")
    err(mlp.post("experiments/create", {"name": "x" * 501}), 400, "INVALID_PARAMETER_VALUE",
        "maximum length of 500")
    err(mlp.post("experiments/create", {"name": "r", "artifact_location": "runs:/abc"}), 400,
        "INVALID_PARAMETER_VALUE", "runs:/ URI")
    err(mlp.post("experiments/create", {"name": "t", "tags": [{"key": "v", "value": "x" * 5001}]}), 400,
        "INVALID_PARAMETER_VALUE", "exceeded length limit of 5000")
    err(mlp.get("experiments/get", experiment_id="987654"), 404, "RESOURCE_DOES_NOT_EXIST",
        "No Experiment with id=987654 exists")
    err(mlp.get("experiments/get", experiment_id="abc"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.get("experiments/get"), 400, "INVALID_PARAMETER_VALUE", "'experiment_id'")
    err(mlp.get("experiments/get-by-name", experiment_name="nope"), 404, "RESOURCE_DOES_NOT_EXIST",
        "Could not find experiment with name 'nope'")

    # tags
    assert mlp.p("experiments/set-experiment-tag", {"experiment_id": eid, "key": "stage", "value": "dev"}) == {}
    assert mlp.p("experiments/set-experiment-tag", {"experiment_id": eid, "key": "stage", "value": "prod"}) == {}
    assert tags_of(mlp.g("experiments/get", experiment_id=eid)["experiment"]) == {"team": "fraud", "stage": "prod"}
    assert mlp.p("experiments/delete-experiment-tag", {"experiment_id": eid, "key": "team"}) == {}
    err(mlp.post("experiments/delete-experiment-tag", {"experiment_id": eid, "key": "team"}), 404,
        "RESOURCE_DOES_NOT_EXIST", "No tag with name: team")
    err(mlp.post("experiments/set-experiment-tag", {"experiment_id": eid, "key": "bad/../k", "value": "v"}), 400,
        "INVALID_PARAMETER_VALUE", "Invalid tag name")
    err(mlp.post("experiments/set-experiment-tag", {"experiment_id": eid, "key": "k"}), 400,
        "INVALID_PARAMETER_VALUE", "'value'")

    # rename
    assert mlp.p("experiments/update", {"experiment_id": eid, "new_name": "exp-b"}) == {}
    assert mlp.g("experiments/get-by-name", experiment_name="exp-b")["experiment"]["experiment_id"] == eid
    err(mlp.get("experiments/get-by-name", experiment_name="exp-a"), 404, "RESOURCE_DOES_NOT_EXIST")
    other = mlp.experiment("exp-c")
    err(mlp.post("experiments/update", {"experiment_id": other, "new_name": "exp-b"}), 400,
        "RESOURCE_ALREADY_EXISTS")
    err(mlp.post("experiments/update", {"experiment_id": eid}), 400, "INVALID_PARAMETER_VALUE", "'new_name'")

    # delete / restore carry the runs
    run = mlp.run(eid)["info"]["run_id"]
    assert mlp.p("experiments/delete", {"experiment_id": eid}) == {}
    e = mlp.g("experiments/get", experiment_id=eid)["experiment"]
    assert e["lifecycle_stage"] == "deleted" and e["last_update_time"] >= e["creation_time"]
    assert mlp.g("runs/get", run_id=run)["run"]["info"]["lifecycle_stage"] == "deleted"
    err(mlp.post("experiments/delete", {"experiment_id": eid}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.post("experiments/update", {"experiment_id": eid, "new_name": "z"}), 400, "INVALID_STATE",
        "Cannot rename a non-active experiment.")
    err(mlp.post("experiments/set-experiment-tag", {"experiment_id": eid, "key": "k", "value": "v"}), 400,
        "INVALID_PARAMETER_VALUE", "must be in the 'active' state")
    err(mlp.post("experiments/delete-experiment-tag", {"experiment_id": eid, "key": "stage"}), 400,
        "INVALID_PARAMETER_VALUE", "must be in the 'active' state")
    err(mlp.post("runs/create", {"experiment_id": eid}), 400, "INVALID_PARAMETER_VALUE",
        "must be in the 'active' state")
    # a deleted experiment's name stays taken, as in MLflow
    err(mlp.post("experiments/create", {"name": "exp-b"}), 400, "RESOURCE_ALREADY_EXISTS")
    names = [x["name"] for x in mlp.p("experiments/search", {}).get("experiments", [])]
    assert "exp-b" not in names and "exp-c" in names and "Default" in names
    deleted = mlp.p("experiments/search", {"view_type": "DELETED_ONLY"})["experiments"]
    assert [x["name"] for x in deleted] == ["exp-b"]
    assert mlp.p("experiments/restore", {"experiment_id": eid}) == {}
    err(mlp.post("experiments/restore", {"experiment_id": eid}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert mlp.g("runs/get", run_id=run)["run"]["info"]["lifecycle_stage"] == "active"
    everything = mlp.g("experiments/search", view_type="ALL")["experiments"]
    assert {x["name"] for x in everything} == {"Default", "exp-b", "exp-c"}


def test_default_experiment_zero_per_project(make_user):
    a, b = ML(make_user().client()), ML(make_user().client())
    da = a.g("experiments/get", experiment_id="0")["experiment"]
    db = b.g("experiments/get", experiment_id="0")["experiment"]
    assert da["name"] == db["name"] == "Default"
    assert da["experiment_id"] != db["experiment_id"]  # one Default per project
    assert a.g("experiments/get-by-name", experiment_name="Default")["experiment"] == da
    # runs/create without an experiment, or with "0", lands in the Default
    r1 = a.p("runs/create", {})["run"]["info"]
    r2 = a.run("0")["info"]
    assert r1["experiment_id"] == r2["experiment_id"] == da["experiment_id"]
    found = a.p("runs/search", {"experiment_ids": ["0"]})["runs"]
    assert {r["info"]["run_id"] for r in found} == {r1["run_id"], r2["run_id"]}
    err(a.post("experiments/delete", {"experiment_id": "0"}), 400, "INVALID_PARAMETER_VALUE",
        "Cannot delete the default experiment '0'")
    err(a.post("experiments/delete", {"experiment_id": da["experiment_id"]}), 400, "INVALID_PARAMETER_VALUE",
        "Cannot delete the default experiment")


def test_experiment_search_paging_order_and_filter(ml):
    ml.g("experiments/get", experiment_id="0")  # the Default, made on first use, is the oldest here
    ids = []
    for i in range(5):
        time.sleep(0.003)  # distinct creation times: the default order is creation_time DESC
        ids.append(ml.experiment(f"s-{i}"))
    ml.p("experiments/set-experiment-tag", {"experiment_id": ids[2], "key": "k", "value": "v"})
    # newest first by default; the Default (made at first look) is oldest of all
    page1 = ml.p("experiments/search", {"max_results": 2})
    assert [e["experiment_id"] for e in page1["experiments"]] == [ids[4], ids[3]]
    seen, token = [], None
    while True:
        body = {"max_results": "2"} | ({"page_token": token} if token else {})
        page = ml.p("experiments/search", body)
        seen += [e["name"] for e in page.get("experiments", [])]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [f"s-{i}" for i in range(4, -1, -1)] + ["Default"]
    assert len(page["experiments"]) == 2  # a token only when more rows exist
    names = [e["name"] for e in ml.g("experiments/search", order_by=["name DESC"])["experiments"]]
    assert names == sorted(names, reverse=True)
    asc = ml.g("experiments/search", order_by="experiment_id ASC", max_results=3)["experiments"]
    assert [e["experiment_id"] for e in asc] == sorted([e["experiment_id"] for e in asc], key=int)
    r = ml.p("experiments/search", {"filter": "name LIKE 's-%' AND tags.k = 'v'"})
    assert [e["experiment_id"] for e in r["experiments"]] == [ids[2]]
    assert ml.p("experiments/search", {"filter": "name = 'nothing'"}) == {}
    err(ml.post("experiments/search", {"filter": "name LIKE"}), 400, "INVALID_PARAMETER_VALUE", "position")
    err(ml.post("experiments/search", {"order_by": ["bogus DESC"]}), 400, "INVALID_PARAMETER_VALUE")
    err(ml.post("experiments/search", {"max_results": 50001}), 400, "INVALID_PARAMETER_VALUE",
        "at most 50000")
    err(ml.post("experiments/search", {"max_results": 0}), 400, "INVALID_PARAMETER_VALUE",
        "It must be a positive integer, but got value 0")
    err(ml.post("experiments/search", {"page_token": "%%%"}), 400, "INVALID_PARAMETER_VALUE",
        "Invalid page token, could not base64-decode")
    err(ml.post("experiments/search", {"view_type": "SOME"}), 400, "INVALID_PARAMETER_VALUE")
    assert len(ml.p("experiments/search", {"max_results": 50000})["experiments"]) == 6


# ---- runs ----------------------------------------------------------------------------------


def test_run_lifecycle_tags_and_update(mlp):
    eid = mlp.experiment("runs")
    run = mlp.run(eid, run_name="first", start_time="1700000000000",
                  tags=[{"key": "mlflow.user", "value": "alice"}, {"key": "t", "value": "1"}],
                  unknown_field=True)
    info = run["info"]
    rid = info["run_id"]
    assert len(rid) == 32 and int(rid, 16) >= 0 and info["run_uuid"] == rid
    assert info["experiment_id"] == eid and info["status"] == "RUNNING" and info["lifecycle_stage"] == "active"
    assert info["start_time"] == 1700000000000 and "end_time" not in info
    assert info["run_name"] == "first"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{eid}/{rid}/artifacts"
    assert tags_of(run) == {"mlflow.runName": "first", "mlflow.user": "alice", "t": "1"}
    assert run["data"].keys() == {"tags"} and run["inputs"] == {}

    # a generated name when none is given; nested runs through mlflow.parentRunId
    child = mlp.run(eid, tags=[{"key": "mlflow.parentRunId", "value": rid}])
    assert child["info"]["run_name"] and tags_of(child)["mlflow.runName"] == child["info"]["run_name"]
    assert tags_of(child)["mlflow.parentRunId"] == rid
    err(mlp.post("runs/create", {"experiment_id": eid, "run_name": "a",
                                 "tags": [{"key": "mlflow.runName", "value": "b"}]}), 400,
        "INVALID_PARAMETER_VALUE", "Both 'run_name' argument and 'mlflow.runName' tag")
    err(mlp.post("runs/create", {"experiment_id": "424242"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.post("runs/create", {"experiment_id": eid, "tags": [{"key": "/abs", "value": "1"}]}), 400,
        "INVALID_PARAMETER_VALUE", "Invalid tag name")

    assert mlp.g("runs/get", run_id=rid)["run"] == run
    assert mlp.g("runs/get", run_uuid=rid)["run"]["info"]["run_id"] == rid
    err(mlp.get("runs/get", run_id="f" * 32), 404, "RESOURCE_DOES_NOT_EXIST", f"Run with id={'f' * 32} not found")
    err(mlp.get("runs/get"), 400, "INVALID_PARAMETER_VALUE", "'run_id'")

    # update: status, end time, name (which is also the mlflow.runName tag)
    ri = mlp.p("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 1700000005000,
                               "run_name": "renamed"})["run_info"]
    assert ri["status"] == "FINISHED" and ri["end_time"] == 1700000005000 and ri["run_name"] == "renamed"
    assert tags_of(mlp.g("runs/get", run_id=rid)["run"])["mlflow.runName"] == "renamed"
    assert mlp.p("runs/update", {"run_uuid": rid, "status": 4})["run_info"]["status"] == "FAILED"
    err(mlp.post("runs/update", {"run_id": rid, "status": "DONE"}), 400, "INVALID_PARAMETER_VALUE")
    err(mlp.post("runs/update", {"status": "FINISHED"}), 400, "INVALID_PARAMETER_VALUE", "'run_id'")

    # tags: set (mlflow.runName renames), delete
    assert mlp.p("runs/set-tag", {"run_id": rid, "key": "mlflow.runName", "value": "via-tag"}) == {}
    assert mlp.g("runs/get", run_id=rid)["run"]["info"]["run_name"] == "via-tag"
    assert mlp.p("runs/set-tag", {"run_id": rid, "key": "note", "value": "x" * 9000}) == {}
    assert tags_of(mlp.g("runs/get", run_id=rid)["run"])["note"] == "x" * 8000  # truncated, as MLflow
    assert mlp.p("runs/delete-tag", {"run_id": rid, "key": "note"}) == {}
    err(mlp.post("runs/delete-tag", {"run_id": rid, "key": "note"}), 404, "RESOURCE_DOES_NOT_EXIST",
        "No tag with name: note")
    err(mlp.post("runs/set-tag", {"run_id": rid, "key": "k"}), 400, "INVALID_PARAMETER_VALUE", "'value'")

    # delete / restore (idempotent); a deleted run takes no writes
    assert mlp.p("runs/delete", {"run_id": rid}) == {}
    assert mlp.p("runs/delete", {"run_id": rid}) == {}
    assert mlp.g("runs/get", run_id=rid)["run"]["info"]["lifecycle_stage"] == "deleted"
    msg = f"The run {rid} must be in the 'active' state. Current state is deleted."
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 1}), 400,
        "INVALID_PARAMETER_VALUE", msg)
    err(mlp.post("runs/set-tag", {"run_id": rid, "key": "k", "value": "v"}), 400, "INVALID_PARAMETER_VALUE", msg)
    err(mlp.post("runs/delete-tag", {"run_id": rid, "key": "t"}), 400, "INVALID_PARAMETER_VALUE", msg)
    err(mlp.post("runs/update", {"run_id": rid, "status": "KILLED"}), 400, "INVALID_PARAMETER_VALUE", msg)
    active = mlp.p("runs/search", {"experiment_ids": [eid]})["runs"]
    assert [r["info"]["run_id"] for r in active] == [child["info"]["run_id"]]
    gone = mlp.p("runs/search", {"experiment_ids": [eid], "run_view_type": "DELETED_ONLY"})["runs"]
    assert [r["info"]["run_id"] for r in gone] == [rid]
    assert len(mlp.p("runs/search", {"experiment_ids": [eid], "run_view_type": 3})["runs"]) == 2
    assert mlp.p("runs/restore", {"run_id": rid}) == {}
    assert mlp.p("runs/restore", {"run_id": rid}) == {}
    assert mlp.g("runs/get", run_id=rid)["run"]["info"]["lifecycle_stage"] == "active"
    err(mlp.post("runs/delete", {"run_id": "0" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.post("runs/restore", {}), 400, "INVALID_PARAMETER_VALUE", "'run_id'")


def test_logging_latest_rule_history_and_param_immutability(mlp):
    rid = mlp.run(mlp.experiment("log"))["info"]["run_id"]
    # log-metric: int64 fields as numbers or strings, step defaults to 0
    assert mlp.p("runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.5, "timestamp": "1000"}) == {}
    assert mlp.p("runs/log-metric", {"run_uuid": rid, "key": "acc", "value": 0.9, "timestamp": 900, "step": 3}) == {}
    # a later timestamp at a lower step does not become the latest
    assert mlp.p("runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.1, "timestamp": 5000, "step": 2}) == {}
    # same step: the later timestamp wins; same step and timestamp: the higher value
    mlp.p("runs/log-batch", {"run_id": rid, "metrics": [
        {"key": "loss", "value": 3.0, "timestamp": 10, "step": 1},
        {"key": "loss", "value": 2.0, "timestamp": 20, "step": 1},
        {"key": "loss", "value": 1.0, "timestamp": 15, "step": 1},
        {"key": "tie", "value": 1.0, "timestamp": 10, "step": 1},
        {"key": "tie", "value": 7.0, "timestamp": 10, "step": 1},
        {"key": "tie", "value": 4.0, "timestamp": 10, "step": 1},
        {"key": "nan", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "big", "value": "Infinity", "timestamp": 1},
    ]})
    # and later calls compete with what is stored
    mlp.p("runs/log-metric", {"run_id": rid, "key": "tie", "value": 5.0, "timestamp": 10, "step": 1})
    mlp.p("runs/log-metric", {"run_id": rid, "key": "loss", "value": 9.0, "timestamp": 19, "step": 1})
    latest = {m["key"]: m for m in mlp.g("runs/get", run_id=rid)["run"]["data"]["metrics"]}
    assert latest["acc"] == {"key": "acc", "value": 0.9, "timestamp": 900, "step": 3}
    assert latest["loss"]["value"] == 2.0 and latest["loss"]["timestamp"] == 20
    assert latest["tie"]["value"] == 7.0
    assert latest["nan"]["value"] == "NaN"
    assert latest["big"]["value"] == pytest.approx(1.7976931348623157e308)

    # history: every point in (step, timestamp) order; an identical point is stored once
    mlp.p("runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.9, "timestamp": 900, "step": 3})
    h = mlp.history(rid, "acc")
    assert [(m["step"], m["timestamp"], m["value"]) for m in h] == [(0, 1000, 0.5), (2, 5000, 0.1), (3, 900, 0.9)]
    assert mlp.history(rid, "missing-key") == []
    err(mlp.get("metrics/get-history", run_id=rid), 400, "INVALID_PARAMETER_VALUE", "'metric_key'")
    err(mlp.get("metrics/get-history", run_id="a" * 32, metric_key="acc"), 404, "RESOURCE_DOES_NOT_EXIST")

    # params: same value again is fine, a different one is refused with MLflow's message
    assert mlp.p("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.01"}) == {}
    assert mlp.p("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.01"}) == {}
    err(mlp.post("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.02"}), 400,
        "INVALID_PARAMETER_VALUE",
        f"Changing param values is not allowed. Param with key='lr' was already logged with value='0.01' "
        f"for run ID='{rid}'. Attempted logging new value '0.02'.")
    m = err(mlp.post("runs/log-batch", {"run_id": rid, "params": [{"key": "lr", "value": "0.03"}],
                                        "metrics": [{"key": "after", "value": 1, "timestamp": 1}]}),
            400, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed. Params were already logged=")
    assert "'old_value': '0.01', 'new_value': '0.03'" in m
    # the failed batch wrote nothing (one job, all or nothing)
    assert mlp.history(rid, "after") == []
    assert mlp.p("runs/log-parameter", {"run_id": rid, "key": "empty", "value": ""}) == {}
    err(mlp.post("runs/log-parameter", {"run_id": rid, "key": "p"}), 400, "INVALID_PARAMETER_VALUE", "'value'")
    params = {p["key"]: p.get("value", "") for p in mlp.g("runs/get", run_id=rid)["run"]["data"]["params"]}
    assert params == {"lr": "0.01", "empty": ""}

    # log-metric field errors
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "m", "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE",
        "'value'")
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1}), 400, "INVALID_PARAMETER_VALUE",
        "'timestamp'")
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "m", "value": "high", "timestamp": 1}), 400,
        "INVALID_PARAMETER_VALUE", "valid double")
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": -1}), 400,
        "INVALID_PARAMETER_VALUE", "Timestamp must be a nonnegative long")
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": "soon"}), 400,
        "INVALID_PARAMETER_VALUE", "'timestamp'")
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "a//b", "value": 1, "timestamp": 1}), 400,
        "INVALID_PARAMETER_VALUE", "This name would resolve to 'a/b'")
    err(mlp.post("runs/log-metric", {"run_id": rid, "key": "a*b", "value": 1, "timestamp": 1}), 400,
        "INVALID_PARAMETER_VALUE", "Invalid metric name: 'a*b'. Names may only contain alphanumerics")
    err(mlp.post("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE",
        "'run_id'")
    err(mlp.post("runs/log-metric", {"run_id": "b" * 32, "key": "m", "value": 1, "timestamp": 1}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    # keys: Unicode word characters, spaces, colons and slashes are fine
    mlp.p("runs/log-metric", {"run_id": rid, "key": "système/val loss:1", "value": 1, "timestamp": 1})


def test_metric_history_paging(ml):
    rid = ml.run(ml.experiment("hist"))["info"]["run_id"]
    pts = [{"key": "m", "value": float(i), "timestamp": 1000 + i, "step": i} for i in range(1000)]
    ml.p("runs/log-batch", {"run_id": rid, "metrics": pts})
    ml.p("runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": 1000.0, "timestamp": 5, "step": 1000}]})
    everything = ml.history(rid, "m")
    assert [m["step"] for m in everything] == list(range(1001))
    got, token, pages = [], None, 0
    while True:
        q = {"max_results": 300} | ({"page_token": token} if token else {})
        body = ml.g("metrics/get-history", run_id=rid, metric_key="m", **q)
        got += body.get("metrics", [])
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    assert got == everything and pages == 4
    err(ml.get("metrics/get-history", run_id=rid, metric_key="m", page_token="bm90IGpzb24="), 400,
        "INVALID_PARAMETER_VALUE", "Invalid page token")
    err(ml.get("metrics/get-history", run_id=rid, metric_key="m", max_results="x"), 400,
        "INVALID_PARAMETER_VALUE", "'max_results'")


def test_log_batch_limits_and_truncation(ml):
    rid = ml.run(ml.experiment("limits"))["info"]["run_id"]

    def metrics(n, key="m"):
        return [{"key": key, "value": i, "timestamp": i, "step": i} for i in range(n)]

    def kvs(n, prefix):
        return [{"key": f"{prefix}{i}", "value": "v"} for i in range(n)]

    err(ml.post("runs/log-batch", {"run_id": rid, "metrics": metrics(1001)}), 400, "INVALID_PARAMETER_VALUE",
        "A batch logging request can contain at most 1000 metrics. Got 1001 metrics.")
    err(ml.post("runs/log-batch", {"run_id": rid, "params": kvs(101, "p")}), 400, "INVALID_PARAMETER_VALUE",
        "at most 100 params. Got 101 params.")
    err(ml.post("runs/log-batch", {"run_id": rid, "tags": kvs(101, "t")}), 400, "INVALID_PARAMETER_VALUE",
        "at most 100 tags. Got 101 tags.")
    err(ml.post("runs/log-batch", {"run_id": rid, "metrics": metrics(900), "params": kvs(100, "p"),
                                   "tags": kvs(1, "t")}), 400, "INVALID_PARAMETER_VALUE",
        "at most 1000 metrics, params, and tags. Got 1001 metrics, params, and tags.")
    err(ml.post("runs/log-batch", {"run_id": rid, "params": [{"key": "a", "value": "1"}, {"key": "a", "value": "1"}]}),
        400, "INVALID_PARAMETER_VALUE", "Duplicate parameter keys have been submitted: ['a']")
    err(ml.post("runs/log-batch", {"run_id": rid, "params": [{"key": "k" * 251, "value": "1"}]}), 400,
        "INVALID_PARAMETER_VALUE", "had length 251, which exceeded length limit of 250")
    err(ml.post("runs/log-batch", {"run_id": rid, "metrics": [{"value": 1, "timestamp": 1}]}), 400,
        "INVALID_PARAMETER_VALUE", "Metric name cannot be None")
    err(ml.post("runs/log-batch", {"run_id": rid, "metrics": "nope"}), 400, "INVALID_PARAMETER_VALUE")
    err(ml.post("runs/log-batch", {"run_id": rid, "tags": [{"key": ".", "value": "1"}]}), 400,
        "INVALID_PARAMETER_VALUE", "Invalid tag name: '.'")
    err(ml.post("runs/log-batch", {"metrics": metrics(1)}), 400, "INVALID_PARAMETER_VALUE", "'run_id'")
    # over 1,000,000 bytes of request
    huge = {"run_id": rid, "tags": [{"key": "t", "value": "x" * 1_000_001}]}
    err(ml.post("runs/log-batch", huge), 400, "INVALID_PARAMETER_VALUE",
        "Batched logging API requests must be at most 1000000 bytes")
    # exactly at the limits is fine; long param values are cut to 6000 characters
    ok = {"run_id": rid, "metrics": metrics(800), "params": kvs(99, "p") + [{"key": "long", "value": "é" * 7000}],
          "tags": kvs(100, "t")}
    assert ml.p("runs/log-batch", ok) == {}
    data = ml.g("runs/get", run_id=rid)["run"]["data"]
    params = {p["key"]: p["value"] for p in data["params"]}
    assert len(params) == 100 and params["long"] == "é" * 6000
    assert len(ml.history(rid, "m")) == 800
    assert ml.p("runs/log-batch", {"run_id": rid}) == {}  # nothing to log is fine


def test_run_search_filter_order_and_paging(ml):
    e1, e2 = ml.experiment("search-1"), ml.experiment("search-2")
    runs = []
    for i in range(7):
        rid = ml.run(e1 if i < 5 else e2, run_name=f"r{i}", start_time=1000 + i)["info"]["run_id"]
        batch = {"run_id": rid, "params": [{"key": "lr", "value": "0.01" if i % 2 else "0.1"}],
                 "tags": [{"key": "group", "value": "a" if i < 3 else "b"}]}
        if i != 6:
            batch["metrics"] = [{"key": "acc", "value": i / 10, "timestamp": 1}]
        ml.p("runs/log-batch", batch)
        runs.append(rid)
    both = [e1, e2]
    # default order: start_time DESC
    got = [r["info"]["run_id"] for r in ml.p("runs/search", {"experiment_ids": both})["runs"]]
    assert got == runs[::-1]
    # paging: a token only while more rows exist
    seen, token, pages = [], None, 0
    while True:
        body = {"experiment_ids": both, "max_results": 3} | ({"page_token": token} if token else {})
        page = ml.p("runs/search", body)
        seen += [r["info"]["run_id"] for r in page["runs"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == runs[::-1] and pages == 3
    # order by a metric: runs without it sort last in both directions
    desc = [r["info"]["run_name"] for r in ml.p("runs/search", {"experiment_ids": both,
                                                               "order_by": ["metrics.acc DESC"]})["runs"]]
    assert desc == ["r5", "r4", "r3", "r2", "r1", "r0", "r6"]
    asc = [r["info"]["run_name"] for r in ml.p("runs/search", {"experiment_ids": both,
                                                              "order_by": ["metrics.`acc` ASC"]})["runs"]]
    assert asc == ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    # filters are pushed into SQL
    f = "metrics.acc > 0.15 and params.lr = '0.01' and tags.group = 'b'"
    got = [r["info"]["run_name"] for r in ml.p("runs/search", {"experiment_ids": both, "filter": f,
                                                              "order_by": ["attributes.run_name"]})["runs"]]
    assert got == ["r3", "r5"]
    got = ml.p("runs/search", {"experiment_ids": [e1], "filter": "attributes.run_name LIKE 'r%'",
                               "max_results": "2"})
    assert len(got["runs"]) == 2 and got["next_page_token"]
    assert ml.p("runs/search", {"experiment_ids": both, "filter": "metrics.acc > 5"}) == {}
    # unknown and empty experiment lists match nothing
    assert ml.p("runs/search", {"experiment_ids": ["99999"]}) == {}
    assert ml.p("runs/search", {}) == {}
    err(ml.post("runs/search", {"experiment_ids": both, "filter": "metrics.acc > 'x'"}), 400,
        "INVALID_PARAMETER_VALUE", "position")
    err(ml.post("runs/search", {"experiment_ids": both, "order_by": ["metrics.acc SIDEWAYS"]}), 400,
        "INVALID_PARAMETER_VALUE")
    err(ml.post("runs/search", {"experiment_ids": both, "max_results": 50001}), 400, "INVALID_PARAMETER_VALUE",
        "It must be at most 50000, but got value 50001")
    err(ml.post("runs/search", {"experiment_ids": both, "max_results": -3}), 400, "INVALID_PARAMETER_VALUE",
        "but got value -3")
    err(ml.post("runs/search", {"experiment_ids": both, "page_token": "!!"}), 400, "INVALID_PARAMETER_VALUE",
        "Invalid page token")
    err(ml.post("runs/search", {"experiment_ids": both, "run_view_type": "MAYBE"}), 400,
        "INVALID_PARAMETER_VALUE")
    err(ml.post("runs/search", {"experiment_ids": {"a": 1}}), 400, "INVALID_PARAMETER_VALUE")


def test_bodies_and_query_shapes(ml):
    # a body that is not JSON, not an object; unknown fields are ignored
    r = ml.c.post(ml.prefix + "/experiments/create", data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error_code"] == "MALFORMED_REQUEST"
    err(ml.post("experiments/create", ["name"]), 400, "INVALID_PARAMETER_VALUE")
    eid = ml.p("experiments/create", {"name": "shapes", "whatever": {"x": [1]}})["experiment_id"]
    # experiment ids as numbers are accepted
    assert ml.p("runs/create", {"experiment_id": int(eid)})["run"]["info"]["experiment_id"] == eid
    # an empty body is an empty message
    r = ml.c.post(ml.prefix + "/runs/search", data=b"")
    assert r.status_code == 200 and r.json() == {}


# ---- tenancy ------------------------------------------------------------------------------


def test_projects_never_see_each_other(make_user):
    a, b = ML(make_user().client()), ML(make_user().client())
    eid = a.experiment("secret", tags=[{"key": "k", "value": "v"}])
    rid = a.run(eid)["info"]["run_id"]
    a.p("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 1})
    # b learns nothing: exactly the answers a missing experiment or run gets
    missing_exp = err(b.get("experiments/get", experiment_id="999999"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert err(b.get("experiments/get", experiment_id=eid), 404, "RESOURCE_DOES_NOT_EXIST") == \
        missing_exp.replace("999999", eid)
    err(b.get("experiments/get-by-name", experiment_name="secret"), 404, "RESOURCE_DOES_NOT_EXIST")
    missing_run = err(b.get("runs/get", run_id="c" * 32), 404, "RESOURCE_DOES_NOT_EXIST")
    assert err(b.get("runs/get", run_id=rid), 404, "RESOURCE_DOES_NOT_EXIST") == missing_run.replace("c" * 32, rid)
    for path, body in [
        ("experiments/update", {"experiment_id": eid, "new_name": "mine"}),
        ("experiments/delete", {"experiment_id": eid}),
        ("experiments/restore", {"experiment_id": eid}),
        ("experiments/set-experiment-tag", {"experiment_id": eid, "key": "k", "value": "x"}),
        ("experiments/delete-experiment-tag", {"experiment_id": eid, "key": "k"}),
        ("runs/create", {"experiment_id": eid}),
        ("runs/update", {"run_id": rid, "status": "KILLED"}),
        ("runs/delete", {"run_id": rid}),
        ("runs/restore", {"run_id": rid}),
        ("runs/set-tag", {"run_id": rid, "key": "k", "value": "v"}),
        ("runs/delete-tag", {"run_id": rid, "key": "mlflow.user"}),
        ("runs/log-metric", {"run_id": rid, "key": "m", "value": 2, "timestamp": 2}),
        ("runs/log-parameter", {"run_id": rid, "key": "p", "value": "v"}),
        ("runs/log-batch", {"run_id": rid, "tags": [{"key": "k", "value": "v"}]}),
    ]:
        err(b.post(path, body), 404, "RESOURCE_DOES_NOT_EXIST")
    err(b.get("metrics/get-history", run_id=rid, metric_key="m"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert b.p("runs/search", {"experiment_ids": [eid]}) == {}
    assert "secret" not in [e["name"] for e in b.p("experiments/search", {}).get("experiments", [])]
    # names are per project
    assert b.experiment("secret") != eid
    # and a's data is untouched
    run = a.g("runs/get", run_id=rid)["run"]
    assert run["info"]["status"] == "RUNNING" and run["data"]["metrics"][0]["value"] == 1
    assert tags_of(a.g("experiments/get", experiment_id=eid)["experiment"]) == {"k": "v"}


def test_x_kiln_project_and_project_keys(server, make_user):
    u, other = make_user(), make_user()
    c = u.client()
    org = c.get("/api/v1/orgs").json()["orgs"][0]["id"]
    default_project = c.get("/api/v1/auth/whoami").json()["user"]["default_project_id"]
    p2 = c.post("/api/v1/projects", json={"org_id": org, "name": "second"}).json()["project"]["id"]
    home, second = ML(c), ML(c, headers={"X-Kiln-Project": p2})
    e_home = home.experiment("where")
    e_second = second.experiment("where")  # same name, other project
    assert e_home != e_second
    assert second.g("experiments/get-by-name", experiment_name="where")["experiment"]["experiment_id"] == e_second
    err(home.get("experiments/get", experiment_id=e_second), 404, "RESOURCE_DOES_NOT_EXIST")
    err(second.get("experiments/get", experiment_id=e_home), 404, "RESOURCE_DOES_NOT_EXIST")
    assert second.g("experiments/get", experiment_id="0")["experiment"]["experiment_id"] != \
        home.g("experiments/get", experiment_id="0")["experiment"]["experiment_id"]
    explicit_home = ML(c, headers={"X-Kiln-Project": default_project})
    assert explicit_home.g("experiments/get", experiment_id=e_home)["experiment"]["name"] == "where"
    # a project the caller has no part in, or none at all: 404
    other_project = other.client().get("/api/v1/projects").json()["projects"][0]["id"]
    err(ML(c, headers={"X-Kiln-Project": other_project}).get("experiments/get", experiment_id="0"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ML(c, headers={"X-Kiln-Project": "0" * 32}).post("experiments/create", {"name": "x"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    admin = ML(server.admin_client(), headers={"X-Kiln-Project": "1" * 32})
    err(admin.get("experiments/get", experiment_id="0"), 404, "RESOURCE_DOES_NOT_EXIST")

    # a key restricted to the second project acts there, and only there
    key = c.post("/api/v1/api-keys", json={"name": "p2", "scopes": ["read", "write"], "project_id": p2}).json()["key"]
    kc = ML(server.client(token=key))
    assert kc.g("experiments/get-by-name", experiment_name="where")["experiment"]["experiment_id"] == e_second
    rid = kc.run(e_second)["info"]["run_id"]
    err(kc.get("experiments/get", experiment_id=e_home), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ML(server.client(token=key), headers={"X-Kiln-Project": default_project}).get(
        "experiments/get", experiment_id=e_home), 404, "RESOURCE_DOES_NOT_EXIST")
    assert second.g("runs/get", run_id=rid)["run"]["info"]["experiment_id"] == e_second
    # a read-only key reads but does not write
    ro = c.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["read"]}).json()["key"]
    rc = ML(server.client(token=ro))
    assert rc.g("experiments/get", experiment_id=e_home)["experiment"]["name"] == "where"
    err(rc.post("experiments/create", {"name": "nope"}), 403, "PERMISSION_DENIED")
    err(rc.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 1}), 403,
        "PERMISSION_DENIED")
    # viewers of a project read but do not write
    c.put(f"/api/v1/orgs/{org}/members/{other.id}", json={"role": "member"})
    assert c.put(f"/api/v1/projects/{p2}/members/{other.id}", json={"role": "viewer"}).status_code == 200
    viewer = ML(other.client(), headers={"X-Kiln-Project": p2})
    assert viewer.g("runs/get", run_id=rid)["run"]["info"]["run_id"] == rid
    err(viewer.post("runs/set-tag", {"run_id": rid, "key": "k", "value": "v"}), 403, "PERMISSION_DENIED")
    # anonymous callers are refused
    err(ML(server.client()).get("experiments/get", experiment_id="0"), 401, "UNAUTHENTICATED")


def page_while_creating(ml, endpoint, body, items, create):
    """Pages through endpoint (body, items: the answer's list field) while
    another thread calls create() (which returns a new id); the ids seen and
    the ids created."""
    import threading
    first = ml.p(endpoint, body)
    seen = [x["info"]["run_id"] if items == "runs" else x["experiment_id"] for x in first[items]]
    token = first.get("next_page_token")
    stop, created = threading.Event(), []

    def writer():
        while not stop.is_set() and len(created) < 200:
            created.append(create(len(created)))

    t = threading.Thread(target=writer)
    t.start()
    try:
        while token:
            wait_for(lambda: len(created) >= len(seen) // 5 + 1, 10, what="rows created meanwhile")
            page = ml.p(endpoint, body | {"page_token": token})
            seen += [x["info"]["run_id"] if items == "runs" else x["experiment_id"] for x in page[items]]
            token = page.get("next_page_token")
    finally:
        stop.set()
        t.join()
    assert created, "rows were created while paging"
    return seen, created


@pytest.mark.parametrize("order_by", [[], ["metrics.acc DESC"]], ids=["default-order", "by-metric"])
def test_run_search_paging_is_consistent_while_runs_are_created(ml, order_by):
    """Page tokens carry a snapshot bound: runs created between pages (here
    newer ones, which sort first, and would shift MLflow's offsets) do not
    appear in later pages, and no run is seen twice or skipped."""
    exp = ml.experiment("paging-live")
    original = []
    for i in range(12):
        rid = ml.run(exp, run_name=f"o{i}", start_time=1000 + i)["info"]["run_id"]
        ml.p("runs/log-batch", {"run_id": rid, "metrics": [{"key": "acc", "value": i / 100, "timestamp": 1}]})
        original.append(rid)

    def create(n):
        rid = ml.run(exp, run_name=f"new{n}", start_time=10_000 + n)["info"]["run_id"]
        ml.p("runs/log-batch", {"run_id": rid, "metrics": [{"key": "acc", "value": 1 + n, "timestamp": 1}]})
        return rid

    seen, created = page_while_creating(ml, "runs/search", {"experiment_ids": [exp], "max_results": 5,
                                                            "order_by": order_by}, "runs", create)
    assert len(seen) == len(set(seen)) == 12, seen
    assert set(seen) == set(original)
    # a fresh search sees the new runs
    fresh = ml.p("runs/search", {"experiment_ids": [exp], "max_results": 1000})["runs"]
    assert len(fresh) == 12 + len(created)


def test_experiment_search_paging_is_consistent_while_experiments_are_created(ml):
    """Experiments too: the newest sort first, so one created between pages
    would shift MLflow's offsets; the token's snapshot bound keeps pages
    stable, and a fresh search sees the new ones."""
    original = [ml.experiment(f"pgx-o{i}") for i in range(12)]
    body = {"max_results": 5, "filter": "name LIKE 'pgx-%'"}
    seen, created = page_while_creating(ml, "experiments/search", body, "experiments",
                                        lambda n: ml.experiment(f"pgx-new{n}"))
    assert len(seen) == len(set(seen)) == 12, seen
    assert set(seen) == set(original)
    fresh = ml.p("experiments/search", {"max_results": 1000, "filter": "name LIKE 'pgx-%'"})["experiments"]
    assert len(fresh) == 12 + len(created)

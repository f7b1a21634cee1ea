"""Model version lineage over HTTP: a run that logged dataset inputs and a
logged model, registered as a version, read back as a typed graph node by
node; pieces that went away show up as missing nodes, never as errors."""

from __future__ import annotations

ML = "/api/2.0/mlflow"


def ok(r):
    assert r.status_code == 200, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json()


def err(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error_code"] == code, r.text


def post(c, path, body):
    return ok(c.post(f"{ML}/{path}", json=body))


def lineage(c, name, version):
    return ok(c.get(f"/api/v1/models/{name}/versions/{version}/lineage"))


def by_id(graph):
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert len(nodes) == len(graph["nodes"]), "node ids are unique"
    for e in graph["edges"]:
        assert e["from"] in nodes and e["to"] in nodes, e
    return nodes


def test_lineage_of_a_version_registered_from_a_run(make_user):
    c = make_user().client()
    eid = post(c, "experiments/create", {"name": "lineage"})["experiment_id"]
    run = post(c, "runs/create", {"experiment_id": eid, "run_name": "train-7"})["run"]["info"]
    rid = run["run_id"]
    post(c, "runs/log-inputs", {"run_id": rid, "datasets": [
        {"tags": [{"key": "mlflow.data.context", "value": "training"}],
         "dataset": {"name": "train", "digest": "d1", "source_type": "local", "source": "{}"}},
        {"tags": [{"key": "mlflow.data.context", "value": "eval"}],
         "dataset": {"name": "holdout", "digest": "d2", "source_type": "s3", "source": "{\"uri\": \"s3://b/h\"}"}}]})
    lm = post(c, "logged-models", {"experiment_id": eid, "name": "clf", "source_run_id": rid})["model"]["info"]
    post(c, "registered-models/create", {"name": "churn"})
    mv = post(c, "model-versions/create", {"name": "churn", "source": f"runs:/{rid}/model", "run_id": rid,
                                           "model_id": lm["model_id"]})["model_version"]
    post(c, "registered-models/alias", {"name": "churn", "alias": "champion", "version": mv["version"]})

    g = lineage(c, "churn", mv["version"])
    nodes = by_id(g)
    v = nodes["model_version:churn/1"]
    assert v["type"] == "model_version" and v["label"] == "churn v1" and "missing" not in v
    assert v["attrs"]["run_id"] == rid and v["attrs"]["model_id"] == lm["model_id"]
    assert v["attrs"]["current_stage"] == "None" and v["attrs"]["aliases"] == ["champion"]
    r = nodes[f"run:{rid}"]
    assert r["type"] == "run" and r["label"] == "train-7" and r["attrs"]["lifecycle_stage"] == "active"
    x = nodes[f"experiment:{eid}"]
    assert x["type"] == "experiment" and x["label"] == "lineage"
    train, hold = nodes["dataset:d1:train"], nodes["dataset:d2:holdout"]
    assert train["type"] == hold["type"] == "dataset"
    assert train["label"] == "train" and train["attrs"]["context"] == "training"
    assert hold["attrs"] == {"name": "holdout", "digest": "d2", "source_type": "s3", "source": "{\"uri\": \"s3://b/h\"}",
                             "context": "eval"}
    m = nodes[f"logged_model:{lm['model_id']}"]
    assert m["type"] == "logged_model" and m["label"] == "clf" and m["attrs"]["source_run_id"] == rid
    assert len(nodes) == 6
    edges = {(e["from"], e["type"], e["to"]) for e in g["edges"]}
    assert edges == {
        ("model_version:churn/1", "produced_by", f"run:{rid}"),
        ("model_version:churn/1", "registered_from", f"logged_model:{lm['model_id']}"),
        (f"run:{rid}", "logged_in", f"experiment:{eid}"),
        (f"run:{rid}", "consumed", "dataset:d1:train"),
        (f"run:{rid}", "consumed", "dataset:d2:holdout"),
        (f"logged_model:{lm['model_id']}", "logged_in", f"experiment:{eid}"),
        (f"logged_model:{lm['model_id']}", "produced_by", f"run:{rid}"),
    }
    assert len(g["edges"]) == len(edges) and "truncated" not in g

    # the logged model is deleted and the run too: still a graph, with what is gone marked
    ok(c.delete(f"{ML}/logged-models/{lm['model_id']}"))
    post(c, "runs/delete", {"run_id": rid})
    nodes = by_id(lineage(c, "churn", "1"))
    assert nodes[f"logged_model:{lm['model_id']}"]["missing"] is True
    assert nodes[f"logged_model:{lm['model_id']}"]["attrs"] == {"model_id": lm["model_id"]}
    assert nodes[f"run:{rid}"]["attrs"]["lifecycle_stage"] == "deleted"


def test_lineage_of_remote_sources_and_errors(make_user):
    c = make_user().client()
    post(c, "registered-models/create", {"name": "ext"})
    post(c, "model-versions/create", {"name": "ext", "source": "s3://bucket/model"})
    g = lineage(c, "ext", "1")
    assert [n["type"] for n in g["nodes"]] == ["model_version"] and g["edges"] == []
    err(c.get("/api/v1/models/ext/versions/2/lineage"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(c.get("/api/v1/models/nope/versions/1/lineage"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(c.get("/api/v1/models/ext/versions/x/lineage"), 400, "INVALID_PARAMETER_VALUE")
    # another project sees nothing
    err(make_user().client().get("/api/v1/models/ext/versions/1/lineage"), 404, "RESOURCE_DOES_NOT_EXIST")

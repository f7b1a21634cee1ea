"""What MLflow 3's log_model() and model search need beyond the logged-model
lifecycle, against real servers: runs/outputs and Run.outputs, a logged
model's files through the mlflow-artifacts proxy (upload, list, download,
delete) with the same tenancy as run artifacts, listLoggedModelArtifacts,
`kiln admin gc` reclaiming a deleted model's bytes, and logged-models/search
order_by, paging and its refusals."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from kiln_harness import run_kiln

PREFIXES = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"]
ART = "/api/2.0/mlflow-artifacts/artifacts"
ZERO_MODEL = "m-" + "0" * 32


def err(r, status, code, fragment=None):
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error_code"] == code, r.text
    if fragment is not None:
        assert fragment in body["message"], body["message"]
    return body["message"]


class ML:
    def __init__(self, client, prefix=PREFIXES[0]):
        self.c, self.prefix = client, prefix

    def req(self, method, path, body=None, **params):
        if method == "GET":
            return self.c.get(self.prefix + "/" + path, params=params)
        return self.c.request(method, self.prefix + "/" + path, json={} if body is None else body)

    def ok(self, method, path, body=None, **params):
        r = self.req(method, path, body, **params)
        assert r.status_code == 200, (method, path, r.status_code, r.text)
        return r.json()

    def p(self, path, body=None):
        return self.ok("POST", path, body)

    def g(self, path, **params):
        return self.ok("GET", path, **params)

    def experiment(self, name=None):
        return self.p("experiments/create", {"name": name or "lm-" + os.urandom(4).hex()})["experiment_id"]

    def run(self, eid):
        return self.p("runs/create", {"experiment_id": eid})["run"]["info"]["run_id"]

    def model(self, eid, name=None, **kw):
        body = {"experiment_id": eid, **({"name": name} if name else {}), **kw}
        return self.p("logged-models", body)["model"]["info"]


@pytest.fixture(params=PREFIXES, ids=["api", "ajax-api"])
def mlp(make_user, request):
    return ML(make_user().client(), request.param)


@pytest.fixture
def ml(make_user):
    return ML(make_user().client())


@pytest.fixture
def stranger(make_user):
    return ML(make_user().client())


def ids(models):
    return [m["info"]["model_id"] for m in models]


# ---- runs/outputs -------------------------------------------------------------------------------


def test_log_outputs_shows_in_runs_get_and_search(mlp, stranger):
    eid = mlp.experiment()
    rid = mlp.run(eid)
    m1, m2 = mlp.model(eid, "a")["model_id"], mlp.model(eid, "b")["model_id"]
    # a run with no outputs carries an empty RunOutputs
    assert mlp.g("runs/get", run_id=rid)["run"]["outputs"] == {}
    assert mlp.p("runs/outputs", {"run_id": rid, "models": [{"model_id": m1, "step": 3},
                                                             {"model_id": m2, "step": "1"}]}) == {}
    want = {"model_outputs": [{"model_id": m2, "step": 1}, {"model_id": m1, "step": 3}]}
    assert mlp.g("runs/get", run_id=rid)["run"]["outputs"] == want
    # logging a model again keeps its first step
    assert mlp.p("runs/outputs", {"run_id": rid, "models": [{"model_id": m1, "step": 9}]}) == {}
    assert mlp.g("runs/get", run_id=rid)["run"]["outputs"] == want
    runs = mlp.p("runs/search", {"experiment_ids": [eid]})["runs"]
    assert [r["outputs"] for r in runs] == [want]
    # no models is a no-op
    assert mlp.p("runs/outputs", {"run_id": rid}) == {}
    # another project sees neither the run nor the models
    err(stranger.req("POST", "runs/outputs", {"run_id": rid, "models": [{"model_id": m1, "step": 0}]}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    their_run = stranger.run(stranger.experiment())
    err(stranger.req("POST", "runs/outputs", {"run_id": their_run, "models": [{"model_id": m1, "step": 0}]}), 404,
        "RESOURCE_DOES_NOT_EXIST", m1)
    assert stranger.g("runs/get", run_id=their_run)["run"]["outputs"] == {}


def test_log_outputs_errors(ml):
    eid = ml.experiment()
    rid = ml.run(eid)
    mid = ml.model(eid)["model_id"]
    err(ml.req("POST", "runs/outputs", {"models": [{"model_id": mid, "step": 0}]}), 400, "INVALID_PARAMETER_VALUE",
        "run_id")
    err(ml.req("POST", "runs/outputs", {"run_id": "0" * 32, "models": []}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [{"model_id": ZERO_MODEL, "step": 0}]}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [{"step": 0}]}), 400, "INVALID_PARAMETER_VALUE",
        "model_id")
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [{"model_id": mid}]}), 400,
        "INVALID_PARAMETER_VALUE", "step")
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [{"model_id": mid, "step": "x"}]}), 400,
        "INVALID_PARAMETER_VALUE", "step")
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": "m"}), 400, "INVALID_PARAMETER_VALUE", "models")
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [mid]}), 400, "INVALID_PARAMETER_VALUE", "models")
    too_many = [{"model_id": mid, "step": i} for i in range(1001)]
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": too_many}), 400, "INVALID_PARAMETER_VALUE", "1000")
    # a deleted model is a missing one
    gone = ml.model(eid)["model_id"]
    assert ml.ok("DELETE", f"logged-models/{gone}") == {}
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [{"model_id": gone, "step": 0}]}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    # a deleted run takes no writes, as for other run writes
    assert ml.p("runs/delete", {"run_id": rid}) == {}
    err(ml.req("POST", "runs/outputs", {"run_id": rid, "models": [{"model_id": mid, "step": 0}]}), 400,
        "INVALID_PARAMETER_VALUE")


# ---- logged-model artifacts ----------------------------------------------------------------------


def test_model_artifacts_upload_list_download_delete(mlp, stranger):
    c = mlp.c
    eid = mlp.experiment()
    info = mlp.model(eid, "clf")
    mid = info["model_id"]
    assert info["artifact_uri"] == f"mlflow-artifacts:/{eid}/models/{mid}/artifacts"
    root = f"{eid}/models/{mid}/artifacts"
    files = {"MLmodel": b"flavors:\n  sklearn: {}\n", "model.pkl": os.urandom(200_000),
             "data/conda.yaml": b"name: x\n", "data/deep/req.txt": b"numpy\n"}
    for path, data in files.items():
        r = c.put(f"{ART}/{root}/{path}", data=data)
        assert r.status_code == 200, r.text
        assert r.headers["ETag"] == '"' + hashlib.sha256(data).hexdigest() + '"'
    for path, data in files.items():
        r = c.get(f"{ART}/{root}/{path}")
        assert r.status_code == 200 and r.content == data
    # the proxy's listing
    listed = c.get(ART, params={"path": root}).json()["files"]
    assert {f["path"]: f["is_dir"] for f in listed} == {"MLmodel": False, "data": True, "model.pkl": False}
    # listLoggedModelArtifacts: relative to the model's root
    top = mlp.g(f"logged-models/{mid}/artifacts/directories")
    assert top["root_uri"] == info["artifact_uri"]
    assert top["files"] == [{"path": "MLmodel", "is_dir": False, "file_size": len(files["MLmodel"])},
                            {"path": "data", "is_dir": True},
                            {"path": "model.pkl", "is_dir": False, "file_size": len(files["model.pkl"])}]
    sub = mlp.g(f"logged-models/{mid}/artifacts/directories", artifact_directory_path="data/")
    assert sub["files"] == [{"path": "data/conda.yaml", "is_dir": False, "file_size": 8},
                            {"path": "data/deep", "is_dir": True}]
    assert "files" not in mlp.g(f"logged-models/{mid}/artifacts/directories", artifact_directory_path="none")
    # delete a file, then a directory
    assert c.delete(f"{ART}/{root}/MLmodel").status_code == 200
    err(c.get(f"{ART}/{root}/MLmodel"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert c.delete(f"{ART}/{root}/data").status_code == 200
    left = mlp.g(f"logged-models/{mid}/artifacts/directories")["files"]
    assert [f["path"] for f in left] == ["model.pkl"]
    # another project: as if the model did not exist
    sc = stranger.c
    err(sc.get(f"{ART}/{root}/model.pkl"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(sc.put(f"{ART}/{root}/evil", data=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(sc.delete(f"{ART}/{root}/model.pkl"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(sc.get(ART, params={"path": root}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(stranger.req("GET", f"logged-models/{mid}/artifacts/directories"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert c.get(f"{ART}/{root}/model.pkl").content == files["model.pkl"]


def test_model_artifact_paths_need_a_model_of_that_experiment(ml):
    c = ml.c
    eid, other = ml.experiment(), ml.experiment()
    mid = ml.model(eid)["model_id"]
    err(c.put(f"{ART}/{other}/models/{mid}/artifacts/x", data=b"x"), 404, "RESOURCE_DOES_NOT_EXIST", mid)
    err(c.put(f"{ART}/{eid}/models/{ZERO_MODEL}/artifacts/x", data=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("GET", f"logged-models/{ZERO_MODEL}/artifacts/directories"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("GET", f"logged-models/{mid}/artifacts/directories", artifact_directory_path="../x"), 400,
        "INVALID_PARAMETER_VALUE")
    err(ml.req("GET", f"logged-models/{mid}/artifacts/directories", page_token="!!"), 400, "INVALID_PARAMETER_VALUE")
    # a deleted model's files are gone with it
    assert c.put(f"{ART}/{eid}/models/{mid}/artifacts/x", data=b"x").status_code == 200
    assert ml.ok("DELETE", f"logged-models/{mid}") == {}
    err(c.get(f"{ART}/{eid}/models/{mid}/artifacts/x"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_model_artifact_listing_pages(ml):
    c = ml.c
    eid = ml.experiment()
    mid = ml.model(eid)["model_id"]
    root = f"{eid}/models/{mid}/artifacts"
    for i in range(1003):
        assert c.put(f"{ART}/{root}/f{i:04d}", data=b"z").status_code == 200
    first = ml.g(f"logged-models/{mid}/artifacts/directories")
    assert len(first["files"]) == 1000 and first["next_page_token"]
    rest = ml.g(f"logged-models/{mid}/artifacts/directories", page_token=first["next_page_token"])
    assert [f["path"] for f in rest["files"]] == ["f1000", "f1001", "f1002"] and "next_page_token" not in rest


def blob_objects(data_dir):
    return sorted(p.name for p in (Path(data_dir) / "blobs").glob("??/??/*") if len(p.name) == 64)


def test_admin_gc_reclaims_a_deleted_models_bytes(make_server):
    srv = make_server()
    c = srv.admin_client()
    ml = ML(c)
    eid = ml.experiment()
    mid, keep = ml.model(eid)["model_id"], ml.model(eid)["model_id"]
    big, shared = os.urandom(2 << 20), os.urandom(50_000)
    assert c.put(f"{ART}/{eid}/models/{mid}/artifacts/model.bin", data=big).status_code == 200
    assert c.put(f"{ART}/{eid}/models/{mid}/artifacts/shared.bin", data=shared).status_code == 200
    assert c.put(f"{ART}/{eid}/models/{keep}/artifacts/shared.bin", data=shared).status_code == 200
    rid = ml.run(eid)
    assert ml.p("runs/outputs", {"run_id": rid, "models": [{"model_id": mid, "step": 0},
                                                           {"model_id": keep, "step": 0}]}) == {}
    big_sha = hashlib.sha256(big).hexdigest()
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0")
    assert out.returncode == 0 and "0 logged models" in out.stdout, out.stdout
    assert ml.ok("DELETE", f"logged-models/{mid}") == {}
    # deleted, not yet old enough
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0", "--older-than", "3600")
    assert out.returncode == 0 and "0 logged models" in out.stdout, out.stdout
    assert big_sha in blob_objects(srv.data_dir)
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0")
    assert out.returncode == 0, out.stderr
    assert "2 artifacts" in out.stdout and "1 logged models" in out.stdout, out.stdout
    m = re.search(r"blobs removed: (\d+), bytes reclaimed: (\d+)", out.stdout)
    assert m and int(m.group(1)) == 1 and int(m.group(2)) >= len(big), out.stdout
    assert big_sha not in blob_objects(srv.data_dir)
    # the other model keeps the bytes it shares; the run's outputs lose the purged model
    assert c.get(f"{ART}/{eid}/models/{keep}/artifacts/shared.bin").content == shared
    assert ml.g("runs/get", run_id=rid)["run"]["outputs"] == {"model_outputs": [{"model_id": keep, "step": 0}]}


# ---- logged-models/search: order_by, paging, refusals ------------------------------------------------


def test_search_order_by_and_paging(mlp):
    eid = mlp.experiment()
    made = {}
    for name in ["beta", "alpha", "gamma", "delta"]:
        made[name] = mlp.model(eid, name)["model_id"]
        time.sleep(0.005)  # distinct creation times

    def search(**body):
        return mlp.p("logged-models/search", {"experiment_ids": [eid], **body})

    by_name = sorted(made)
    assert ids(search(order_by=[{"field_name": "name"}])["models"]) == [made[n] for n in by_name]
    assert ids(search(order_by=[{"field_name": "name", "ascending": True}])["models"]) == [made[n] for n in by_name]
    assert ids(search(order_by=[{"field_name": "name", "ascending": False}])["models"]) == \
        [made[n] for n in reversed(by_name)]
    created = [made[n] for n in ["beta", "alpha", "gamma", "delta"]]
    assert ids(search()["models"]) == created[::-1]  # MLflow's default: newest first
    for field in ["creation_timestamp", "creation_time", "attributes.creation_timestamp"]:
        assert ids(search(order_by=[{"field_name": field, "ascending": True}])["models"]) == created
    # last_updated_timestamp follows an update
    time.sleep(0.005)
    mlp.ok("PATCH", f"logged-models/{made['beta']}", {"status": "LOGGED_MODEL_READY"})
    newest = ids(search(order_by=[{"field_name": "last_updated_timestamp", "ascending": False}])["models"])
    assert newest[0] == made["beta"]
    # paging with an order: consistent while models are created between pages
    page = search(order_by=[{"field_name": "name"}], max_results=2)
    assert ids(page["models"]) == [made["alpha"], made["beta"]] and page["next_page_token"]
    mlp.model(eid, "aaa-created-while-paging")
    rest = search(order_by=[{"field_name": "name"}], max_results=2, page_token=page["next_page_token"])
    assert ids(rest["models"]) == [made["delta"], made["gamma"]] and "next_page_token" not in rest
    # a new first page sees the new model
    assert search(order_by=[{"field_name": "name"}], max_results=1)["models"][0]["info"]["name"] == \
        "aaa-created-while-paging"


def test_search_refuses_what_it_cannot_honour(ml):
    eid = ml.experiment()
    ml.model(eid)

    def bad(body, fragment):
        err(ml.req("POST", "logged-models/search", {"experiment_ids": [eid], **body}), 400, "INVALID_PARAMETER_VALUE",
            fragment)

    # Kiln stores no logged-model metrics: ordering by one, or by a dataset, or filtering by datasets is refused
    bad({"order_by": [{"field_name": "metrics.accuracy", "ascending": False}]}, "metrics")
    bad({"order_by": [{"field_name": "name", "dataset_name": "train", "dataset_digest": "abc"}]}, "dataset")
    bad({"datasets": [{"dataset_name": "train"}]}, "datasets")
    bad({"order_by": [{"field_name": "params.alpha"}]}, "params.alpha")
    bad({"order_by": [{"ascending": True}]}, "field_name")
    bad({"order_by": [{"field_name": "name", "ascending": "yes"}]}, "ascending")
    bad({"order_by": "name"}, "order_by")
    bad({"order_by": ["name"]}, "order_by")
    bad({"order_by": [{"field_name": "name"}] * 11}, "order_by")
    bad({"datasets": "train"}, "datasets")
    # an empty datasets list is no restriction
    assert len(ml.p("logged-models/search", {"experiment_ids": [eid], "datasets": []})["models"]) == 1

"""The MLflow model-registry API over HTTP: registered models, versions,
tags, aliases, stages, searches with paging, errors as MLflow words them,
and projects never seeing each other's models."""

from __future__ import annotations

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
        url = self.prefix + "/" + path
        if method == "GET" or (method == "DELETE" and body is None and params):
            return self.c.request(method, url, params=params, headers=self.headers)
        return self.c.request(method, url, json={} if body is None else body, headers=self.headers)

    def ok(self, method, path, body=None, **params):
        r = self.req(method, path, body, **params)
        assert r.status_code == 200, (method, path, r.status_code, r.text)
        return r.json()

    def p(self, path, body=None):
        return self.ok("POST", path, body)

    def g(self, path, **params):
        return self.ok("GET", path, **params)

    def model(self, name, **kw):
        return self.p("registered-models/create", {"name": name, **kw})["registered_model"]

    def run(self):
        return self.p("runs/create", {"experiment_id": "0"})["run"]["info"]

    def version(self, name, run=None, **kw):
        run = run or self.run()
        body = {"name": name, "source": run["artifact_uri"] + "/model", "run_id": run["run_id"], **kw}
        return self.p("model-versions/create", body)["model_version"]


def tags_of(entity):
    return {t["key"]: t.get("value", "") for t in entity.get("tags", [])}


@pytest.fixture
def ml(make_user):
    return ML(make_user().client())


@pytest.fixture(params=PREFIXES, ids=["api", "ajax-api"])
def mlp(make_user, request):
    return ML(make_user().client(), request.param)


# ---- registered models ---------------------------------------------------------------------


def test_registered_model_lifecycle(mlp):
    m = mlp.model("churn", description="first", tags=[{"key": "team", "value": "growth"}])
    assert m["name"] == "churn" and m["description"] == "first"
    assert tags_of(m) == {"team": "growth"}
    assert m["creation_timestamp"] == m["last_updated_timestamp"] > 0
    assert "latest_versions" not in m and "aliases" not in m
    err(mlp.req("POST", "registered-models/create", {"name": "churn"}), 400, "RESOURCE_ALREADY_EXISTS",
        "Registered Model (name=churn) already exists.")
    assert mlp.g("registered-models/get", name="churn")["registered_model"] == m

    # update (PATCH) changes the description; absent means cleared, as MLflow
    u = mlp.ok("PATCH", "registered-models/update", {"name": "churn", "description": "second"})["registered_model"]
    assert u["description"] == "second" and u["last_updated_timestamp"] >= m["last_updated_timestamp"]
    assert "description" not in mlp.ok("PATCH", "registered-models/update", {"name": "churn"})["registered_model"]

    # tags
    mlp.p("registered-models/set-tag", {"name": "churn", "key": "owner", "value": "ann"})
    mlp.p("registered-models/set-tag", {"name": "churn", "key": "team", "value": "core"})
    assert tags_of(mlp.g("registered-models/get", name="churn")["registered_model"]) == {"owner": "ann",
                                                                                         "team": "core"}
    mlp.ok("DELETE", "registered-models/delete-tag", {"name": "churn", "key": "owner"})
    mlp.ok("DELETE", "registered-models/delete-tag", {"name": "churn", "key": "never-set"})  # no-op, as MLflow
    assert tags_of(mlp.g("registered-models/get", name="churn")["registered_model"]) == {"team": "core"}

    # rename keeps versions and moves them with it
    mlp.version("churn")
    mlp.model("taken")
    err(mlp.req("POST", "registered-models/rename", {"name": "churn", "new_name": "taken"}), 400,
        "RESOURCE_ALREADY_EXISTS")
    r = mlp.p("registered-models/rename", {"name": "churn", "new_name": "churn-v2"})["registered_model"]
    assert r["name"] == "churn-v2" and r["latest_versions"][0]["name"] == "churn-v2"
    err(mlp.req("GET", "registered-models/get", name="churn"), 404, "RESOURCE_DOES_NOT_EXIST",
        "Registered Model with name=churn not found")
    assert mlp.g("model-versions/get", name="churn-v2", version="1")["model_version"]["name"] == "churn-v2"

    # delete takes its versions; the name can be registered again, from version 1
    mlp.ok("DELETE", "registered-models/delete", {"name": "churn-v2"})
    err(mlp.req("GET", "registered-models/get", name="churn-v2"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.req("GET", "model-versions/get", name="churn-v2", version="1"), 404, "RESOURCE_DOES_NOT_EXIST")
    mlp.model("churn-v2")
    assert mlp.version("churn-v2")["version"] == "1"


def test_registered_model_errors_and_limits(ml):
    err(ml.req("POST", "registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'name'")
    err(ml.req("POST", "registered-models/create", {"name": "a/b"}), 400, "INVALID_PARAMETER_VALUE",
        "cannot contain")
    err(ml.req("POST", "registered-models/create", {"name": "x" * 257}), 400, "INVALID_PARAMETER_VALUE",
        "exceeded length limit of 256")
    ml.model("x" * 256)
    err(ml.req("POST", "registered-models/create", {"name": "t", "tags": [{"key": "k", "value": "v" * 100001}]}),
        400, "INVALID_PARAMETER_VALUE", "exceeded length limit of 100000")
    err(ml.req("POST", "registered-models/create", {"name": "t", "tags": [{"key": "../k", "value": "v"}]}),
        400, "INVALID_PARAMETER_VALUE")
    err(ml.req("POST", "registered-models/create", {"name": "t", "description": "d" * 5001}), 400,
        "INVALID_PARAMETER_VALUE")
    err(ml.req("POST", "registered-models/create", {"name": 5.5}), 400, "INVALID_PARAMETER_VALUE")
    for path, body in [("registered-models/rename", {"name": "nope", "new_name": "x"}),
                       ("registered-models/set-tag", {"name": "nope", "key": "k", "value": "v"})]:
        err(ml.req("POST", path, body), 404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found")
    err(ml.req("PATCH", "registered-models/update", {"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("DELETE", "registered-models/delete", {"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("DELETE", "registered-models/delete-tag", {"name": "nope", "key": "k"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("GET", "registered-models/get"), 400, "INVALID_PARAMETER_VALUE", "'name'")
    ml.model("t")
    err(ml.req("POST", "registered-models/set-tag", {"name": "t", "key": "k"}), 400, "INVALID_PARAMETER_VALUE",
        "'value'")
    err(ml.req("POST", "registered-models/rename", {"name": "t"}), 400, "INVALID_PARAMETER_VALUE", "'new_name'")
    # DELETE with the fields as a query works too
    ml.ok("DELETE", "registered-models/delete", name="t")
    err(ml.req("GET", "registered-models/get", name="t"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_registered_model_search_filter_order_and_paging(mlp):
    ml = mlp
    names = ["alpha", "Beta", "gamma", "delta", "alpha-2"]
    for i, n in enumerate(names):
        ml.model(n, tags=[{"key": "i", "value": str(i)}] + ([{"key": "team", "value": "cv"}] if i % 2 else []))
    s = ml.g("registered-models/search")
    assert [m["name"] for m in s["registered_models"]] == sorted(names) and "next_page_token" not in s

    def names_of(**params):
        return [m["name"] for m in ml.g("registered-models/search", **params).get("registered_models", [])]

    assert names_of(filter="name = 'alpha'") == ["alpha"]
    assert names_of(filter="name != 'alpha'") == sorted(set(names) - {"alpha"})
    assert names_of(filter="name LIKE 'alpha%'") == ["alpha", "alpha-2"]
    assert names_of(filter="name LIKE 'beta'") == []  # LIKE is case-sensitive
    assert names_of(filter="name ILIKE 'beta'") == ["Beta"]
    assert names_of(filter="tags.team = 'cv'") == ["Beta", "delta"]
    assert names_of(filter="tags.team = 'cv' AND name ILIKE '%ta'") == ["Beta", "delta"]
    assert names_of(order_by=["name DESC"]) == sorted(names, reverse=True)
    ms = ml.g("registered-models/search", order_by=["creation_timestamp DESC"])["registered_models"]
    assert [m["name"] for m in ms] == [m["name"] for m in sorted(ms, key=lambda m: (-m["creation_timestamp"],
                                                                                    m["name"]))]
    assert names_of(order_by=["last_updated_timestamp DESC", "name ASC"])[0] in names
    err(ml.req("GET", "registered-models/search", filter="metrics.a > 1"), 400, "INVALID_PARAMETER_VALUE")
    err(ml.req("GET", "registered-models/search", filter="name = "), 400, "INVALID_PARAMETER_VALUE")
    err(ml.req("GET", "registered-models/search", order_by=["version_number"]), 400, "INVALID_PARAMETER_VALUE")
    err(ml.req("GET", "registered-models/search", order_by=["name", "name DESC"]), 400, "INVALID_PARAMETER_VALUE",
        "duplicate")
    err(ml.req("GET", "registered-models/search", max_results="1001"), 400, "INVALID_PARAMETER_VALUE",
        "at most 1000")
    err(ml.req("GET", "registered-models/search", max_results="0"), 400, "INVALID_PARAMETER_VALUE")
    err(ml.req("GET", "registered-models/search", page_token="not-a-token"), 400, "INVALID_PARAMETER_VALUE")
    assert len(ml.g("registered-models/search", max_results="1000").get("registered_models", [])) == 5

    # pages: stable while models are created between them
    seen, token, created = [], None, 0
    while True:
        params = {"max_results": "2"}
        if token:
            params["page_token"] = token
        page = ml.g("registered-models/search", **params)
        seen += [m["name"] for m in page.get("registered_models", [])]
        ml.model(f"aaa-new-{created}")  # sorts first: would shift offsets without the snapshot
        created += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == sorted(names)


# ---- model versions ----------------------------------------------------------------------------


def test_model_version_lifecycle(mlp):
    mlp.model("m")
    run = mlp.run()
    v1 = mlp.version("m", run, tags=[{"key": "k", "value": "v"}], description="d1", run_link="http://x/run")
    assert v1["version"] == "1" and v1["status"] == "READY" and v1["current_stage"] == "None"
    assert v1["run_id"] == run["run_id"] and v1["source"] == run["artifact_uri"] + "/model"
    assert v1["description"] == "d1" and v1["run_link"] == "http://x/run" and tags_of(v1) == {"k": "v"}
    assert v1["user_id"]
    v2 = mlp.version("m", run)
    assert v2["version"] == "2"
    # runs:/ sources resolve to the run's artifact location for downloads
    v3 = mlp.p("model-versions/create", {"name": "m", "source": f"runs:/{run['run_id']}/model"})["model_version"]
    assert v3["version"] == "3" and v3["source"] == f"runs:/{run['run_id']}/model"
    assert mlp.g("model-versions/get-download-uri", name="m", version="3")["artifact_uri"] == \
        run["artifact_uri"] + "/model"
    assert mlp.g("model-versions/get-download-uri", name="m", version="1")["artifact_uri"] == v1["source"]
    remote = mlp.p("model-versions/create", {"name": "m", "source": "s3://bucket/models/m"})["model_version"]
    assert remote["version"] == "4" and "run_id" not in remote

    got = mlp.g("model-versions/get", name="m", version="1")["model_version"]
    assert got == v1
    u = mlp.ok("PATCH", "model-versions/update", {"name": "m", "version": "1", "description": "d2"})["model_version"]
    assert u["description"] == "d2"
    mlp.p("model-versions/set-tag", {"name": "m", "version": "1", "key": "k2", "value": "v2"})
    mlp.ok("DELETE", "model-versions/delete-tag", {"name": "m", "version": "1", "key": "k"})
    assert tags_of(mlp.g("model-versions/get", name="m", version=1)["model_version"]) == {"k2": "v2"}

    # the registered model shows the newest version per stage
    assert [v["version"] for v in mlp.g("registered-models/get", name="m")["registered_model"]["latest_versions"]] \
        == ["4"]
    # a deleted version's number is never given again
    mlp.ok("DELETE", "model-versions/delete", {"name": "m", "version": "4"})
    err(mlp.req("GET", "model-versions/get", name="m", version="4"), 404, "RESOURCE_DOES_NOT_EXIST",
        "Model Version (name=m, version=4) not found")
    assert mlp.version("m")["version"] == "5"


def test_model_version_errors(ml, make_user):
    ml.model("m")
    run = ml.run()
    err(ml.req("POST", "model-versions/create", {"name": "m"}), 400, "INVALID_PARAMETER_VALUE", "'source'")
    err(ml.req("POST", "model-versions/create", {"source": "s3://b/x"}), 400, "INVALID_PARAMETER_VALUE", "'name'")
    err(ml.req("POST", "model-versions/create", {"name": "nope", "source": "s3://b/x"}), 404,
        "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found")
    err(ml.req("POST", "model-versions/create", {"name": "m", "source": "s3://b/x", "run_id": "f" * 32}), 404,
        "RESOURCE_DOES_NOT_EXIST", "Run with id=")
    err(ml.req("POST", "model-versions/create", {"name": "m", "source": f"runs:/{'e' * 32}/model"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    # local paths would let a caller register any file the server can read
    for src in ["/etc/passwd", "file:///etc/passwd", "model", "C:/models/m"]:
        err(ml.req("POST", "model-versions/create", {"name": "m", "source": src, "run_id": run["run_id"]}), 400,
            "INVALID_PARAMETER_VALUE", "Invalid model version source")
    err(ml.req("POST", "model-versions/create", {"name": "m", "source": run["artifact_uri"] + "/../../x"}), 400,
        "INVALID_PARAMETER_VALUE", "..")
    err(ml.req("POST", "model-versions/create", {"name": "m", "source": "s3://b/" + "x" * 500}), 400,
        "INVALID_PARAMETER_VALUE")
    # another project's run is not a source here
    other = ML(make_user().client())
    orun = other.run()
    err(ml.req("POST", "model-versions/create", {"name": "m", "source": orun["artifact_uri"] + "/model"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("POST", "model-versions/create", {"name": "m", "source": "s3://b/x", "run_id": orun["run_id"]}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("GET", "model-versions/get", name="m", version="abc"), 400, "INVALID_PARAMETER_VALUE",
        "Model version must be an integer")
    err(ml.req("GET", "model-versions/get", name="m"), 400, "INVALID_PARAMETER_VALUE", "'version'")
    err(ml.req("GET", "model-versions/get", name="m", version="7"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("GET", "model-versions/get-download-uri", name="m", version="7"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("PATCH", "model-versions/update", {"name": "m", "version": "7"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("DELETE", "model-versions/delete", {"name": "m", "version": "7"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("POST", "model-versions/set-tag", {"name": "m", "version": "7", "key": "k", "value": "v"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ml.req("DELETE", "model-versions/delete-tag", {"name": "m", "version": "7", "key": "k"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    ml.version("m")
    err(ml.req("POST", "model-versions/set-tag", {"name": "m", "version": "1", "key": "k", "value": "v" * 100001}),
        400, "INVALID_PARAMETER_VALUE")


def test_stage_transitions_and_latest_versions(mlp):
    mlp.model("s")
    for _ in range(4):
        mlp.version("s")

    def stage(v, st, archive=False):
        return mlp.p("model-versions/transition-stage", {"name": "s", "version": v, "stage": st,
                                                         "archive_existing_versions": archive})["model_version"]

    assert stage("1", "staging")["current_stage"] == "Staging"  # any case in, canonical out
    assert stage("2", "Production")["current_stage"] == "Production"
    assert stage("3", "PRODUCTION")["current_stage"] == "Production"
    latest = mlp.p("registered-models/get-latest-versions", {"name": "s"})["model_versions"]
    assert [(v["version"], v["current_stage"]) for v in latest] == [("4", "None"), ("1", "Staging"),
                                                                     ("3", "Production")]
    assert [v["version"] for v in mlp.g("registered-models/get-latest-versions", name="s",
                                         stages=["production"])["model_versions"]] == ["3"]
    assert mlp.g("registered-models/get-latest-versions", name="s", stages=["Archived"]) == {}
    # archive_existing_versions: the stage's other versions are archived
    v4 = stage("4", "Production", archive=True)
    assert v4["current_stage"] == "Production"
    stages = {v: mlp.g("model-versions/get", name="s", version=v)["model_version"]["current_stage"]
              for v in "1234"}
    assert stages == {"1": "Staging", "2": "Archived", "3": "Archived", "4": "Production"}
    m = mlp.g("registered-models/get", name="s")["registered_model"]
    assert [(v["version"], v["current_stage"]) for v in m["latest_versions"]] == [("1", "Staging"),
                                                                                   ("4", "Production"),
                                                                                   ("3", "Archived")]
    # archiving others is only for Staging and Production
    err(mlp.req("POST", "model-versions/transition-stage", {"name": "s", "version": "1", "stage": "Archived",
                                                            "archive_existing_versions": True}),
        400, "INVALID_PARAMETER_VALUE", "is not an Active stage")
    err(mlp.req("POST", "model-versions/transition-stage", {"name": "s", "version": "1", "stage": "Deployed",
                                                            "archive_existing_versions": False}),
        400, "INVALID_PARAMETER_VALUE",
        "Invalid Model Version stage: Deployed. Value must be one of None, Staging, Production, Archived.")
    err(mlp.req("POST", "registered-models/get-latest-versions", {"name": "s", "stages": ["bogus"]}), 400,
        "INVALID_PARAMETER_VALUE", "Invalid Model Version stage")
    err(mlp.req("POST", "model-versions/transition-stage", {"name": "s", "version": "9", "stage": "None",
                                                            "archive_existing_versions": False}),
        404, "RESOURCE_DOES_NOT_EXIST")
    err(mlp.req("POST", "model-versions/transition-stage", {"name": "s", "version": "1"}), 400,
        "INVALID_PARAMETER_VALUE", "'stage'")
    err(mlp.req("POST", "registered-models/get-latest-versions", {"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert stage("2", "none")["current_stage"] == "None"


def test_aliases(mlp):
    mlp.model("a")
    mlp.version("a")
    mlp.version("a")
    mlp.p("registered-models/alias", {"name": "a", "alias": "champion", "version": "1"})
    mlp.p("registered-models/alias", {"name": "a", "alias": "challenger", "version": 2})
    v = mlp.g("registered-models/alias", name="a", alias="champion")["model_version"]
    assert v["version"] == "1" and v["aliases"] == ["champion"]
    m = mlp.g("registered-models/get", name="a")["registered_model"]
    assert m["aliases"] == [{"alias": "challenger", "version": "2"}, {"alias": "champion", "version": "1"}]
    # setting again moves it
    mlp.p("registered-models/alias", {"name": "a", "alias": "champion", "version": "2"})
    assert mlp.g("model-versions/get", name="a", version="2")["model_version"]["aliases"] == ["challenger",
                                                                                            "champion"]
    assert "aliases" not in mlp.g("model-versions/get", name="a", version="1")["model_version"]
    mlp.ok("DELETE", "registered-models/alias", {"name": "a", "alias": "challenger"})
    err(mlp.req("GET", "registered-models/alias", name="a", alias="challenger"), 404, "RESOURCE_DOES_NOT_EXIST",
        "alias challenger not found")
    # deleting a version removes its aliases
    mlp.ok("DELETE", "model-versions/delete", {"name": "a", "version": "2"})
    err(mlp.req("GET", "registered-models/alias", name="a", alias="champion"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "aliases" not in mlp.g("registered-models/get", name="a")["registered_model"]
    # rules: [\w-]+, reserved names, an existing version
    for bad, frag in [("latest", "reserved"), ("LATEST", "reserved"), ("v3", "reserved"), ("has space", "Invalid alias"),
                      ("a/b", "Invalid alias"), ("x" * 256, "maximum length")]:
        err(mlp.req("POST", "registered-models/alias", {"name": "a", "alias": bad, "version": "1"}), 400,
            "INVALID_PARAMETER_VALUE", frag)
    mlp.p("registered-models/alias", {"name": "a", "alias": "v1-good", "version": "1"})
    err(mlp.req("POST", "registered-models/alias", {"name": "a", "alias": "c", "version": "2"}), 404,
        "RESOURCE_DOES_NOT_EXIST", "Model Version (name=a, version=2) not found")
    err(mlp.req("POST", "registered-models/alias", {"name": "nope", "alias": "c", "version": "1"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(mlp.req("POST", "registered-models/alias", {"name": "a", "alias": "c"}), 400, "INVALID_PARAMETER_VALUE",
        "'version'")


def test_model_version_search(mlp):
    ml = mlp
    ml.model("m1")
    ml.model("m2")
    r1, r2 = ml.run(), ml.run()
    ml.version("m1", r1, tags=[{"key": "env", "value": "prod"}])
    ml.version("m1", r2)
    ml.version("m2", r1)
    ml.p("model-versions/create", {"name": "m2", "source": "s3://b/m2"})

    def vs(**params):
        return [(v["name"], v["version"]) for v in ml.g("model-versions/search", **params).get("model_versions", [])]

    assert vs() == [("m1", "2"), ("m1", "1"), ("m2", "2"), ("m2", "1")]
    assert vs(filter="name = 'm1'") == [("m1", "2"), ("m1", "1")]
    assert vs(filter=f"run_id = '{r1['run_id']}'") == [("m1", "1"), ("m2", "1")]
    assert vs(filter=f"run_id IN ('{r2['run_id']}', 'x')") == [("m1", "2")]
    assert vs(filter="tags.env = 'prod'") == [("m1", "1")]
    assert vs(filter="source_path LIKE 's3://%'") == [("m2", "2")]
    assert vs(filter="version_number >= 2") == [("m1", "2"), ("m2", "2")]
    assert vs(order_by=["version_number ASC"])[0][1] == "1"
    err(ml.req("GET", "model-versions/search", filter="name IN ('m1')"), 400, "INVALID_PARAMETER_VALUE")
    err(ml.req("GET", "model-versions/search", max_results="200001"), 400, "INVALID_PARAMETER_VALUE")
    # paging
    got, token = [], None
    while True:
        params = {"max_results": "3"}
        if token:
            params["page_token"] = token
        page = ml.g("model-versions/search", **params)
        got += [(v["name"], v["version"]) for v in page["model_versions"]]
        ml.version("m1")  # a new version between pages is not seen by later ones
        token = page.get("next_page_token")
        if not token:
            break
    assert got == [("m1", "2"), ("m1", "1"), ("m2", "2"), ("m2", "1")]


# ---- tenancy --------------------------------------------------------------------------------------


def test_projects_never_see_each_others_models(server, make_user):
    u = make_user()
    a, b = ML(u.client()), ML(make_user().client())
    a.model("secret", tags=[{"key": "k", "value": "v"}])
    a.version("secret")
    a.p("registered-models/alias", {"name": "secret", "alias": "prod", "version": "1"})
    missing = err(b.req("GET", "registered-models/get", name="secret"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert missing == "Registered Model with name=secret not found"
    for method, path, body in [
        ("POST", "registered-models/rename", {"name": "secret", "new_name": "mine"}),
        ("PATCH", "registered-models/update", {"name": "secret", "description": "x"}),
        ("POST", "registered-models/set-tag", {"name": "secret", "key": "k", "value": "x"}),
        ("DELETE", "registered-models/delete-tag", {"name": "secret", "key": "k"}),
        ("POST", "registered-models/alias", {"name": "secret", "alias": "x", "version": "1"}),
        ("DELETE", "registered-models/alias", {"name": "secret", "alias": "prod"}),
        ("POST", "registered-models/get-latest-versions", {"name": "secret"}),
        ("POST", "model-versions/create", {"name": "secret", "source": "s3://b/x"}),
        ("PATCH", "model-versions/update", {"name": "secret", "version": "1", "description": "x"}),
        ("POST", "model-versions/set-tag", {"name": "secret", "version": "1", "key": "k", "value": "v"}),
        ("DELETE", "model-versions/delete-tag", {"name": "secret", "version": "1", "key": "k"}),
        ("POST", "model-versions/transition-stage", {"name": "secret", "version": "1", "stage": "Production",
                                                     "archive_existing_versions": True}),
        ("DELETE", "model-versions/delete", {"name": "secret", "version": "1"}),
        ("DELETE", "registered-models/delete", {"name": "secret"}),
    ]:
        assert err(b.req(method, path, body), 404, "RESOURCE_DOES_NOT_EXIST") == missing, path
    for path, params in [("model-versions/get", {"version": "1"}), ("model-versions/get-download-uri", {"version": "1"}),
                         ("registered-models/alias", {"alias": "prod"})]:
        err(b.req("GET", path, name="secret", **params), 404, "RESOURCE_DOES_NOT_EXIST")
    assert b.g("registered-models/search") == {}
    assert b.g("model-versions/search", filter="name = 'secret'") == {}
    # names are per project: b may register its own "secret"
    assert b.model("secret")["name"] == "secret"
    assert b.version("secret")["version"] == "1"
    # a key scoped to another project of a's owner does not see it either
    c = u.client()
    org = c.get("/api/v1/orgs").json()["orgs"][0]["id"]
    p2 = c.post("/api/v1/projects", json={"org_id": org, "name": "second"}).json()["project"]["id"]
    key = c.post("/api/v1/api-keys", json={"name": "p2", "scopes": ["read", "write"], "project_id": p2}).json()["key"]
    kc = ML(server.client(token=key))
    err(kc.req("GET", "registered-models/get", name="secret"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(kc.req("GET", "registered-models/alias", name="secret", alias="prod"), 404, "RESOURCE_DOES_NOT_EXIST")
    # a's data is untouched
    m = a.g("registered-models/get", name="secret")["registered_model"]
    assert tags_of(m) == {"k": "v"} and m["aliases"] == [{"alias": "prod", "version": "1"}]
    # read-only keys read but do not write; anonymous callers are refused
    ro = c.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["read"]}).json()["key"]
    rc = ML(server.client(token=ro))
    assert rc.g("registered-models/get", name="secret")["registered_model"]["name"] == "secret"
    err(rc.req("POST", "registered-models/create", {"name": "nope"}), 403, "PERMISSION_DENIED")
    err(ML(server.client()).req("GET", "registered-models/get", name="secret"), 401, "UNAUTHENTICATED")

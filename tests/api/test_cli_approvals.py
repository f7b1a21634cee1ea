"""`kiln approvals` and `kiln models lineage` against a real server: the
inbox as a table and --json, approve and reject, usage errors, and the
lineage table."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from kiln_harness import scaled

ML = "/api/2.0/mlflow/"


@pytest.fixture
def kiln(server, kiln_binary, tmp_path):
    def login(user):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        env.update(KILN_CONFIG_DIR=str(tmp_path / user.username), KILN_URL=server.url)

        def run(*args, ok=True, stdin=None):
            p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True, env=env,
                               timeout=scaled(60))
            if ok:
                assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
            return p

        run("login", "--username", user.username, "--password-stdin", stdin=user.password + "\n")
        return run

    return login


def test_approvals_inbox_approve_reject(make_user, kiln):
    owner = make_user()
    c = owner.client()
    c.put("/api/v1/registry/governance", json={"require_approval_for_production": True,
                                               "protected_aliases": ["champion"]})
    assert c.post(ML + "registered-models/create", json={"name": "churn"}).status_code == 200
    for _ in range(2):
        assert c.post(ML + "model-versions/create", json={"name": "churn", "source": "s3://b/m"}).status_code == 200
    a = c.post("/api/v1/approvals", json={"name": "churn", "version": "1", "stage": "Production"}).json()
    b = c.post("/api/v1/approvals", json={"name": "churn", "version": "2", "alias": "champion"}).json()
    a, b = a["approval_request"], b["approval_request"]
    run = kiln(owner)
    out = run("approvals", "list").stdout.splitlines()
    assert out[0].split() == ["ID", "MODEL", "VERSION", "CHANGE", "STATE", "REQUESTER", "CREATED"]
    assert [line.split()[0] for line in out[1:]] == [b["id"], a["id"]]
    assert "alias champion" in out[1] and "stage Production" in out[2] and owner.username in out[1]
    listed = json.loads(run("approvals", "list", "--json").stdout)
    assert [r["id"] for r in listed["approval_requests"]] == [b["id"], a["id"]]
    p = run("approvals", "approve", a["id"], "--comment", "ship it")
    assert f"request {a['id']} is APPROVED" in p.stdout
    r = json.loads(run("approvals", "reject", b["id"], "--json").stdout)["approval_request"]
    assert r["state"] == "REJECTED"
    v = c.get(ML + "model-versions/get", params={"name": "churn", "version": "1"}).json()["model_version"]
    assert v["current_stage"] == "Production"
    assert run("approvals", "list").stdout.splitlines()[1:] == []
    assert len(run("approvals", "list", "--state", "ALL").stdout.splitlines()) == 3
    p = run("approvals", "approve", a["id"], ok=False)
    assert p.returncode == 1 and "INVALID_STATE" in p.stderr
    p = run("approvals", "approve", "../../x", ok=False)
    assert p.returncode == 2 and "not an approval request id" in p.stderr
    assert run("approvals", "frob", ok=False).returncode == 2


def test_models_lineage_table(make_user, kiln):
    u = make_user()
    c = u.client()
    run_info = c.post(ML + "runs/create", json={"experiment_id": "0", "run_name": "train-1"}).json()["run"]["info"]
    c.post(ML + "runs/log-inputs", json={"run_id": run_info["run_id"], "datasets": [
        {"dataset": {"name": "train", "digest": "d1", "source_type": "local", "source": "{}"}}]})
    c.post(ML + "registered-models/create", json={"name": "churn"})
    c.post(ML + "model-versions/create", json={"name": "churn", "source": run_info["artifact_uri"] + "/m",
                                               "run_id": run_info["run_id"]})
    run = kiln(u)
    rows = [line.split("  ") for line in run("models", "lineage", "churn", "1").stdout.splitlines()]
    text = run("models", "lineage", "churn", "1").stdout
    assert text.splitlines()[0].split() == ["FROM", "EDGE", "TO"]
    assert "model_version churn v1" in text and "produced_by" in text and "run train-1" in text
    assert "consumed" in text and "dataset train" in text and "logged_in" in text
    assert len(rows) == 4
    g = json.loads(run("models", "lineage", "churn", "1", "--json").stdout)
    assert {n["type"] for n in g["nodes"]} == {"model_version", "run", "dataset", "experiment"}
    p = run("models", "lineage", "churn", "7", ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST" in p.stderr

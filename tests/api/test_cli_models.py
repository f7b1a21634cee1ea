"""`kiln models` against a real server: list, show, versions, promote and
alias, tables and --json checked against what the MLflow registry API
answers, usage and server errors."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from kiln_harness import scaled

ML = "/api/2.0/mlflow/"


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def kiln(server, kiln_binary, tmp_path, user):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "cfg"), KILN_URL=server.url)

    def run(*args, ok=True, stdin=None):
        p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True, env=env,
                           timeout=scaled(60))
        if ok:
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    run("login", "--username", user.username, "--password-stdin", stdin=user.password + "\n")
    return run


@pytest.fixture
def api(user):
    c = user.client()

    def call(method, path, body=None, **params):
        r = c.request(method, ML + path, json=body) if body is not None else c.get(ML + path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    return call


def table(text):
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


@pytest.fixture
def models(api):
    run = api("POST", "runs/create", {"experiment_id": "0"})["run"]["info"]
    for name in ("churn", "vision"):
        api("POST", "registered-models/create", {"name": name, "tags": [{"key": "team", "value": name}]})
    for _ in range(3):
        api("POST", "model-versions/create", {"name": "churn", "source": run["artifact_uri"] + "/model",
                                              "run_id": run["run_id"]})
    return run


def test_models_list_show_versions(kiln, api, models):
    rows = table(kiln("models", "list").stdout)
    assert rows[0] == ["NAME", "LATEST", "ALIASES", "UPDATED (UTC)"]
    assert [r[0] for r in rows[1:]] == ["churn", "vision"]
    assert rows[1][1] == "v3 None" and rows[2][1] == "-"
    assert json.loads(kiln("models", "list", "--json").stdout) == api("GET", "registered-models/search")
    assert [r[0] for r in table(kiln("models", "list", "--filter", "tags.team = 'vision'").stdout)[1:]] == ["vision"]
    assert [r[0] for r in table(kiln("models", "list", "--order-by", "name DESC").stdout)[1:]] == ["vision", "churn"]
    p = kiln("models", "list", "--max-results", "1")
    assert len(table(p.stdout)) == 2 and "more models exist" in p.stderr

    out = kiln("models", "show", "churn").stdout
    assert "name:        churn" in out and "tag:         team=churn" in out and "aliases:     -" in out
    assert json.loads(kiln("models", "show", "churn", "--json").stdout) == api("GET", "registered-models/get",
                                                                              name="churn")
    rows = table(kiln("models", "versions", "churn").stdout)
    assert rows[0] == ["VERSION", "STAGE", "STATUS", "ALIASES", "CREATED (UTC)", "RUN"]
    assert [r[0] for r in rows[1:]] == ["3", "2", "1"] and all(r[5] == models["run_id"] for r in rows[1:])
    assert json.loads(kiln("models", "versions", "churn", "--json").stdout) == api(
        "GET", "model-versions/search", filter="name = 'churn'")
    assert table(kiln("models", "versions", "vision").stdout) == [["VERSION", "STAGE", "STATUS", "ALIASES",
                                                                    "CREATED (UTC)", "RUN"]]


def test_models_promote_and_alias(kiln, api, models):
    p = kiln("models", "promote", "churn", "1", "production")
    assert "churn version 1 is now in Production" in p.stdout
    out = json.loads(kiln("models", "promote", "churn", "2", "Production", "--archive-existing", "--json").stdout)
    assert out["model_version"]["current_stage"] == "Production"
    assert api("GET", "model-versions/get", name="churn", version="1")["model_version"]["current_stage"] == "Archived"
    assert "churn@champion now points at version 2" in kiln("models", "alias", "churn", "champion", "2").stdout
    assert api("GET", "registered-models/alias", name="churn", alias="champion")["model_version"]["version"] == "2"
    rows = table(kiln("models", "versions", "churn").stdout)
    assert rows[2][:4] == ["2", "Production", "READY", "@champion"]
    assert "@champion=v2" in table(kiln("models", "list").stdout)[1][2]
    # server errors are reported with their code
    p = kiln("models", "promote", "churn", "1", "Live", ok=False)
    assert p.returncode == 1 and "INVALID_PARAMETER_VALUE (400)" in p.stderr
    p = kiln("models", "show", "nope", ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    p = kiln("models", "versions", "nope", ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    p = kiln("models", "alias", "churn", "latest", "1", ok=False)
    assert p.returncode == 1 and "reserved" in p.stderr


def test_models_help_and_usage(kiln):
    p = kiln("help", "models")
    assert p.stdout.startswith("usage: kiln models") and all(
        w in p.stdout for w in ["list", "show", "versions", "promote", "alias", "--archive-existing", "--json"])
    assert "models" in kiln("help").stdout
    for args in (("models",), ("models", "show"), ("models", "promote", "a", "1"), ("models", "alias", "a"),
                 ("models", "list", "--bogus"), ("models", "list", "--max-results", "0")):
        p = kiln(*args, ok=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)

"""`kiln experiments` and `kiln runs` against a real server: tables and --json
output checked against what the MLflow API answers for the same question,
--filter / --order-by / --max-results, show and compare, help texts, usage
and server errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from kiln_harness import scaled, unique_name

ML = "/api/2.0/mlflow/"


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def kiln(server, kiln_binary, tmp_path, user):
    """`kiln` signed in as a fresh user (its own credentials directory)."""
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

    def call(path, body=None, **params):
        r = c.post(ML + path, json=body) if body is not None else c.get(ML + path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    return call


def table(text):
    """Rows of a CLI table as lists of cells (split on 2+ spaces)."""
    import re
    lines = [line for line in text.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def test_experiments_create_list_delete(kiln, api):
    a, b = unique_name("exp-a"), unique_name("exp-b")
    p = kiln("experiments", "create", a)
    assert p.stdout.startswith(f"created experiment {a} (id ")
    aid = p.stdout.split("(id ")[1].rstrip(")\n")
    bid = json.loads(kiln("experiments", "create", b, "--json").stdout)["experiment_id"]
    assert api("experiments/get", experiment_id=aid)["experiment"]["name"] == a

    rows = table(kiln("experiments", "list").stdout)
    assert rows[0] == ["ID", "NAME", "STAGE", "CREATED (UTC)"]
    listed = {r[1]: r for r in rows[1:]}
    assert listed[a][0] == aid and listed[a][2] == "active" and listed[b][0] == bid
    want = api("experiments/search", {})
    got = json.loads(kiln("experiments", "list", "--json").stdout)
    assert got == want
    assert [r[0] for r in rows[1:]] == [e["experiment_id"] for e in want["experiments"]]

    rows = table(kiln("experiments", "list", "--filter", f"name = '{a}'").stdout)
    assert [r[1] for r in rows[1:]] == [a]
    rows = table(kiln("experiments", "list", "--order-by", "name DESC").stdout)
    names = [r[1] for r in rows[1:]]
    assert names == sorted(names, reverse=True)
    p = kiln("experiments", "list", "--max-results", "1")
    assert len(table(p.stdout)) == 2 and "more experiments exist" in p.stderr

    p = kiln("experiments", "delete", a)
    assert f"deleted experiment {aid}" in p.stdout
    kiln("experiments", "delete", bid)
    names = [r[1] for r in table(kiln("experiments", "list").stdout)[1:]]
    assert a not in names and b not in names
    deleted = {r[1]: r[2] for r in table(kiln("experiments", "list", "--deleted").stdout)[1:]}
    assert deleted == {a: "deleted", b: "deleted"}
    assert {a, b} <= {r[1] for r in table(kiln("experiments", "list", "--all").stdout)[1:]}

    p = kiln("experiments", "create", b, ok=False)  # a deleted experiment keeps its name
    assert p.returncode == 1 and "RESOURCE_ALREADY_EXISTS (400)" in p.stderr
    p = kiln("experiments", "delete", unique_name("nope"), ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    p = kiln("experiments", "list", "--filter", "name ==", ok=False)
    assert p.returncode == 1 and "INVALID_PARAMETER_VALUE (400)" in p.stderr


@pytest.fixture
def three_runs(api):
    name = unique_name("runs")
    eid = api("experiments/create", {"name": name})["experiment_id"]
    ids = []
    for i, (lr, acc) in enumerate([("0.1", 0.7), ("0.01", 0.9), ("0.01", 0.8)]):
        run = api("runs/create", {"experiment_id": eid, "run_name": f"r{i}", "start_time": 1_700_000_000_000 + i})
        rid = run["run"]["info"]["run_id"]
        api("runs/log-batch", {"run_id": rid, "params": [{"key": "lr", "value": lr}, {"key": "opt", "value": "adam"}],
                               "metrics": [{"key": "acc", "value": acc, "timestamp": 1, "step": 3},
                                           {"key": "loss", "value": 1 - acc, "timestamp": 1, "step": 3}],
                               "tags": [{"key": "team", "value": "t"}]})
        if i < 2:
            api("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 1_700_000_090_000 + i})
        ids.append(rid)
    return name, eid, ids


def test_runs_list(kiln, api, three_runs):
    name, eid, ids = three_runs
    rows = table(kiln("runs", "list", "--experiment", name).stdout)
    assert rows[0] == ["RUN ID", "NAME", "STATUS", "STARTED (UTC)", "DURATION", "acc", "loss"]
    want = api("runs/search", {"experiment_ids": [eid]})
    assert [r[0] for r in rows[1:]] == [r["info"]["run_id"] for r in want["runs"]]
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id[ids[1]][1:] == ["r1", "FINISHED", "2023-11-14 22:13:20", "1.5m", "0.9", "0.1"]
    assert by_id[ids[2]][2] == "RUNNING" and by_id[ids[2]][4] == "-"
    assert json.loads(kiln("runs", "list", "--experiment", eid, "--json").stdout) == want

    flt, order = "metrics.acc > 0.75 and params.lr = '0.01'", "metrics.acc DESC"
    want = api("runs/search", {"experiment_ids": [eid], "filter": flt, "order_by": [order]})
    rows = table(kiln("runs", "list", "--experiment", eid, "--filter", flt, "--order-by", order).stdout)
    assert [r[0] for r in rows[1:]] == [r["info"]["run_id"] for r in want["runs"]] == [ids[1], ids[2]]
    got = json.loads(kiln("runs", "list", "--experiment", eid, "--filter", flt, "--order-by", order,
                          "--json").stdout)
    assert got == want
    p = kiln("runs", "list", "--experiment", eid, "--order-by", "metrics.acc ASC", "--max-results", "2")
    assert [r[1] for r in table(p.stdout)[1:]] == ["r0", "r2"] and "more runs match" in p.stderr
    p = kiln("runs", "list", "--experiment", eid, "--filter", "metrics.acc >", ok=False)
    assert p.returncode == 1 and "INVALID_PARAMETER_VALUE (400)" in p.stderr
    # the Default experiment when none is given; deleted runs with --deleted
    api("runs/delete", {"run_id": ids[0]})
    rows = table(kiln("runs", "list", "--experiment", name, "--deleted").stdout)
    assert [r[0] for r in rows[1:]] == [ids[0]]
    assert kiln("runs", "list").returncode == 0


def test_runs_show_and_compare(kiln, api, three_runs):
    _, _, ids = three_runs
    run = api("runs/get", run_id=ids[1])["run"]
    assert json.loads(kiln("runs", "show", ids[1], "--json").stdout) == run
    out = kiln("runs", "show", ids[1]).stdout
    assert f"run id:" in out and ids[1] in out and "FINISHED" in out and "1.5m" in out
    sections = out.split("\n\n")
    assert any(s.startswith("params:") and "lr" in s and "0.01" in s for s in sections)
    assert any(s.startswith("metrics:") and "acc" in s and "0.9" in s and "step 3" in s for s in sections)
    assert any(s.startswith("tags:") and "team" in s for s in sections)

    got = json.loads(kiln("runs", "compare", ids[0], ids[1], ids[2], "--json").stdout)
    assert got == {"runs": [api("runs/get", run_id=i)["run"] for i in ids]}
    out = kiln("runs", "compare", ids[0], ids[1]).stdout
    rows = {r[-3] if r[0] == "*" else r[0]: r for r in table(out)[1:-1]}
    assert rows["params.lr"] == ["*", "params.lr", "0.1", "0.01"]
    assert rows["params.opt"] == ["params.opt", "adam", "adam"]
    assert rows["metrics.acc"] == ["*", "metrics.acc", "0.7", "0.9"]
    assert "3 of the params and metrics differ" in out  # lr, acc, loss

    p = kiln("runs", "show", "0" * 32, ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    p = kiln("runs", "show", "../x", ok=False)
    assert p.returncode == 1 and "not a run id" in p.stderr


def test_help_and_usage(kiln):
    for verb, words in (("experiments", ["list", "create", "delete", "--filter", "--json"]),
                        ("runs", ["list", "show", "compare", "--order-by", "--max-results", "--json"]),
                        ("sync", ["spool", "idempotent"])):
        p = kiln("help", verb)
        assert p.stdout.startswith(f"usage: kiln {verb}") and all(w in p.stdout for w in words), p.stdout
    assert "experiments" in kiln("help").stdout and "runs" in kiln("help").stdout
    for args in (("experiments",), ("experiments", "create"), ("runs", "show"), ("runs", "compare", "a"),
                 ("runs", "list", "--bogus"), ("runs", "list", "--filter"), ("experiments", "list", "--max-results", "x")):
        p = kiln(*args, ok=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "usage: kiln" in p.stderr or "--max-results" in p.stderr


def test_not_signed_in(server, kiln_binary, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "none"), KILN_URL=server.url)
    p = subprocess.run([kiln_binary, "runs", "list"], capture_output=True, text=True, env=env, timeout=scaled(30))
    assert p.returncode == 1 and "kiln login" in p.stderr

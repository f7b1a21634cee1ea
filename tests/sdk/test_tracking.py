"""The fluent tracking API against real `kiln server` processes: runs as
context managers, background batching (every point arrives), the spool
(logging while the server is down, then replaying through the SDK, through
a later process's first success, and through `kiln sync`, with exact counts
and no duplicates), nested runs, autolog on real scikit-learn and XGBoost
training, and system metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import kiln
from kiln import spool, tracking

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "python"
ADMIN_PASSWORD = "Track-Sdk-Admin-7qP2"
ML = "/api/2.0/mlflow"


def _binary() -> Path:
    name = os.environ.get("KILN_BIN") or "build/kiln"
    path = Path(name)
    if not path.is_absolute():
        path = ROOT / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"kiln binary not found: {path} (build it with `make build/kiln`)", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`kiln server` on a fixed port and data directory; start/stop at will."""

    def __init__(self, data: Path, port: Optional[int] = None) -> None:
        self.data = data
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        env["KILN_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        self.data.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.data.parent / f"kiln-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [str(_binary()), "server", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kiln server exited {self.proc.returncode}")
            try:
                kiln.Client(self.url, token="", timeout=2).health()
                return self
            except kiln.KilnError:
                time.sleep(0.05)
        raise AssertionError("kiln server did not answer /healthz")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(15) == 0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def api_key(self) -> str:
        admin = kiln.Client(self.url, username="admin", password=ADMIN_PASSWORD)
        return admin.create_api_key("sdk-tracking", scopes=["read", "write"])["key"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kiln-track") / "data").start()
    srv.key = srv.api_key()  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "spool"
    monkeypatch.setenv("KILN_SPOOL_DIR", str(d))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_EXPERIMENT_NAME", "KILN_LOG_SYSTEM_METRICS"):
        monkeypatch.delenv(name, raising=False)
    yield d
    while kiln.active_run() is not None:
        kiln.end_run()


@pytest.fixture
def api(server: Server) -> kiln.Client:
    return kiln.init(server.url, api_key=server.key)  # type: ignore[attr-defined]


def run_get(client: kiln.Client, run_id: str) -> Dict[str, Any]:
    return client._request_dict("GET", f"{ML}/runs/get", params={"run_id": run_id})["run"]


def history(client: kiln.Client, run_id: str, key: str) -> List[Dict[str, Any]]:
    return client._request_dict("GET", f"{ML}/metrics/get-history",
                                params={"run_id": run_id, "metric_key": key}).get("metrics", [])


def kv(items: Optional[List[Dict[str, Any]]]) -> Dict[str, Any]:
    return {i["key"]: i["value"] for i in items or []}


def search(client: kiln.Client, experiment_id: str, flt: str = "") -> List[Dict[str, Any]]:
    return client._request_dict("POST", f"{ML}/runs/search", json={
        "experiment_ids": [experiment_id], "filter": flt, "run_view_type": "ALL"}).get("runs", [])


def uniq(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


# ---- the fluent API -----------------------------------------------------------------


def test_fluent_run_end_to_end(api: kiln.Client) -> None:
    exp_name = uniq("fluent")
    exp_id = kiln.set_experiment(exp_name)
    assert exp_id and exp_id.isdigit()
    with kiln.start_run(run_name="baseline", tags={"team": "vision"}, description="first try") as run:
        assert kiln.active_run().info.run_id == run.info.run_id
        assert kiln.log_param("lr", 0.01) == 0.01
        kiln.log_params({"epochs": 3, "use_bn": True, "opt": "adam"})
        kiln.log_param("lr", 0.01)  # same value again: fine
        with pytest.raises(kiln.BadRequest, match="Changing param values"):
            kiln.log_param("lr", 0.02)
        for step in range(3):
            kiln.log_metric("loss", 1.0 / (step + 1), step=step)
        kiln.log_metrics({"acc": 0.9, "f1": float("nan")}, step=2, timestamp=1_700_000_000_000)
        kiln.set_tag("stage", "dev")
        kiln.set_tags({"a": 1, "b": "two"})
        with pytest.raises(ValueError):
            kiln.log_metric("bad//key", 1.0)
        with pytest.raises(TypeError):
            kiln.log_metric("loss", "high")
        with pytest.raises(RuntimeError, match="already active"):
            kiln.start_run()
    assert kiln.active_run() is None
    r = run_get(api, run.info.run_id)
    assert r["info"]["status"] == "FINISHED" and r["info"]["end_time"] >= r["info"]["start_time"]
    assert r["info"]["run_name"] == "baseline" and r["info"]["experiment_id"] == exp_id
    assert kv(r["data"]["params"]) == {"lr": "0.01", "epochs": "3", "use_bn": "True", "opt": "adam"}
    tags = kv(r["data"]["tags"])
    assert tags["team"] == "vision" and tags["stage"] == "dev" and tags["a"] == "1" and tags["b"] == "two"
    assert tags["mlflow.note.content"] == "first try" and tags["mlflow.source.type"] == "LOCAL"
    metrics = kv(r["data"]["metrics"])
    assert metrics["loss"] == pytest.approx(1 / 3) and metrics["acc"] == 0.9 and metrics["f1"] == "NaN"
    assert [(m["step"], m["value"]) for m in history(api, run.info.run_id, "loss")] == \
        [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert kiln.last_active_run().status == "FINISHED"


def test_failed_and_killed_status_and_implicit_run(api: kiln.Client) -> None:
    kiln.set_experiment(uniq("status"))
    with pytest.raises(ZeroDivisionError):
        with kiln.start_run() as run:
            kiln.log_metric("x", 1)
            1 / 0
    assert run_get(api, run.info.run_id)["info"]["status"] == "FAILED"
    # logging without a run starts one, as MLflow does; end_run ends it
    kiln.log_metric("y", 2.0)
    implicit = kiln.active_run()
    assert implicit is not None
    kiln.end_run("KILLED")
    info = run_get(api, implicit.info.run_id)
    assert info["info"]["status"] == "KILLED" and kv(info["data"]["metrics"]) == {"y": 2.0}
    kiln.end_run()  # no active run: no-op


def test_nested_runs(api: kiln.Client) -> None:
    exp = kiln.set_experiment(uniq("nested"))
    with kiln.start_run(run_name="parent") as parent:
        for i in range(3):
            with kiln.start_run(run_name=f"child-{i}", nested=True) as child:
                assert child.info.parent_run_id == parent.info.run_id
                kiln.log_metric("score", i)
                with kiln.start_run(nested=True) as grandchild:
                    kiln.log_param("depth", 2)
        assert kiln.active_run().info.run_id == parent.info.run_id
    runs = search(api, exp, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r["info"]["run_name"] for r in runs) == ["child-0", "child-1", "child-2"]
    g = run_get(api, grandchild.info.run_id)
    assert kv(g["data"]["tags"])["mlflow.parentRunId"] == child.info.run_id
    assert all(r["info"]["status"] == "FINISHED" for r in search(api, exp))


def test_background_batching_flushes_every_point(api: kiln.Client) -> None:
    kiln.set_experiment(uniq("batching"))
    n = 25_000
    with kiln.start_run() as run:
        kiln.log_params({f"p{i}": i for i in range(150)})  # more than one batch's 100
        kiln.set_tags({f"t{i}": i for i in range(120)})
        t0 = time.perf_counter()
        for i in range(n):
            kiln.log_metric("loss", 1.0 / (i + 1), step=i)
            if i % 5 == 0:
                kiln.log_metric("lr", 0.1, step=i)
        per_call_us = (time.perf_counter() - t0) / (n * 1.2) * 1e6
    pts = history(api, run.info.run_id, "loss")
    assert len(pts) == n
    assert [p["step"] for p in pts] == list(range(n))
    assert len(history(api, run.info.run_id, "lr")) == n // 5
    r = run_get(api, run.info.run_id)
    assert len(r["data"]["params"]) == 150 and len([t for t in r["data"]["tags"] if t["key"][0] == "t"]) >= 120
    assert per_call_us < 500, f"log_metric took {per_call_us:.0f} µs per call: it must not wait on the network"


def test_metrics_of_a_thread_and_flush(api: kiln.Client) -> None:
    kiln.set_experiment(uniq("threads"))
    with kiln.start_run() as run:
        def work(k: int) -> None:
            for i in range(500):
                kiln.log_metric(f"w{k}", i, step=i)
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert kiln.flush(30)
        assert all(len(history(api, run.info.run_id, f"w{k}")) == 500 for k in range(4))


# ---- the spool ----------------------------------------------------------------------


def _offline_script(url: str, key: str, experiment: str, n: int, tag: str) -> str:
    return textwrap.dedent(f"""
        import sys, warnings
        sys.path.insert(0, {str(SDK)!r})
        import kiln
        kiln.init({url!r}, api_key={key!r})
        with kiln.start_run(experiment={experiment!r}, run_name={tag!r}) as run:
            kiln.log_params({{"lr": 0.1, "tag": {tag!r}}})
            for i in range({n}):
                kiln.log_metric("loss", 1.0 / (i + 1), step=i)
            with kiln.start_run(nested=True, run_name={tag!r} + "-child"):
                kiln.log_metric("inner", 7.0, step=1)
            kiln.set_tag("phase", "done")
            print(run.info.run_id)
        """)


def _python(script: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "MLFLOW_"))}
    full.update(env)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=full, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def _spooled_metrics(d: Path) -> int:
    return sum(1 for f in spool.pending_files(None, d) for _ in spool.iter_metrics(spool.read_records(f)))


def _check_replayed(client: kiln.Client, experiment: str, tag: str, n: int) -> None:
    exp = client._request_dict("GET", f"{ML}/experiments/get-by-name",
                               params={"experiment_name": experiment})["experiment"]["experiment_id"]
    runs = [r for r in search(client, exp) if r["info"]["run_name"] in (tag, tag + "-child")]
    assert sorted(r["info"]["run_name"] for r in runs) == [tag, tag + "-child"], "one run each, no duplicates"
    parent = next(r for r in runs if r["info"]["run_name"] == tag)
    child = next(r for r in runs if r["info"]["run_name"] != tag)
    pid = parent["info"]["run_id"]
    assert parent["info"]["status"] == "FINISHED" and child["info"]["status"] == "FINISHED"
    assert kv(child["data"]["tags"])["mlflow.parentRunId"] == pid
    pts = history(client, pid, "loss")
    assert len(pts) == n and sorted(p["step"] for p in pts) == list(range(n))
    assert kv(parent["data"]["params"]) == {"lr": "0.1", "tag": tag}
    assert kv(parent["data"]["tags"])["phase"] == "done"
    assert len(history(client, child["info"]["run_id"], "inner")) == 1


@pytest.fixture
def down_server(tmp_path: Path) -> Iterator[Server]:
    """A server whose key exists, then stopped: its port is closed."""
    srv = Server(tmp_path / "srvdata").start()
    srv.key = srv.api_key()  # type: ignore[attr-defined]
    srv.stop()
    try:
        yield srv
    finally:
        srv.stop()


def test_spool_while_down_then_sdk_replays(down_server: Server, _spool_dir: Path) -> None:
    srv = down_server
    client = kiln.init(srv.url, api_key=srv.key)  # type: ignore[attr-defined]
    exp = uniq("offline")
    n = 3_500
    with pytest.warns(UserWarning, match="cannot reach"):
        tracking._warned_offline = False
        run = kiln.start_run(experiment=exp, run_name="off")
    assert run.info.local
    kiln.log_params({"lr": 0.1, "tag": "off"})
    t0 = time.perf_counter()
    for i in range(n):
        kiln.log_metric("loss", 1.0 / (i + 1), step=i)
    assert time.perf_counter() - t0 < 5
    with kiln.start_run(nested=True, run_name="off-child"):
        kiln.log_metric("inner", 7.0, step=1)
    kiln.set_tag("phase", "done")
    kiln.end_run()
    files = spool.pending_files(None, _spool_dir)
    assert len(files) == 1 and files[0].name.startswith("local-")
    assert _spooled_metrics(_spool_dir) == n + 1
    saved = files[0].read_bytes()
    # a replay while the server is still down keeps the file
    res = kiln.sync()
    assert res.files_done == 0 and res.files_kept and files[0].exists()

    srv.start()
    res = kiln.sync()
    assert res.files_done == 1 and res.metrics_sent == n + 1 and not res.files_kept
    assert spool.pending_files(None, _spool_dir) == []
    _check_replayed(client, exp, "off", n)
    # replaying the same file again (a crash before removal) changes nothing
    files[0].write_bytes(saved)
    res = kiln.sync()
    assert res.files_done == 1
    _check_replayed(client, exp, "off", n)


def test_blip_mid_run_spools_then_resumes(down_server: Server, _spool_dir: Path) -> None:
    srv = down_server
    srv.start()
    client = kiln.init(srv.url, api_key=srv.key)  # type: ignore[attr-defined]
    kiln.set_experiment(uniq("blip"))
    with kiln.start_run() as run:
        for i in range(1000):
            kiln.log_metric("m", i, step=i)
        assert kiln.flush(30)
        srv.stop()
        for i in range(1000, 3000):
            kiln.log_metric("m", i, step=i)
        assert kiln.flush(30)
        assert spool.pending_files(None, _spool_dir), "points logged during the outage are spooled"
        srv.start()
        for i in range(3000, 4000):
            kiln.log_metric("m", i, step=i)
    assert spool.pending_files(None, _spool_dir) == []
    pts = history(client, run.info.run_id, "m")
    assert sorted(p["step"] for p in pts) == list(range(4000))
    assert run_get(client, run.info.run_id)["info"]["status"] == "FINISHED"


def test_next_process_replays_on_first_success(down_server: Server, _spool_dir: Path) -> None:
    srv = down_server
    env = {"KILN_SPOOL_DIR": str(_spool_dir)}
    exp = uniq("next")
    _python(_offline_script(srv.url, srv.key, exp, 2_000, "first"), env)  # type: ignore[attr-defined]
    assert _spooled_metrics(_spool_dir) == 2_001
    srv.start()
    _python(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SDK)!r})
        import kiln
        kiln.init({srv.url!r}, api_key={srv.key!r})
        with kiln.start_run(experiment={exp!r}, run_name="second"):
            kiln.log_metric("x", 1.0)
        """), env)  # type: ignore[attr-defined]
    assert spool.pending_files(None, _spool_dir) == []
    _check_replayed(kiln.Client(srv.url, api_key=srv.key), exp, "first", 2_000)  # type: ignore[attr-defined]


def test_kiln_sync_cli_replays(down_server: Server, _spool_dir: Path, tmp_path: Path) -> None:
    srv = down_server
    env = {"KILN_SPOOL_DIR": str(_spool_dir)}
    exp = uniq("clisync")
    _python(_offline_script(srv.url, srv.key, exp, 1_500, "cli"), env)  # type: ignore[attr-defined]
    files = spool.pending_files(None, _spool_dir)
    assert len(files) == 1
    saved = files[0].read_bytes()
    # a torn last line (a crash mid-write) is skipped
    with open(files[0], "ab") as f:
        f.write(b'{"v":1,"op":"batch","metrics":[{"key":"lo')
    cenv = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    cenv.update(KILN_URL=srv.url, KILN_API_KEY=srv.key, KILN_SPOOL_DIR=str(_spool_dir),  # type: ignore[attr-defined]
                KILN_CONFIG_DIR=str(tmp_path / "cfg"))
    p = subprocess.run([str(_binary()), "sync"], capture_output=True, text=True, env=cenv, timeout=60)
    assert p.returncode == 1 and "kept" in p.stderr, (p.stdout, p.stderr)  # server down
    srv.start()
    p = subprocess.run([str(_binary()), "sync"], capture_output=True, text=True, env=cenv, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "1 file" in p.stdout and "1501 metric points" in p.stdout, p.stdout
    assert spool.pending_files(None, _spool_dir) == []
    client = kiln.Client(srv.url, api_key=srv.key)  # type: ignore[attr-defined]
    _check_replayed(client, exp, "cli", 1_500)
    # idempotent: the same file replayed again by kiln sync, then by python -m kiln sync
    files[0].write_bytes(saved)
    p = subprocess.run([str(_binary()), "sync", "--json"], capture_output=True, text=True, env=cenv, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["files_replayed"] == 1, (p.stdout, p.stderr)
    _check_replayed(client, exp, "cli", 1_500)
    files[0].write_bytes(saved)
    penv = dict(cenv, PYTHONPATH=str(SDK))
    p = subprocess.run([sys.executable, "-m", "kiln", "sync", "--json"], capture_output=True, text=True,
                       env=penv, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["metrics_sent"] == 1_501, (p.stdout, p.stderr)
    _check_replayed(client, exp, "cli", 1_500)
    p = subprocess.run([str(_binary()), "sync"], capture_output=True, text=True, env=cenv, timeout=60)
    assert p.returncode == 0 and "nothing to replay" in p.stdout


# ---- autolog ------------------------------------------------------------------------


@pytest.fixture
def autologged(api: kiln.Client) -> Iterator[kiln.Client]:
    tracking._artifacts_ok = None
    kiln.autolog()
    try:
        yield api
    finally:
        kiln.autolog(disable=True)


def test_autolog_sklearn(autologged: kiln.Client) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    api = autologged
    exp = kiln.set_experiment(uniq("sk"))
    X, y = load_iris(return_X_y=True)
    LogisticRegression(C=0.5, max_iter=300).fit(X, y)  # no active run: one of its own
    runs = search(api, exp)
    assert len(runs) == 1
    r = runs[0]
    params = kv(r["data"]["params"])
    assert params["C"] == "0.5" and params["max_iter"] == "300"
    metrics = kv(r["data"]["metrics"])
    assert 0.9 < metrics["training_accuracy_score"] <= 1.0
    assert metrics["training_score"] == metrics["training_accuracy_score"]
    assert {"training_precision_score", "training_recall_score", "training_f1_score"} <= set(metrics)
    tags = kv(r["data"]["tags"])
    assert tags["estimator_name"] == "LogisticRegression" and r["info"]["status"] == "FINISHED"
    # this server has the artifact proxy: the model is uploaded, not only noted
    assert tags["kiln.autolog.model"] == "model/model.joblib"
    files = api._request_dict("GET", f"{ML}/artifacts/list",
                              params={"run_id": r["info"]["run_id"], "path": "model"})["files"]
    assert [f["path"] for f in files] == ["model/model.joblib"] and files[0]["file_size"] > 0

    # inside a run, a pipeline logs once (its steps' fits are not runs of their own)
    with kiln.start_run(run_name="pipe") as run:
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)
    assert len(search(api, exp)) == 2
    p = run_get(api, run.info.run_id)
    assert kv(p["data"]["params"])["logisticregression__max_iter"] == "200"
    assert kv(p["data"]["tags"])["estimator_name"] == "Pipeline"

    from sklearn.linear_model import Ridge
    with kiln.start_run() as run:
        Ridge(alpha=2.0).fit(X, X[:, 0] * 2)
    m = kv(run_get(api, run.info.run_id)["data"]["metrics"])
    assert {"training_r2_score", "training_mean_squared_error", "training_root_mean_squared_error"} <= set(m)


def test_autolog_xgboost_train_with_evals(autologged: kiln.Client) -> None:
    import numpy as np
    import xgboost as xgb

    api = autologged
    kiln.set_experiment(uniq("xgb"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = X[:, 0] * 3 + rng.normal(scale=0.1, size=400)
    dtrain = xgb.DMatrix(X[:300], label=y[:300])
    dval = xgb.DMatrix(X[300:], label=y[300:])
    with kiln.start_run() as run:
        booster = xgb.train({"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror", "eval_metric": "rmse"},
                            dtrain, num_boost_round=15, evals=[(dtrain, "train"), (dval, "val")], verbose_eval=False)
    assert booster.num_boosted_rounds() == 15
    r = run_get(api, run.info.run_id)
    params = kv(r["data"]["params"])
    assert params["max_depth"] == "3" and params["eta"] == "0.3" and params["num_boost_round"] == "15"
    for key in ("train-rmse", "val-rmse"):
        pts = history(api, run.info.run_id, key)
        assert [p["step"] for p in pts] == list(range(15)), key
    tr = [p["value"] for p in history(api, run.info.run_id, "train-rmse")]
    assert tr[-1] < tr[0]
    model_tag = kv(r["data"]["tags"])["kiln.autolog.model"]
    assert model_tag == "model/model.xgb.json"
    base = run.info.artifact_uri[len("mlflow-artifacts:"):].lstrip("/")
    saved = json.loads(api._request("GET", f"/api/2.0/mlflow-artifacts/artifacts/{base}/model/model.xgb.json",
                                    raw=True))
    assert "learner" in saved

    # the scikit-learn wrapper goes through xgboost.train: one run, no nested logging twice
    with kiln.start_run() as run2:
        xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])],
                                                          verbose=False)
    pts = history(api, run2.info.run_id, "validation_0-rmse")
    assert [p["step"] for p in pts] == list(range(5))


# ---- system metrics -----------------------------------------------------------------


def test_system_metrics(api: kiln.Client) -> None:
    kiln.set_experiment(uniq("sys"))
    with kiln.start_run(log_system_metrics=True, system_metrics_interval=0.2) as run:
        deadline = time.monotonic() + 1.5
        x = 0
        while time.monotonic() < deadline:
            x += 1  # some CPU work
    r = run_get(api, run.info.run_id)
    metrics = kv(r["data"]["metrics"])
    for key in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
                "system/system_memory_usage_percentage", "system/process_memory_rss_megabytes"):
        assert key in metrics, key
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
    assert len(history(api, run.info.run_id, "system/system_memory_usage_megabytes")) >= 3
    from kiln.sysmetrics import Nvml
    if Nvml.load() is not None:
        assert "system/gpu_0_utilization_percentage" in metrics


def test_environment_configuration(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.key)  # type: ignore[attr-defined]
    client = kiln.init()
    assert client.url == server.url
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", uniq("envexp"))
    tracking._config.experiment_name = None
    with kiln.start_run() as run:
        kiln.log_metric("k", 1)
    assert run_get(client, run.info.run_id)["info"]["status"] == "FINISHED"


def test_set_experiment_before_any_configuration(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's tour: environment only, set_experiment() first; the run
    lands in that experiment (a lazy configuration must not reset it)."""
    monkeypatch.setenv("KILN_URL", server.url)
    monkeypatch.setenv("KILN_API_KEY", server.key)  # type: ignore[attr-defined]
    with tracking._lock:
        tracking._config.client = None
    name = uniq("tour")
    eid = kiln.set_experiment(name)
    with kiln.start_run(run_name="first") as run:
        kiln.log_metric("loss", 0.5)
    assert run.info.experiment_id == eid
    got = run_get(kiln.get_client(), run.info.run_id)
    assert got["info"]["experiment_id"] == eid


# ---- artifacts ----------------------------------------------------------------------


def test_log_artifacts(api: kiln.Client, tmp_path: Path) -> None:
    kiln.set_experiment(uniq("art"))
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("alpha")
    (tmp_path / "out" / "sub" / "b.json").write_text('{"b": 1}')
    tracking._artifacts_ok = None
    with kiln.start_run() as run:
        assert tracking.artifacts_supported()
        assert kiln.log_artifact(tmp_path / "out" / "a.txt", "notes") == "notes/a.txt"
        assert kiln.log_artifacts(tmp_path / "out", "tree") == ["tree/a.txt", "tree/sub/b.json"]
    listed = api._request_dict("GET", f"{ML}/artifacts/list", params={"run_id": run.info.run_id, "path": "tree/sub"})
    assert [(f["path"], f.get("file_size")) for f in listed["files"]] == [("tree/sub/b.json", 8)]
    base = run.info.artifact_uri[len("mlflow-artifacts:"):].lstrip("/")
    got = api._request("GET", f"/api/2.0/mlflow-artifacts/artifacts/{base}/notes/a.txt", raw=True)
    assert got == b"alpha"

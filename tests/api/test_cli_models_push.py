"""`kiln models push` and `kiln models download` against a real server: the
resumable upload with a progress bar, resuming an interrupted push from the
state file, refusals reported with the server's words, and downloads that
come back byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from kiln_harness import ROOT, scaled

ML = "/api/2.0/mlflow/"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    subprocess.run(["/usr/bin/python3", str(ROOT / "tests/unit/registry/make_models.py"), str(out)], check=True,
                   capture_output=True, timeout=scaled(120))
    return out


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def kiln(server, kiln_binary, tmp_path, user):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "cfg"), KILN_URL=server.url)

    def run(*args, ok=True, stdin=None, extra_env=None, cwd=None):
        p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True,
                           env={**env, **(extra_env or {})}, timeout=scaled(60), cwd=cwd)
        if ok:
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    run("login", "--username", user.username, "--password-stdin", stdin=user.password + "\n")
    run.config_dir = tmp_path / "cfg"
    return run


def test_push_and_download(kiln, user, models, tmp_path):
    f = models / "tiny.onnx"
    data = f.read_bytes()
    p = kiln("models", "push", str(f), "--name", "cli-onnx", "--description", "card", "--tag", "team=ml",
             "--chunk-size", "50")
    assert "cli-onnx version 1: READY" in p.stdout and "onnx" in p.stdout
    assert hashlib.sha256(data).hexdigest() in p.stdout
    assert "100%" in p.stderr and "[" in p.stderr  # the progress bar
    c = user.client()
    v = c.get(ML + "model-versions/get", params={"name": "cli-onnx", "version": "1"}).json()["model_version"]
    assert v["description"] == "card" and v["tags"] == [{"key": "team", "value": "ml"}]
    # finished pushes leave no state behind
    assert json.loads((kiln.config_dir / "uploads.json").read_text()) == {}
    out = tmp_path / "back.onnx"
    p = kiln("models", "download", "cli-onnx", "1", "-o", str(out))
    assert out.read_bytes() == data and hashlib.sha256(data).hexdigest() in p.stdout
    p = kiln("models", "download", "cli-onnx", "1", cwd=str(tmp_path))
    assert (tmp_path / "cli-onnx-v1.model").read_bytes() == data
    # --json answers the server's object
    p = kiln("models", "push", str(f), "--name", "cli-onnx", "--json")
    assert json.loads(p.stdout)["version"] == "2"


def test_push_interrupted_then_resumed(kiln, user, models):
    f = models / "sk.pkl"
    data = f.read_bytes()
    p = kiln("models", "push", str(f), "--name", "cli-resume", "--chunk-size", "100", ok=False,
             extra_env={"KILN_TEST_PUSH_STOP_AFTER_CHUNKS": "2"})
    assert p.returncode == 1 and "run the same command again to resume" in p.stderr
    state = json.loads((kiln.config_dir / "uploads.json").read_text())
    (uid,) = state.values()
    c = user.client()
    assert c.get(f"/api/v1/models/uploads/{uid}").json()["upload"]["received"] == 200
    p = kiln("models", "push", str(f), "--name", "cli-resume", "--chunk-size", "100")
    assert f"resuming upload {uid} at byte 200" in p.stderr
    assert "cli-resume version 1: READY" in p.stdout
    got = c.get("/api/v1/models/cli-resume/versions/1/download").content
    assert got == data


def test_push_refusals(kiln, models, tmp_path):
    p = kiln("models", "push", str(models / "evil_p4.pkl"), "--name", "cli-evil", ok=False)
    assert p.returncode == 1 and "UNSAFE_MODEL (422)" in p.stderr and "posix.system" in p.stderr
    assert "FAILED_REGISTRATION" in p.stderr
    p = kiln("models", "push", str(models / "tiny.onnx"), ok=False)
    assert p.returncode == 2 and "--name" in p.stderr
    p = kiln("models", "push", str(tmp_path / "missing.onnx"), "--name", "x", ok=False)
    assert p.returncode == 1 and "cannot open" in p.stderr
    p = kiln("models", "push", str(models / "tiny.onnx"), "--name", "x", "--tag", "novalue", ok=False)
    assert p.returncode == 2 and "KEY=VALUE" in p.stderr
    p = kiln("models", "download", "cli-evil", "1", "-o", str(tmp_path / "e.pkl"), ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr
    assert not (tmp_path / "e.pkl").exists() and not (tmp_path / "e.pkl.part").exists()

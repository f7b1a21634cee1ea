"""The SDK's model upload and download against a real `kiln server`: a
chunked, resumable upload with a progress callback, resuming a session by
its id, refusals raised with the server's code, and a ranged download that
checks the checksum."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import kiln

from test_tracking import Server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kiln-upload") / "data").start()
    srv.key = srv.api_key()  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    subprocess.run(["/usr/bin/python3", str(ROOT / "tests/unit/registry/make_models.py"), str(out)], check=True,
                   capture_output=True, timeout=120)
    return out


@pytest.fixture
def client(server: Server) -> kiln.Client:
    return kiln.Client(server.url, api_key=server.key)  # type: ignore[attr-defined]


def uniq(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def test_upload_and_download(client: kiln.Client, models: Path, tmp_path: Path) -> None:
    f = models / "tiny.onnx"
    data = f.read_bytes()
    seen: List[Tuple[int, int]] = []
    name = uniq("onnx")
    mv = client.upload_model(f, name, description="card", tags={"team": "ml"}, chunk_size=40,
                             progress=lambda done, total: seen.append((done, total)))
    assert mv["status"] == "READY" and mv["format"] == "onnx" and mv["sha256"] == hashlib.sha256(data).hexdigest()
    assert mv["prediction_url"] == f"/api/v1/models/{name}/versions/1/predict"  # served at once
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert len(seen) == 1 + -(-len(data) // 40)  # one call per chunk
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    out = tmp_path / "back.onnx"
    assert client.download_model(name, mv["version"], out, chunk_size=50) == mv["sha256"]
    assert out.read_bytes() == data
    assert client.model_version_scan(name, 1)["format"] == "onnx"


def test_resume_by_upload_id(client: kiln.Client, models: Path) -> None:
    f = models / "sk.pkl"
    data = f.read_bytes()
    name = uniq("resume")
    session = client._request_dict("POST", "/api/v1/models/uploads",
                                   json={"name": name, "size": len(data)})["upload"]
    uid = session["upload_id"]
    client._request("PUT", f"/api/v1/models/uploads/{uid}", data=data[:300],
                    headers={"Content-Range": f"bytes 0-299/{len(data)}"})
    seen: List[int] = []
    mv = client.upload_model(f, name, upload_id=uid, chunk_size=1000, progress=lambda d, t: seen.append(d))
    assert seen[0] == 300 and mv["status"] == "READY" and mv["format"] == "pickle"
    with pytest.raises(ValueError):
        other = client._request_dict("POST", "/api/v1/models/uploads", json={"name": name, "size": 5})["upload"]
        client.upload_model(f, name, upload_id=other["upload_id"])


def test_refusals_raise_the_servers_error(client: kiln.Client, models: Path, tmp_path: Path) -> None:
    name = uniq("evil")
    with pytest.raises(kiln.KilnError) as ei:
        client.upload_model(models / "evil_p2.pkl", name)
    assert ei.value.error_code == "UNSAFE_MODEL" and ei.value.status == 422
    assert "posix.system" in str(ei.value)
    assert ei.value.details["model_version"]["status"] == "FAILED_REGISTRATION"
    with pytest.raises(kiln.KilnError) as ei:
        client.download_model(name, 1, tmp_path / "x.pkl")
    assert ei.value.status == 404 and not (tmp_path / "x.pkl").exists()
    with pytest.raises(kiln.KilnError) as ei:
        client.upload_model(models / "random.bin", uniq("rand"))
    assert ei.value.error_code == "UNSUPPORTED_MEDIA_TYPE"

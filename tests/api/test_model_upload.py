"""Model upload to the registry against a real server, with real model files
made here (tests/unit/registry/make_models.py): every format lands READY with
its format; malicious pickles are refused (422 naming the global) and nothing
of them is stored; checksum mismatches, truncated and oversized uploads leave
no version and no blob; identical files are stored once; concurrent uploads;
resumable uploads (ordering, interruption, resume, abort, expiry); projects
never see each other's uploads; the per-project unsafe-pickle switch."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kiln_harness import ROOT, scaled, wait_for

UPLOAD = "/api/v1/models/upload"
SESSIONS = "/api/v1/models/uploads"
ML = "/api/2.0/mlflow/"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{file name: bytes} of the corpus make_models.py writes."""
    out = tmp_path_factory.mktemp("models")
    subprocess.run(["/usr/bin/python3", str(ROOT / "tests/unit/registry/make_models.py"), str(out)], check=True,
                   capture_output=True, timeout=scaled(120))
    return {p.name: p.read_bytes() for p in out.iterdir() if p.name != "skipped.txt"}


def need(models, name):
    # scripts/bootstrap installs every package make_models.py uses: a file
    # not made is a broken setup, reported as a failure, never a skip
    if name not in models:
        pytest.fail(f"{name} was not made by make_models.py (is its Debian python3-* package installed?)")
    return models[name]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def upload(c, name, data, filename="model.bin", expect=200, headers=None, **fields):
    r = c.post(UPLOAD, files={"file": (filename, data)}, data={"name": name, **fields}, headers=headers or {})
    assert r.status_code == expect, (r.status_code, r.text)
    return r.json()


def db_rows(srv, sql, *args):
    db = sqlite3.connect(f"file:{srv.data_dir}/kiln.db?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def blob_refcount(srv, digest):
    rows = db_rows(srv, "SELECT refcount FROM blobs WHERE sha256 = ?", digest)
    return rows[0][0] if rows else None


def blob_files(srv, digest):
    return [p for p in Path(srv.data_dir, "blobs").rglob(digest + "*")]


def upload_leftovers(srv):
    d = Path(srv.data_dir, "uploads")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def versions_of(c, name):
    r = c.get(ML + "model-versions/search", params={"filter": f"name = '{name}'"})
    assert r.status_code == 200, r.text
    return r.json().get("model_versions", [])


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def c(user):
    return user.client()


# ---- every format ---------------------------------------------------------------------------

FORMATS = [
    ("sk.pkl", "pickle", "sklearn"), ("sk_p2.pkl", "pickle", "sklearn"), ("sk.joblib", "joblib", "sklearn"),
    ("sk_zlib.joblib", "joblib", "sklearn"), ("xgb.json", "xgboost-json", "xgboost"),
    ("xgb.ubj", "xgboost-ubj", "xgboost"), ("xgb.deprecated", "xgboost-binary", "xgboost"),
    ("tiny.onnx", "onnx", "onnx"), ("ts.pt", "torchscript", "pytorch"), ("keras.h5", "keras-hdf5", "keras"),
    ("model.lgb.txt", "lightgbm-text", "lightgbm"), ("mlflow.zip", "mlflow-zip", "sklearn"),
    ("mlflow.tar.gz", "mlflow-tar", "sklearn"), ("renamed_onnx.pkl", "onnx", "onnx"),
]


@pytest.mark.parametrize("fname,fmt,framework", FORMATS, ids=[f[0] for f in FORMATS])
def test_every_format_lands_ready(server, c, models, fname, fmt, framework):
    data = need(models, fname)
    name = "m-" + fname.replace(".", "-")
    mv = upload(c, name, data, filename=fname, sha256=sha(data), description="card", tag="team=ml")["model_version"]
    assert (mv["status"], mv["format"], mv["framework"]) == ("READY", fmt, framework)
    assert mv["sha256"] == sha(data) and mv["size"] == len(data) and mv["stored"] and not mv["unsafe"]
    assert mv["version"] == "1" and mv["name"] == name
    # the formats the serving runtime runs get their prediction endpoint at once
    served = fmt in ("onnx", "xgboost-json", "xgboost-ubj", "xgboost-binary", "pickle", "joblib", "torchscript")
    assert mv["prediction_url"] == (f"/api/v1/models/{name}/versions/1/predict" if served else None)
    assert mv["source"] == "kiln-upload:" + sha(data)
    assert mv["scan"]["format"] == fmt and mv["scan"]["sha256"] == sha(data)
    # MLflow's objects stay MLflow-shaped; the registry sees the version
    got = c.get(ML + "model-versions/get", params={"name": name, "version": "1"}).json()["model_version"]
    assert got["status"] == "READY" and got["description"] == "card" and got["user_id"]
    assert {t["key"]: t["value"] for t in got["tags"]} == {"team": "ml"}
    scan = c.get(f"/api/v1/models/{name}/versions/1/scan").json()["model_version"]
    assert scan == mv
    r = c.get(f"/api/v1/models/{name}/versions/1/download")
    assert r.status_code == 200 and r.content == data and r.headers["ETag"] == f'"{sha(data)}"'
    assert "attachment" in r.headers["Content-Disposition"]
    assert blob_refcount(server, sha(data)) >= 1


def test_signature_and_ranges(c, models):
    data = need(models, "tiny.onnx")
    mv = upload(c, "sig", data)["model_version"]
    assert mv["signature"] and mv["signature"]["inputs"], mv
    r = c.get("/api/v1/models/sig/versions/1/download", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = c.get("/api/v1/models/sig/versions/1/download", headers={"Range": f"bytes={len(data) + 5}-"})
    assert r.status_code == 416 and r.json()["error_code"] == "RANGE_NOT_SATISFIABLE"


def test_raw_body_with_query_and_headers(c, models):
    data = need(models, "xgb.json")
    r = c.post(UPLOAD, params={"name": "raw", "sha256": sha(data).upper(), "tag": ["a=1", "b=2"]}, data=data)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"]["format"] == "xgboost-json"
    r = c.post(UPLOAD, data=data, headers={"X-Kiln-Model-Name": "raw", "X-Kiln-Sha256": sha(data)})
    assert r.status_code == 200 and r.json()["model_version"]["version"] == "2"
    tags = c.get(ML + "model-versions/get", params={"name": "raw", "version": "1"}).json()["model_version"]["tags"]
    assert {t["key"]: t["value"] for t in tags} == {"a": "1", "b": "2"}
    # metadata problems are refused before a byte is read
    r = c.post(UPLOAD, data=data)
    assert r.status_code == 400 and "'name'" in r.json()["message"]
    r = c.post(UPLOAD, params={"name": "raw", "sha256": "xyz"}, data=data)
    assert r.status_code == 400 and "sha256" in r.json()["message"]
    r = c.post(UPLOAD, params={"name": "raw", "tag": "novalue"}, data=data)
    assert r.status_code == 400 and "key=value" in r.json()["message"]


# ---- refusals --------------------------------------------------------------------------------

EVIL = ["evil_p0.pkl", "evil_p2.pkl", "evil_p4.pkl", "evil_p5.pkl", "evil.joblib", "evil_torch.pt", "mlflow_evil.zip"]


@pytest.mark.parametrize("fname", EVIL)
def test_malicious_pickles_fail_registration(server, c, models, fname):
    data = need(models, fname)
    name = "evil-" + fname.replace(".", "-")
    r = c.post(UPLOAD, files={"file": (fname, data)}, data={"name": name})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_code"] == "UNSAFE_MODEL" and "posix.system" in body["message"]
    mv = body["model_version"]
    assert mv["status"] == "FAILED_REGISTRATION" and "posix.system" in mv["status_message"]
    assert not mv["stored"]
    assert any(g["name"] == "posix.system" and not g["allowed"] for g in mv["scan"]["globals"])
    got = c.get(ML + "model-versions/get", params={"name": name, "version": "1"}).json()["model_version"]
    assert got["status"] == "FAILED_REGISTRATION" and "posix.system" in got["status_message"]
    # nothing of it is stored, nothing can be fetched
    assert blob_refcount(server, sha(data)) is None and not blob_files(server, sha(data))
    r = c.get(f"/api/v1/models/{name}/versions/1/download")
    assert r.status_code == 404 and "failed registration" in r.json()["message"]
    assert upload_leftovers(server) == [] or all(not n.startswith("direct-") for n in upload_leftovers(server))


@pytest.mark.parametrize("fname,status,code", [("random.bin", 415, "UNSUPPORTED_MEDIA_TYPE"),
                                               ("state_dict.pt", 415, "UNSUPPORTED_MEDIA_TYPE"),
                                               ("slip.zip", 422, "UNSAFE_MODEL"),
                                               ("bomb.zip", 422, "UNSAFE_MODEL"),
                                               ("truncated.onnx", 400, "INVALID_PARAMETER_VALUE")])
def test_unknown_or_broken_files(server, c, models, fname, status, code):
    data = need(models, fname)
    r = c.post(UPLOAD, params={"name": "odd"}, data=data)
    assert r.status_code == status and r.json()["error_code"] == code, r.text
    assert r.json()["model_version"]["status"] == "FAILED_REGISTRATION"
    assert blob_refcount(server, sha(data)) is None


def test_checksum_mismatch_leaves_nothing(server, c, models):
    data = need(models, "tiny.onnx") + b"\0"  # bytes no other test stores
    r = c.post(UPLOAD, files={"file": ("m.onnx", data)}, data={"name": "cks", "sha256": "0" * 64})
    assert r.status_code == 400 and "checksum mismatch" in r.json()["message"], r.text
    assert sha(data) in r.json()["message"]
    r = c.get(ML + "registered-models/get", params={"name": "cks"})
    assert r.status_code == 404  # not even the model
    assert blob_refcount(server, sha(data)) is None and not blob_files(server, sha(data))


def test_truncated_multipart_leaves_nothing(server, c, models):
    data = need(models, "sk.pkl")
    b = "kilnboundary"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ntrunc\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.pkl\"\r\n\r\n").encode()
    body += data[: len(data) // 2]  # the client stopped: no closing boundary
    r = c.post(UPLOAD, data=body, headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    assert r.status_code == 400 and "closing boundary" in r.json()["message"], r.text
    assert c.get(ML + "registered-models/get", params={"name": "trunc"}).status_code == 404
    assert blob_refcount(server, sha(data[: len(data) // 2])) is None
    # a form without a file part
    r = c.post(UPLOAD, files={"name": (None, "nofile")})
    assert r.status_code == 400 and "no file part" in r.json()["message"]


def test_connection_lost_mid_upload_leaves_nothing(server, user, models):
    data = need(models, "sk.joblib")
    u = urlsplit(server.url)
    head = (f"POST {UPLOAD}?name=lost HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {user.access_token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection((u.hostname, u.port), timeout=scaled(10)) as s:
        s.sendall(head + data[:100])
    c = user.client()
    wait_for(lambda: not [n for n in upload_leftovers(server) if n.startswith("direct-")], scaled(5),
             what="the temp file to go")
    assert c.get(ML + "registered-models/get", params={"name": "lost"}).status_code == 404


def test_oversized_uploads_refused(make_server, models):
    srv = make_server(args=["--max-model-size", "64k"])
    c = srv.client(token=srv.admin_token())
    data = os.urandom(100 << 10)
    r = c.post(UPLOAD, params={"name": "big"}, data=data)
    assert r.status_code == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE" and "65536" in r.json()["message"]
    r = c.post(UPLOAD, files={"file": ("x.bin", data)}, data={"name": "big"})
    assert r.status_code == 413, r.text

    # chunked transfer: no length up front, refused once past the limit
    def gen():
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]
    r = c.post(UPLOAD, params={"name": "big"}, data=gen())
    assert r.status_code == 413, r.text
    r = c.post(SESSIONS, json={"name": "big", "size": len(data)})
    assert r.status_code == 413, r.text
    assert c.get(ML + "registered-models/get", params={"name": "big"}).status_code == 404
    assert db_rows(srv, "SELECT COUNT(*) FROM blobs")[0][0] == 0
    assert db_rows(srv, "SELECT COUNT(*) FROM model_version_files")[0][0] == 0
    wait_for(lambda: upload_leftovers(srv) == [], scaled(5), what="no temp files")
    # under the limit it works
    small = need(models, "tiny.onnx")
    assert upload(c, "small", small)["model_version"]["status"] == "READY"


def test_same_file_twice_stored_once(server, c, models):
    data = need(models, "xgb.ubj") + b""  # the same bytes as other tests may upload
    a = upload(c, "twice", data)["model_version"]
    before = blob_refcount(server, sha(data))
    b = upload(c, "twice", data)["model_version"]
    assert (a["version"], b["version"]) == ("1", "2") and a["sha256"] == b["sha256"]
    assert blob_refcount(server, sha(data)) == before + 1
    assert len(blob_files(server, sha(data))) == 1
    # deleting a version gives its reference back
    r = c.request("DELETE", ML + "model-versions/delete", json={"name": "twice", "version": "2"})
    assert r.status_code == 200, r.text
    assert blob_refcount(server, sha(data)) == before
    r = c.request("DELETE", ML + "registered-models/delete", json={"name": "twice"})
    assert r.status_code == 200
    assert blob_refcount(server, sha(data)) == before - 1


def test_concurrent_uploads(user, models):
    files = [need(models, n) for n in ("sk.pkl", "tiny.onnx", "xgb.json", "sk.joblib")] * 3

    def one(data):
        return upload(user.client(), "conc", data)["model_version"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
        got = list(ex.map(one, files))
    assert sorted(int(v["version"]) for v in got) == list(range(1, len(files) + 1))
    assert all(v["status"] == "READY" for v in got)
    for v, data in zip(got, files):
        assert v["sha256"] == sha(data)


def test_mlflow_api_cannot_claim_uploaded_bytes(c, models):
    data = need(models, "tiny.onnx")
    upload(c, "claim", data)
    r = c.post(ML + "model-versions/create", json={"name": "claim", "source": "kiln-upload:" + sha(data)})
    assert r.status_code == 400 and "uploads" in r.json()["message"]
    # a version not made by an upload has no scan report
    run = c.post(ML + "runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    c.post(ML + "model-versions/create", json={"name": "claim", "source": run["artifact_uri"] + "/m",
                                              "run_id": run["run_id"]})
    r = c.get("/api/v1/models/claim/versions/2/scan")
    assert r.status_code == 404 and "uploaded file" in r.json()["message"]


# ---- resumable uploads --------------------------------------------------------------------------


def put_chunk(c, uid, data, first, total):
    return c.put(f"{SESSIONS}/{uid}", data=data,
                 headers={"Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}"})


def test_resumable_upload_in_order(server, c, models):
    data = need(models, "ts.pt")
    n = len(data)
    r = c.post(SESSIONS, json={"name": "resum", "size": n, "sha256": sha(data), "description": "d",
                               "tags": [{"key": "k", "value": "v"}]})
    assert r.status_code == 200, r.text
    s = r.json()["upload"]
    uid = s["upload_id"]
    assert s["received"] == 0 and s["size"] == n and s["expires_at"] > s["created_at"]
    third = n // 3
    assert put_chunk(c, uid, data[:third], 0, n).json()["upload"]["received"] == third
    # overlapping and out-of-order chunks are refused, saying where to resume
    r = put_chunk(c, uid, data[:third], 0, n)
    assert r.status_code == 409 and f"starts at {third}" in r.json()["message"]
    r = put_chunk(c, uid, data[2 * third:], 2 * third, n)
    assert r.status_code == 409
    r = put_chunk(c, uid, data[third:2 * third], third, n + 1)
    assert r.status_code == 400 and "created for" in r.json()["message"]
    # completing early is refused
    r = c.post(f"{SESSIONS}/{uid}/complete")
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_STATE"
    assert c.get(f"{SESSIONS}/{uid}").json()["upload"]["received"] == third
    r = c.put(f"{SESSIONS}/{uid}", params={"offset": third}, data=data[third:])
    assert r.status_code == 200 and r.json()["upload"]["received"] == n
    r = c.post(f"{SESSIONS}/{uid}/complete")
    assert r.status_code == 200, r.text
    mv = r.json()["model_version"]
    assert (mv["status"], mv["format"], mv["sha256"]) == ("READY", "torchscript", sha(data))
    got = c.get(ML + "model-versions/get", params={"name": "resum", "version": "1"}).json()["model_version"]
    assert got["description"] == "d" and got["tags"] == [{"key": "k", "value": "v"}]
    assert c.get(f"/api/v1/models/resum/versions/1/download").content == data
    # the session is over
    assert c.get(f"{SESSIONS}/{uid}").status_code == 404
    assert not any(n.startswith(uid) for n in upload_leftovers(server))


def test_resumable_upload_interrupted_and_resumed(server, user, models):
    data = need(models, "sk_xz.joblib") if "sk_xz.joblib" in models else need(models, "sk.joblib")
    n = len(data)
    c = user.client()
    uid = c.post(SESSIONS, json={"name": "intr", "size": n}).json()["upload"]["upload_id"]
    half = n // 2
    assert put_chunk(c, uid, data[:half], 0, n).status_code == 200
    # the connection drops part way through the next chunk
    u = urlsplit(server.url)
    head = (f"PUT {SESSIONS}/{uid} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {user.access_token}\r\n"
            f"Content-Range: bytes {half}-{n - 1}/{n}\r\nContent-Length: {n - half}\r\n\r\n").encode()
    with socket.create_connection((u.hostname, u.port), timeout=scaled(10)) as s:
        s.sendall(head + data[half:half + 10])
    part = Path(server.data_dir, "uploads", uid + ".part")
    wait_for(lambda: part.stat().st_size == half, scaled(5), what="the partial chunk to be cut back")
    assert c.get(f"{SESSIONS}/{uid}").json()["upload"]["received"] == half
    assert put_chunk(c, uid, data[half:], half, n).status_code == 200
    mv = c.post(f"{SESSIONS}/{uid}/complete").json()["model_version"]
    assert mv["status"] == "READY" and mv["sha256"] == sha(data)


def test_resumable_mismatch_abort_and_limits(server, c, models):
    data = need(models, "tiny.onnx")
    n = len(data)
    uid = c.post(SESSIONS, json={"name": "bad", "size": n, "sha256": "1" * 64}).json()["upload"]["upload_id"]
    assert put_chunk(c, uid, data, 0, n).status_code == 200
    r = c.post(f"{SESSIONS}/{uid}/complete")
    assert r.status_code == 400 and "checksum mismatch" in r.json()["message"]
    assert c.get(f"{SESSIONS}/{uid}").status_code == 404  # the session ended
    assert c.get(ML + "registered-models/get", params={"name": "bad"}).status_code == 404
    # too many bytes for the session, a chunk without a position
    uid = c.post(SESSIONS, json={"name": "bad", "size": 10}).json()["upload"]["upload_id"]
    r = c.put(f"{SESSIONS}/{uid}", params={"offset": 0}, data=b"x" * 11)
    assert r.status_code == 400 and "runs past" in r.json()["message"]
    r = c.put(f"{SESSIONS}/{uid}", data=b"x")
    assert r.status_code == 400 and "Content-Range" in r.json()["message"]
    r = c.put(f"{SESSIONS}/{uid}", data=b"x", headers={"Content-Range": "bytes=0-0"})
    assert r.status_code == 400
    assert c.put(f"{SESSIONS}/{uid}", params={"offset": 0}, data=b"x" * 4).json()["upload"]["received"] == 4
    # abort drops the bytes
    assert c.delete(f"{SESSIONS}/{uid}").status_code == 200
    assert c.get(f"{SESSIONS}/{uid}").status_code == 404
    assert not (Path(server.data_dir, "uploads") / (uid + ".part")).exists()
    for bad in ({"name": "x"}, {"name": "x", "size": 0}, {"size": 5}, {"name": "x", "size": 5, "sha256": "zz"}):
        r = c.post(SESSIONS, json=bad)
        assert r.status_code == 400, (bad, r.text)
    assert c.get(f"{SESSIONS}/{'0' * 32}").status_code == 404
    assert c.get(f"{SESSIONS}/not-an-id").status_code == 404


def test_sessions_expire_with_their_bytes(make_server):
    srv = make_server(args=["--upload-session-ttl", "1"])
    c = srv.client(token=srv.admin_token())
    uid = c.post(SESSIONS, json={"name": "exp", "size": 100}).json()["upload"]["upload_id"]
    assert c.put(f"{SESSIONS}/{uid}", params={"offset": 0}, data=b"y" * 50).status_code == 200
    part = Path(srv.data_dir, "uploads", uid + ".part")
    assert part.exists()
    time.sleep(1.2)
    assert c.get(f"{SESSIONS}/{uid}").status_code == 404
    c.post(SESSIONS, json={"name": "exp", "size": 100})  # creating sessions sweeps expired ones
    assert not part.exists()
    assert db_rows(srv, "SELECT COUNT(*) FROM model_upload_sessions WHERE id = ?", uid)[0][0] == 0
    assert db_rows(srv, "SELECT COUNT(*) FROM blobs")[0][0] == 0


# ---- tenancy and settings -------------------------------------------------------------------------


def test_projects_never_see_each_others_uploads(make_user, models):
    a, b = make_user(), make_user()
    ca, cb = a.client(), b.client()
    data = need(models, "tiny.onnx")
    upload(ca, "shared-name", data)
    uid = ca.post(SESSIONS, json={"name": "s", "size": 10}).json()["upload"]["upload_id"]
    for path in ("/api/v1/models/shared-name/versions/1/scan", "/api/v1/models/shared-name/versions/1/download",
                 f"{SESSIONS}/{uid}"):
        r = cb.get(path)
        assert r.status_code == 404, (path, r.text)
    assert cb.put(f"{SESSIONS}/{uid}", params={"offset": 0}, data=b"z").status_code == 404
    assert cb.post(f"{SESSIONS}/{uid}/complete").status_code == 404
    assert cb.delete(f"{SESSIONS}/{uid}").status_code == 404
    # the same name in B's project is B's own model
    assert upload(cb, "shared-name", data)["model_version"]["version"] == "1"
    # naming A's project explicitly does not help B
    pa = ca.get("/api/v1/auth/whoami").json()["user"]["default_project_id"]
    r = cb.get("/api/v1/models/shared-name/versions/1/scan", headers={"X-Kiln-Project": pa})
    assert r.status_code == 404
    r = cb.get(f"/api/v1/projects/{pa}/registry-settings")
    assert r.status_code == 404


def test_unsafe_pickle_project_setting(server, make_user, admin_client, models):
    data = need(models, "evil_p2.pkl")
    owner = make_user()
    c = owner.client()
    pid = c.get("/api/v1/auth/whoami").json()["user"]["default_project_id"]
    s = c.get(f"/api/v1/projects/{pid}/registry-settings").json()["settings"]
    assert s == {"project_id": pid, "allow_unsafe_pickles": False}
    assert upload(c, "evil", data, expect=422)["error_code"] == "UNSAFE_MODEL"
    # a key without the admin scope cannot flip it
    key = c.post("/api/v1/api-keys", json={"name": "rw", "scopes": ["read", "write"]}).json()["key"]
    ck = owner.server.client(token=key)
    r = ck.put(f"/api/v1/projects/{pid}/registry-settings", json={"allow_unsafe_pickles": True})
    assert r.status_code == 403, r.text
    r = c.put(f"/api/v1/projects/{pid}/registry-settings", json={"allow_unsafe_pickles": "yes"})
    assert r.status_code == 400
    r = c.put(f"/api/v1/projects/{pid}/registry-settings", json={"allow_unsafe_pickles": True})
    assert r.status_code == 200, r.text
    s = r.json()["settings"]
    assert s["allow_unsafe_pickles"] is True and s["updated_by"] == owner.id
    mv = upload(c, "evil", data)["model_version"]
    assert mv["status"] == "READY" and mv["unsafe"] is True and mv["scan"]["unsafe"] is True
    assert any(g["name"] == "posix.system" and not g["allowed"] for g in mv["scan"]["globals"])
    # audited
    entries = admin_client.get("/api/v1/audit", params={"action": "registry.settings_update"}).json()["entries"]
    mine = [e for e in entries if e.get("target") == pid]
    assert mine and mine[0]["actor"] == owner.id and "allow_unsafe_pickles" in mine[0].get("detail", "")
    # another project is unaffected
    other = make_user().client()
    assert upload(other, "evil", data, expect=422)["model_version"]["status"] == "FAILED_REGISTRATION"
    c.put(f"/api/v1/projects/{pid}/registry-settings", json={"allow_unsafe_pickles": False})
    assert upload(c, "evil", data, expect=422)["error_code"] == "UNSAFE_MODEL"


def _offloaded(server) -> float:
    for line in server.client().get("/metrics").text.splitlines():
        if line.startswith("kiln_http_offloaded_total"):
            return float(line.split()[-1])
    raise AssertionError("kiln_http_offloaded_total is not exported")


def test_checking_a_file_runs_off_the_io_threads(server, c, models):
    """Uploads and session completes are checked on the worker pool (the
    connection is suspended meanwhile), counted in
    kiln_http_offloaded_total; other requests are answered meanwhile and the
    answers are the same as ever."""
    data = need(models, "ts.pt")
    before = _offloaded(server)
    mv = upload(c, "offload-one", data, filename="x.bin", sha256=sha(data))["model_version"]
    assert (mv["status"], mv["format"]) == ("READY", "torchscript")
    assert _offloaded(server) == before + 1
    r = c.post(SESSIONS, json={"name": "offload-two", "size": len(data)})
    uid = r.json()["upload"]["upload_id"]
    assert put_chunk(c, uid, data, 0, len(data)).json()["upload"]["received"] == len(data)
    r = c.post(f"{SESSIONS}/{uid}/complete")
    assert r.status_code == 200 and r.json()["model_version"]["status"] == "READY", r.text
    assert _offloaded(server) == before + 2
    # errors from the pool keep their JSON shape and stable codes
    r = c.post(f"{SESSIONS}/{'0' * 32}/complete")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert _offloaded(server) == before + 3


def test_a_signature_for_a_file_that_declares_none(server, c, models, make_user):
    """A pickle carries no signature: the user gives one in MLflow's JSON
    (the MLmodel string form or plain lists), once; a file that declares
    its own (ONNX) keeps it; bad shapes are 400s."""
    pkl = [f for f in models if f.endswith(".pkl") and f.startswith(("sklearn", "sk"))]
    assert pkl, sorted(models)
    data = models[pkl[0]]
    name = "sig-pkl"
    mv = upload(c, name, data, filename="m.bin")["model_version"]
    assert mv["status"] == "READY" and mv["signature"] is None, mv
    path = f"/api/v1/models/{name}/versions/1/signature"
    sig = {"inputs": '[{"name": "age", "type": "double"}, {"name": "plan", "type": "string"}]',
           "outputs": [{"type": "long"}]}
    r = c.put(path, json={"signature": sig})
    assert r.status_code == 200, r.text
    got = r.json()["model_version"]["signature"]
    assert got == {"inputs": [{"name": "age", "type": "double"}, {"name": "plan", "type": "string"}],
                   "outputs": [{"type": "long"}], "given_by": "user"}
    assert c.get(f"/api/v1/models/{name}/versions/1/scan").json()["model_version"]["signature"] == got
    # never changes afterwards
    r = c.put(path, json={"signature": {"inputs": [{"type": "double"}]}})
    assert r.status_code == 409 and r.json()["error_code"] == "CONFLICT"
    # a file with its own signature keeps it
    onnx = need(models, "tiny.onnx")
    mo = upload(c, "sig-onnx", onnx, filename="m.onnx")["model_version"]
    assert mo["signature"] is not None
    r = c.put("/api/v1/models/sig-onnx/versions/1/signature", json={"signature": {"inputs": [{"type": "float"}]}})
    assert r.status_code == 409
    # bad shapes, unknown versions, versions not uploaded
    mv2 = upload(c, name, data, filename="m.bin")["model_version"]
    assert mv2["version"] == "2"
    p2 = f"/api/v1/models/{name}/versions/2/signature"
    for bad in ({}, {"outputs": []}, {"inputs": "not json"}, {"inputs": [{"name": "x"}]}, {"inputs": [1]},
                {"inputs": [], "extra": []}, {"inputs": '{"type": "double"}'}):
        r = c.put(p2, json={"signature": bad})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", (bad, r.text)
    r = c.put(p2, json={"signature": "x"})
    assert r.status_code == 400
    r = c.put(f"/api/v1/models/{name}/versions/9/signature", json={"signature": {"inputs": []}})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # another user (their own project) sees nothing
    r = make_user().client().put(p2, json={"signature": {"inputs": []}})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

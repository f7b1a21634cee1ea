"""The artifact proxy: MLflow's mlflow-artifacts service (streamed PUT,
ranged GET, list, delete, multipart upload) and the tracking API's
artifacts/list, against real servers — byte-identical round trips, bounded
server memory during a 200 MB upload, Range answers, deduplication, path
safety, tenancy, refusal before the body is read, the size limit, and
`kiln admin gc` reclaiming bytes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import requests

from kiln_harness import check_raw_error, raw_http, run_kiln

ART = "/api/2.0/mlflow-artifacts/artifacts"
ML = "/api/2.0/mlflow"


def err(r, status, code, fragment=None):
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error_code"] == code, r.text
    if fragment is not None:
        assert fragment in body["message"], body["message"]
    return body


def new_run(c, name=None, headers=None):
    """(experiment_id, run_id, artifact root path) in the caller's project."""
    name = name or "art-" + os.urandom(4).hex()
    r = c.post(ML + "/experiments/create", json={"name": name}, headers=headers)
    assert r.status_code == 200, r.text
    eid = r.json()["experiment_id"]
    r = c.post(ML + "/runs/create", json={"experiment_id": eid}, headers=headers)
    assert r.status_code == 200, r.text
    info = r.json()["run"]["info"]
    return eid, info["run_id"], f"{eid}/{info['run_id']}/artifacts"


def chunks(data, size=256 * 1024):
    """A generator body: requests sends it with Transfer-Encoding: chunked."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def blob_objects(data_dir: Path):
    return sorted(p.name for p in (Path(data_dir) / "blobs").glob("??/??/*") if len(p.name) == 64)


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_artifact_uris_follow_mlflow_layout(make_user):
    c = make_user().client()
    eid, rid, root = new_run(c)
    exp = c.get(ML + "/experiments/get", params={"experiment_id": eid}).json()["experiment"]
    assert exp["artifact_location"] == f"mlflow-artifacts:/{eid}"
    run = c.get(ML + "/runs/get", params={"run_id": rid}).json()["run"]
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/{root}"


def test_streamed_upload_download_and_ranges(make_user, server):
    c = make_user().client()
    eid, rid, root = new_run(c)
    data = os.urandom(6 * 1024 * 1024 + 123)
    url = f"{ART}/{root}/model/weights.bin"
    r = c.put(url, data=chunks(data))
    assert r.status_code == 200, r.text
    assert r.json() == {}
    sha = hashlib.sha256(data).hexdigest()
    assert r.headers["ETag"] == f'"{sha}"'

    r = c.get(url)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["ETag"] == f'"{sha}"'
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"

    n = len(data)
    for rng, first, last in [("bytes=0-99", 0, 99), ("bytes=1048576-3145727", 1048576, 3145727),
                             ("bytes=-1000", n - 1000, n - 1), (f"bytes={n - 10}-", n - 10, n - 1),
                             ("bytes=5-99999999999", 5, n - 1), ("bytes=-99999999999", 0, n - 1)]:
        r = c.get(url, headers={"Range": rng})
        assert r.status_code == 206, (rng, r.status_code)
        assert r.content == data[first:last + 1], rng
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{n}", rng
        assert r.headers["Content-Length"] == str(last - first + 1)
    for rng in [f"bytes={n}-", f"bytes={n + 5}-{n + 10}", "bytes=-0"]:
        r = c.get(url, headers={"Range": rng})
        err(r, 416, "RANGE_NOT_SATISFIABLE")
        assert r.headers["Content-Range"] == f"bytes */{n}"
    # ranges this server does not do are ignored: the whole file (RFC 9110)
    for rng in ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc"]:
        r = c.get(url, headers={"Range": rng})
        assert r.status_code == 200 and len(r.content) == n, rng
    # streamed download read piecewise
    r = c.get(url, stream=True)
    h = hashlib.sha256()
    for piece in r.iter_content(65536):
        h.update(piece)
    c.check(r, read_body=False)
    assert h.hexdigest() == sha
    # HEAD answers the headers only
    r = requests.head(server.url + url, headers={"Authorization": c.headers["Authorization"]})
    assert r.status_code == 200 and r.headers["Content-Length"] == str(n) and not r.content

    # replacing a file; an empty file
    r = c.put(url, data=b"small")
    assert r.status_code == 200
    assert c.get(url).content == b"small"
    assert c.put(f"{ART}/{root}/empty.txt", data=b"").status_code == 200
    r = c.get(f"{ART}/{root}/empty.txt")
    assert r.status_code == 200 and r.content == b""
    err(c.get(f"{ART}/{root}/empty.txt", headers={"Range": "bytes=0-"}), 416, "RANGE_NOT_SATISFIABLE")
    err(c.get(f"{ART}/{root}/missing.txt"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_identical_uploads_stored_once(make_user, server):
    c = make_user().client()
    _, _, root = new_run(c)
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    before = blob_objects(server.data_dir)
    assert c.put(f"{ART}/{root}/a.bin", data=data).status_code == 200
    mid = blob_objects(server.data_dir)
    assert sha in mid and len(mid) == len(before) + 1
    _, _, root2 = new_run(c)
    assert c.put(f"{ART}/{root}/copy/a.bin", data=data).status_code == 200
    assert c.put(f"{ART}/{root2}/a.bin", data=chunks(data, 7777)).status_code == 200
    assert blob_objects(server.data_dir) == mid
    assert c.get(f"{ART}/{root2}/a.bin").content == data


def test_list_and_delete(make_user):
    c = make_user().client()
    eid, rid, root = new_run(c)
    files = {"MLmodel": b"flavors: {}\n", "model/weights.bin": os.urandom(1000),
             "model/conf/params.json": b"{}", "plots/loss.png": b"\x89PNG" + os.urandom(50),
             "notes.txt": b"hello"}
    for p, d in files.items():
        assert c.put(f"{ART}/{root}/{p}", data=d).status_code == 200

    def listing(path=None):
        r = c.get(ART, params={} if path is None else {"path": path})
        assert r.status_code == 200, r.text
        return {f["path"]: (f["is_dir"], f.get("file_size")) for f in r.json().get("files", [])}

    assert listing(root) == {"MLmodel": (False, 12), "model": (True, None), "plots": (True, None),
                             "notes.txt": (False, 5)}
    assert listing(root + "/") == listing(root)
    assert listing(f"{root}/model") == {"weights.bin": (False, 1000), "conf": (True, None)}
    assert listing(f"{eid}/{rid}") == {"artifacts": (True, None)}
    assert listing(eid) == {rid: (True, None)}
    assert eid in listing("")
    assert listing(f"{root}/notes.txt") == {}  # a file lists nothing, as MLflow
    assert listing(f"{root}/nothing-here") == {}

    # the tracking API's list: paths relative to the run's root, root_uri
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        r = c.get(prefix + "/artifacts/list", params={"run_id": rid})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["root_uri"] == f"mlflow-artifacts:/{root}"
        assert {f["path"] for f in body["files"]} == {"MLmodel", "model", "plots", "notes.txt"}
    body = c.get(ML + "/artifacts/list", params={"run_uuid": rid, "path": "model/conf"}).json()
    assert body["files"] == [{"path": "model/conf/params.json", "is_dir": False, "file_size": 2}]
    assert "files" not in c.get(ML + "/artifacts/list", params={"run_id": rid, "path": "zzz"}).json()
    err(c.get(ML + "/artifacts/list", params={"run_id": "f" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(c.get(ML + "/artifacts/list", params={}), 400, "INVALID_PARAMETER_VALUE")
    err(c.get(ML + "/artifacts/list", params={"run_id": rid, "path": "../x"}), 400, "INVALID_PARAMETER_VALUE")

    # a file cannot become a directory, nor a directory a file
    err(c.put(f"{ART}/{root}/notes.txt/inner", data=b"x"), 400, "INVALID_PARAMETER_VALUE", "is a file")
    err(c.put(f"{ART}/{root}/model", data=b"x"), 400, "INVALID_PARAMETER_VALUE", "is a directory")
    # experiment roots and unknown runs
    err(c.put(f"{ART}/{eid}", data=b"x"), 400, "INVALID_PARAMETER_VALUE")
    err(c.put(f"{ART}/{eid}/{'a' * 32}/artifacts/x", data=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(c.put(f"{ART}/999999999/x", data=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")

    # delete a file, then a directory
    r = c.delete(f"{ART}/{root}/notes.txt")
    assert r.status_code == 200 and r.json() == {}
    err(c.get(f"{ART}/{root}/notes.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(c.delete(f"{ART}/{root}/notes.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert c.delete(f"{ART}/{root}/model").status_code == 200
    assert listing(root) == {"MLmodel": (False, 12), "plots": (True, None)}
    err(c.get(f"{ART}/{root}/model/conf/params.json"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_path_traversal_and_bad_paths_refused(make_user, server):
    u = make_user()
    c = u.client()
    _, _, root = new_run(c)
    assert c.put(f"{ART}/{root}/ok.txt", data=b"ok").status_code == 200
    auth = f"Authorization: Bearer {u.access_token}\r\n".encode()
    bad = [f"{root}/../../x", f"{root}/%2e%2e/x", f"{root}/a/./b", f"{root}//x", f"{root}/a%5Cb",
           f"{root}/a%01b", f"{root}/a%7Fb", f"{root}/%ff", f"{root}/x/", f"{root}/" + "a" * 1100,
           f"{root}/..", f"{root}/a%2F..%2F..%2Fb"]
    for p in bad:
        for method, body in (("PUT", b"data"), ("GET", b""), ("DELETE", b"")):
            req = (f"{method} {ART}/{p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   f"Content-Length: {len(body)}\r\n").encode() + auth + b"\r\n" + body
            r = raw_http(server.url, req)
            assert r.status == 400, (method, p, r.status, r.body[:200])
            assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            check_raw_error(server.spec(), f"{ART}/{p}", r)
    # absolute paths: a leading slash after the prefix
    r = raw_http(server.url, (f"GET {ART}//etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").encode()
                 + auth + b"\r\n")
    assert r.status in (400, 404), r.status
    for p in ("../x", "/abs", "a//b", "a\\b"):
        err(c.get(ART, params={"path": p}), 400, "INVALID_PARAMETER_VALUE")
    # nothing of that was stored
    files = c.get(ART, params={"path": root}).json()["files"]
    assert [f["path"] for f in files] == ["ok.txt"]


def test_other_projects_artifacts_answer_404(make_user, server):
    a, b = make_user(), make_user()
    ca, cb = a.client(), b.client()
    eid, rid, root = new_run(ca)
    assert ca.put(f"{ART}/{root}/secret.txt", data=b"secret").status_code == 200
    for r in (cb.get(f"{ART}/{root}/secret.txt"), cb.put(f"{ART}/{root}/secret.txt", data=b"mine"),
              cb.put(f"{ART}/{root}/new.txt", data=b"x"), cb.delete(f"{ART}/{root}/secret.txt"),
              cb.get(ART, params={"path": root}), cb.get(ML + "/artifacts/list", params={"run_id": rid})):
        err(r, 404, "RESOURCE_DOES_NOT_EXIST")
    assert eid not in [f["path"] for f in cb.get(ART, params={"path": ""}).json().get("files", [])]
    # a's file is untouched; b's own run in its own project cannot reach a's
    # experiment by naming it
    _, rid_b, _ = new_run(cb)
    err(cb.put(f"{ART}/{eid}/{rid_b}/artifacts/x", data=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert ca.get(f"{ART}/{root}/secret.txt").content == b"secret"
    # a read-only key reads but does not write
    key = ca.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["read"]}).json()["key"]
    ro = server.client(token=key)
    assert ro.get(f"{ART}/{root}/secret.txt").content == b"secret"
    err(ro.put(f"{ART}/{root}/secret.txt", data=b"x"), 403, "PERMISSION_DENIED")
    err(ro.delete(f"{ART}/{root}/secret.txt"), 403, "PERMISSION_DENIED")


def test_unauthorized_upload_refused_before_the_body(make_user, server):
    u = make_user()
    c = u.client()
    _, _, root = new_run(c)
    before = blob_objects(server.data_dir)
    # the client waits for 100-continue: the answer comes without the body
    # ever being sent
    for auth in (b"", b"Authorization: Bearer not-a-token\r\n"):
        req = (f"PUT {ART}/{root}/up.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n"
               f"Expect: 100-continue\r\nConnection: close\r\n").encode() + auth + b"\r\n"
        r = raw_http(server.url, req)
        assert r.status == 401, (r.status, r.body)
        assert b"100 Continue" not in r.head
        assert r.json()["error_code"] == "UNAUTHENTICATED"
        check_raw_error(server.spec(), f"{ART}/{root}/up.bin", r)
    # a client that sends the body anyway gets the 401, and nothing is kept
    anon = server.client()
    err(anon.put(f"{ART}/{root}/up.bin", data=os.urandom(200_000)), 401, "UNAUTHENTICATED")
    err(anon.put(f"{ART}/{root}/up.bin", data=chunks(os.urandom(200_000))), 401, "UNAUTHENTICATED")
    assert blob_objects(server.data_dir) == before
    assert "files" not in c.get(ART, params={"path": root}).json()


def test_size_limit_413(make_server):
    srv = make_server(args=["--max-artifact-size", "1m"])
    c = srv.admin_client()
    _, _, root = new_run(c)
    token = c.headers["Authorization"]
    req = (f"PUT {ART}/{root}/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {(1 << 20) + 1}\r\n"
           f"Expect: 100-continue\r\nConnection: close\r\nAuthorization: {token}\r\n\r\n").encode()
    r = raw_http(srv.url, req)
    assert r.status == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    err(c.put(f"{ART}/{root}/big.bin", data=os.urandom((1 << 20) + 1)), 413, "PAYLOAD_TOO_LARGE")
    # chunked: the limit is found mid-stream; the upload is dropped
    err(c.put(f"{ART}/{root}/big.bin", data=chunks(os.urandom(3 << 20))), 413, "PAYLOAD_TOO_LARGE")
    assert blob_objects(srv.data_dir) == []
    assert c.put(f"{ART}/{root}/ok.bin", data=os.urandom(1 << 20)).status_code == 200
    err(c.get(f"{ART}/{root}/big.bin"), 404, "RESOURCE_DOES_NOT_EXIST")
    # other bodies keep their own limit (--max-body)
    assert c.post(ML + "/experiments/create", json={"name": "n"}).status_code == 200


def test_200mb_upload_does_not_grow_server_memory(make_server):
    srv = make_server(args=["--access-log", "false"])
    c = srv.admin_client()
    _, _, root = new_run(c)
    url = srv.url + f"{ART}/{root}/big.bin"
    s = requests.Session()
    s.headers["Authorization"] = c.headers["Authorization"]
    # warm up (thread stacks, statement caches, the codec's buffers)
    assert s.put(url.replace("big.bin", "warm.bin"), data=os.urandom(4 << 20)).status_code == 200
    before = vm_hwm_kb(srv.pid)
    size = 200 << 20
    block = os.urandom(1 << 20)
    h = hashlib.sha256()

    def body():
        for i in range(size // len(block)):
            piece = block[:-8] + i.to_bytes(8, "little")  # no two blocks alike
            h.update(piece)
            yield piece

    r = s.put(url, data=body())
    assert r.status_code == 200, r.text
    grown = vm_hwm_kb(srv.pid) - before
    assert grown < 40 * 1024, f"peak RSS grew by {grown} KiB during a 200 MiB upload"
    assert r.headers["ETag"] == f'"{h.hexdigest()}"'
    # the download streams too
    r = s.get(url, stream=True)
    d = hashlib.sha256()
    n = 0
    for piece in r.iter_content(1 << 20):
        d.update(piece)
        n += len(piece)
    assert n == size and d.hexdigest() == h.hexdigest()
    grown = vm_hwm_kb(srv.pid) - before
    assert grown < 40 * 1024, f"peak RSS grew by {grown} KiB after a 200 MiB download"


def test_multipart_upload(make_user, server):
    c = make_user().client()
    _, _, root = new_run(c)
    parts = [os.urandom(700_000), os.urandom(700_000), b"tail"]
    r = c.post(f"/api/2.0/mlflow-artifacts/mpu/create/{root}/big/model.bin",
               json={"path": f"{root}/big/model.bin", "num_parts": 3})
    assert r.status_code == 200, r.text
    up = r.json()
    assert [cr["part_number"] for cr in up["credentials"]] == [1, 2, 3]
    etags = []
    for cred, data in zip(up["credentials"], parts):
        assert cred["url"].startswith("http") and up["upload_id"] in cred["url"]
        # as MLflow's client does: a plain PUT to the URL, no credentials
        pr = server.client().put(cred["url"].replace(server.url, ""), data=data, headers=cred["headers"])
        assert pr.status_code == 200, pr.text
        etags.append(pr.headers["ETag"])
    err(server.client().put(f"/api/2.0/mlflow-artifacts/mpu/parts/{'0' * 64}/1", data=b"x"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(server.client().put(f"/api/2.0/mlflow-artifacts/mpu/parts/{up['upload_id']}/4", data=b"x"), 400,
        "INVALID_PARAMETER_VALUE")
    bad = [{"part_number": 1, "etag": '"' + "0" * 64 + '"'}]
    err(c.post(f"/api/2.0/mlflow-artifacts/mpu/complete/{root}/big/model.bin",
               json={"upload_id": up["upload_id"], "parts": bad}), 400, "INVALID_PARAMETER_VALUE")
    r = c.post(f"/api/2.0/mlflow-artifacts/mpu/complete/{root}/big/model.bin",
               json={"path": f"{root}/big/model.bin", "upload_id": up["upload_id"],
                     "parts": [{"part_number": i + 1, "etag": t} for i, t in enumerate(etags)]})
    assert r.status_code == 200, r.text
    assert c.get(f"{ART}/{root}/big/model.bin").content == b"".join(parts)
    # the upload is gone once complete
    err(c.post(f"/api/2.0/mlflow-artifacts/mpu/abort/{root}/big/model.bin",
               json={"upload_id": up["upload_id"]}), 404, "RESOURCE_DOES_NOT_EXIST")
    # abort
    up = c.post(f"/api/2.0/mlflow-artifacts/mpu/create/{root}/x.bin", json={"num_parts": 1}).json()
    r = c.post(f"/api/2.0/mlflow-artifacts/mpu/abort/{root}/x.bin", json={"upload_id": up["upload_id"]})
    assert r.status_code == 200 and r.json() == {}
    err(server.client().put(up["credentials"][0]["url"].replace(server.url, ""), data=b"x"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(c.post(f"/api/2.0/mlflow-artifacts/mpu/create/{root}/x.bin", json={"num_parts": 0}), 400,
        "INVALID_PARAMETER_VALUE")


def test_admin_gc_reclaims_deleted_runs_bytes(make_server):
    srv = make_server()
    c = srv.admin_client()
    eid, rid, root = new_run(c)
    keep_eid, keep_rid, keep_root = new_run(c)
    big, shared = os.urandom(3 << 20), os.urandom(100_000)
    assert c.put(f"{ART}/{root}/big.bin", data=chunks(big)).status_code == 200
    assert c.put(f"{ART}/{root}/shared.bin", data=shared).status_code == 200
    assert c.put(f"{ART}/{keep_root}/shared.bin", data=shared).status_code == 200
    big_sha = hashlib.sha256(big).hexdigest()
    assert big_sha in blob_objects(srv.data_dir)

    # an active run keeps everything
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0")
    assert out.returncode == 0, out.stderr
    assert "purged: 0 runs" in out.stdout and "blobs removed: 0" in out.stdout, out.stdout

    assert c.post(ML + "/runs/delete", json={"run_id": rid}).status_code == 200
    # deleted, not yet permanently: still restorable, still stored
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0", "--older-than", "3600")
    assert out.returncode == 0 and "purged: 0 runs" in out.stdout, out.stdout
    assert big_sha in blob_objects(srv.data_dir)

    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0")
    assert out.returncode == 0, out.stderr
    assert "purged: 1 runs, 0 experiments, 2 artifacts" in out.stdout, out.stdout
    m = re.search(r"blobs removed: (\d+), bytes reclaimed: (\d+)", out.stdout)
    assert m and int(m.group(1)) == 1 and int(m.group(2)) >= len(big), out.stdout
    assert big_sha not in blob_objects(srv.data_dir)
    err(c.get(ML + "/runs/get", params={"run_id": rid}), 404, "RESOURCE_DOES_NOT_EXIST")
    # the bytes another run shares stay
    assert c.get(f"{ART}/{keep_root}/shared.bin").content == shared

    # a deleted experiment goes with its runs
    assert c.post(ML + "/experiments/delete", json={"experiment_id": keep_eid}).status_code == 200
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--grace", "0")
    assert out.returncode == 0, out.stderr
    assert "purged: 1 runs, 1 experiments, 1 artifacts" in out.stdout, out.stdout
    assert "blobs removed: 1" in out.stdout, out.stdout
    assert hashlib.sha256(shared).hexdigest() not in blob_objects(srv.data_dir)
    err(c.get(ML + "/experiments/get", params={"experiment_id": keep_eid}), 404, "RESOURCE_DOES_NOT_EXIST")
    out = run_kiln("admin", "gc", "--data", str(srv.data_dir), "--older-than", "x")
    assert out.returncode == 2

"""Malware scanning of uploaded models with a REAL clamd (Debian's
clamav-daemon), started here with a database directory holding only a
signature written by the test (clamd needs no downloaded databases for
that, and nothing here reaches the network): a clean scikit-learn pickle
lands READY with clamd's verdict in the scan report; the same kind of model
carrying the signature's bytes is refused (422 naming the signature, nothing
stored); with clamd down the upload fails closed (503, nothing made) unless
the server runs with --clamd-fail-open (READY, marked not scanned); a file
past clamd's StreamMaxLength is refused with 413."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from kiln_harness import scaled, wait_for

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
UPLOAD = "/api/v1/models/upload"
SESSIONS = "/api/v1/models/uploads"
ML = "/api/2.0/mlflow/"

@pytest.fixture(autouse=True)
def _clamd_installed():
    # scripts/bootstrap installs clamav-daemon: without it these tests fail, they are never skipped
    assert os.access(CLAMD, os.X_OK), f"{CLAMD} is missing (scripts/bootstrap installs clamav-daemon)"


class Clamd:
    """One clamd process with a private config, socket and signature database."""

    def __init__(self, workdir: Path, marker: bytes, stream_max: str = "16M") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        db = self.dir / "db"
        db.mkdir(exist_ok=True)
        # an .ndb body signature: Name:TargetType(0 = any file):Offset(* = anywhere):hex bytes
        self.name = "Kiln.Test.Marker"
        (db / "kiln.ndb").write_text(f"{self.name}:0:*:{marker.hex()}\n")
        # AF_UNIX paths are short: keep the socket near the root of the temp dir
        self.sock = str(self.dir / "c.sock")
        self.conf = self.dir / "clamd.conf"
        self.conf.write_text("\n".join([
            f"LocalSocket {self.sock}",
            f"DatabaseDirectory {db}",
            f"TemporaryDirectory {self.dir}",
            f"PidFile {self.dir / 'clamd.pid'}",
            "Foreground yes",
            f"StreamMaxLength {stream_max}",
            "LogTime no",
        ]) + "\n")
        self.proc = None
        self.log = None

    @property
    def address(self) -> str:
        return "unix:" + self.sock

    def command(self, cmd: bytes) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            s.connect(self.sock)
            s.sendall(b"z" + cmd + b"\0")
            out = b""
            while not out.endswith(b"\0"):
                b = s.recv(4096)
                if not b:
                    break
                out += b
            return out.rstrip(b"\0")
        finally:
            s.close()

    def ping(self) -> bool:
        try:
            return self.command(b"PING") == b"PONG"
        except OSError:
            return False

    def start(self) -> "Clamd":
        self.log = open(self.dir / "clamd.out", "ab")
        self.proc = subprocess.Popen([CLAMD, "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: self.proc.poll() is not None or self.ping(), timeout=scaled(60), interval=0.05)
        except AssertionError:
            pass
        if not self.ping():
            self.stop()
            out = (self.dir / "clamd.out").read_text(errors="replace")[-3000:]
            pytest.fail(f"clamd did not start:\n{out}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None
        try:
            os.unlink(self.sock)  # a stale socket must not look alive
        except FileNotFoundError:
            pass


@pytest.fixture
def marker():
    return b"KILN-CLAM-MARKER-" + uuid.uuid4().hex.encode()


@pytest.fixture
def clamd(tmp_path_factory, marker):
    # short path: sun_path holds 108 bytes
    d = Path(f"/tmp/kc-{uuid.uuid4().hex[:10]}")
    c = Clamd(d, marker)
    yield c
    c.stop()
    shutil.rmtree(d, ignore_errors=True)


def sk_model(note: bytes = b"") -> bytes:
    """A real scikit-learn model; note (when given) rides along as an attribute."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    if note:
        clf.kiln_note = note
    return pickle.dumps(clf, protocol=4)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def upload(c, name, data, expect):
    r = c.post(UPLOAD, files={"file": ("model.pkl", data)}, data={"name": name})
    assert r.status_code == expect, (r.status_code, r.text)
    return r.json()


def versions_of(c, name):
    r = c.get(ML + "model-versions/search", params={"filter": f"name = '{name}'"})
    assert r.status_code == 200, r.text
    return r.json().get("model_versions", [])


def blob_files(srv, digest):
    return list(Path(srv.data_dir, "blobs").rglob(digest + "*"))


def leftovers(srv):
    d = Path(srv.data_dir, "uploads")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_clean_model_lands_ready_with_the_verdict(make_server, clamd):
    clamd.start()
    srv = make_server(args=["--clamd", clamd.address])
    srv.wait_log(lambda r: r.get("event") == "clamd.ready")
    c = srv.client(token=srv.admin_token())
    data = sk_model()
    mv = upload(c, "clean", data, 200)["model_version"]
    assert (mv["status"], mv["format"], mv["framework"], mv["stored"]) == ("READY", "pickle", "sklearn", True)
    mal = mv["scan"]["malware"]
    assert mal["scanner"] == "clamd" and mal["status"] == "clean"
    assert mal["engine"] == clamd.command(b"VERSION").decode()  # the daemon that judged
    assert isinstance(mal["duration_ms"], int) and mal["duration_ms"] >= 0
    assert "signature" not in mal
    # stored with the version: the scan route shows the same report
    got = c.get("/api/v1/models/clean/versions/1/scan").json()["model_version"]
    assert got["scan"]["malware"] == mal and got["status"] == "READY"
    assert blob_files(srv, sha(data))


def test_infected_model_refused_naming_the_signature(make_server, server, make_user, clamd, marker):
    clamd.start()
    data = sk_model(note=marker)
    # the file is a valid, safe model: a server without clamd takes it
    plain = make_user().client()
    assert upload(plain, "carrier", data, 200)["model_version"]["status"] == "READY"

    srv = make_server(args=["--clamd", clamd.address])
    c = srv.client(token=srv.admin_token())
    body = upload(c, "carrier", data, 422)
    sig = clamd.name + ".UNOFFICIAL"  # clamd's suffix for signatures outside its official databases
    assert body["error_code"] == "UNSAFE_MODEL"
    assert body["message"].startswith(f"malware: {sig}"), body["message"]
    mv = body["model_version"]
    assert mv["status"] == "FAILED_REGISTRATION" and not mv["stored"]
    assert sig in mv["status_message"]
    mal = mv["scan"]["malware"]
    assert (mal["status"], mal["signature"], mal["scanner"]) == ("infected", sig, "clamd")
    assert mal["engine"].startswith("ClamAV ")
    # nothing of it kept
    assert not blob_files(srv, sha(data)) and leftovers(srv) == []
    got = c.get("/api/v1/models/carrier/versions/1/scan").json()["model_version"]
    assert got["status"] == "FAILED_REGISTRATION" and got["scan"]["malware"]["signature"] == sig
    r = c.get("/api/v1/models/carrier/versions/1/download")
    assert r.status_code == 404
    # a clean upload right after still passes on the same server
    assert upload(c, "carrier", sk_model(), 200)["model_version"]["version"] == "2"


def test_clamd_down_fails_closed_and_nothing_is_made(make_server, clamd):
    clamd.start()
    srv = make_server(args=["--clamd", clamd.address])
    c = srv.client(token=srv.admin_token())
    clamd.stop()
    data = sk_model()
    body = upload(c, "closed", data, 503)
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE" and "malware scanner" in body["message"]
    assert "model_version" not in body
    assert versions_of(c, "closed") == []
    assert c.get(ML + "registered-models/get", params={"name": "closed"}).status_code == 404
    assert not blob_files(srv, sha(data)) and leftovers(srv) == []
    assert srv.wait_log(lambda r: r.get("event") == "upload.scan_failed")

    # a resumable upload keeps its bytes after a 503 and completes once clamd is back
    s = c.post(SESSIONS, json={"name": "closed", "size": len(data), "sha256": sha(data)}).json()["upload"]
    r = c.put(f"{SESSIONS}/{s['upload_id']}", data=data,
              headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    assert r.status_code == 200, r.text
    r = c.post(f"{SESSIONS}/{s['upload_id']}/complete")
    assert r.status_code == 503 and r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE", r.text
    assert versions_of(c, "closed") == []
    assert c.get(f"{SESSIONS}/{s['upload_id']}").json()["upload"]["received"] == len(data)
    clamd.start()
    r = c.post(f"{SESSIONS}/{s['upload_id']}/complete")
    assert r.status_code == 200, r.text
    mv = r.json()["model_version"]
    assert mv["status"] == "READY" and mv["version"] == "1" and mv["scan"]["malware"]["status"] == "clean"


def test_fail_open_registers_unscanned(make_server, clamd):
    # clamd never started: the server warns at start and keeps running
    srv = make_server(args=["--clamd", clamd.address, "--clamd-fail-open"])
    assert srv.wait_log(lambda r: r.get("event") == "clamd.unavailable")
    c = srv.client(token=srv.admin_token())
    data = sk_model()
    mv = upload(c, "open", data, 200)["model_version"]
    assert mv["status"] == "READY" and mv["stored"]
    mal = mv["scan"]["malware"]
    assert mal["status"] == "not_scanned" and mal["scanner"] == "clamd"
    assert mal["message"].startswith("not scanned: ") and "clamd" in mal["message"]
    assert "engine" not in mal and "signature" not in mal
    # fail-open never lets a found signature through
    clamd.start()
    body = upload(c, "open", sk_model(note=b"x" + clamd_marker(clamd)), 422)
    assert body["error_code"] == "UNSAFE_MODEL"


def clamd_marker(c: Clamd) -> bytes:
    line = (c.dir / "db" / "kiln.ndb").read_text().strip()
    return bytes.fromhex(line.rsplit(":", 1)[1])


def test_past_stream_max_length_is_refused(make_server, tmp_path, marker):
    c_dir = Path(f"/tmp/kc-{uuid.uuid4().hex[:10]}")
    cd = Clamd(c_dir, marker, stream_max="1M")
    try:
        cd.start()
        srv = make_server(args=["--clamd", cd.address])
        c = srv.client(token=srv.admin_token())
        import numpy as np

        data = sk_model(note=np.arange(400_000, dtype=np.float64).tobytes())  # ~3 MB, a valid model
        body = upload(c, "big", data, 413)
        assert body["error_code"] == "PAYLOAD_TOO_LARGE" and "StreamMaxLength" in body["message"], body
        assert versions_of(c, "big") == [] and not blob_files(srv, sha(data))
        assert cd.ping()  # clamd itself is fine
    finally:
        cd.stop()
        shutil.rmtree(c_dir, ignore_errors=True)


@pytest.mark.parametrize("addr", ["clamd.sock", "unix:relative.sock", "tcp:host", "tcp:host:0", "tcp::3310",
                                  "tcp:host:99999", "http://x"])
def test_malformed_address_stops_the_server(make_server, addr):
    srv = make_server(args=["--clamd", addr], start=False)
    p = subprocess.run(srv.command(), env=srv.child_env(), capture_output=True, text=True, timeout=scaled(30))
    assert p.returncode != 0
    assert "--clamd" in p.stderr, p.stderr

"""The SDK against the real Kiln server binary.

Starts ``$KILN_BIN`` (default ``build/kiln``) as ``kiln server --data TMP
--listen 127.0.0.1:0`` with ``KILN_ADMIN_PASSWORD`` set, reads the URL it
prints, and drives sign-in, API keys, users and the audit log through
``kiln.Client``. A missing binary is a failure, not a skip: build it first
(``make build/kiln``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, List, Sequence

import pytest

import kiln

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "Live-Sdk-Admin-5rT9"
BOB_PASSWORD = "Bob-Live-Password-3k"
CAROL_PASSWORD = "Carol-Sdk-Password-8w"
START_TIMEOUT_S = 30.0


def _binary() -> Path:
    name = os.environ.get("KILN_BIN") or "build/kiln"
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = ROOT / name
    path = path.resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"Kiln server binary not found or not executable: {path} "
            f"(set KILN_BIN, or build it with `make build/kiln` before `make sdk`)",
            pytrace=False,
        )
    return path


class LiveServer:
    def __init__(self, binary: Path, data: Path, extra_args: Sequence[str] = ()) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        env["KILN_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        self.log = open(data.parent / "kiln-stderr.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "server", "--data", str(data), "--listen", "127.0.0.1:0", *extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, env=env,
            cwd=str(data.parent), start_new_session=True,
        )
        self.lines: List[str] = []
        self.url = ""
        self._found = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"kiln server did not print its URL (exit {self.proc.returncode}); stdout: {self.lines!r}; "
                    f"stderr: {self.stderr()[-2000:]}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if m and not self.url:
                self.url = m.group(1)
                self._found.set()

    def stderr(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text("utf-8", "replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    binary = _binary()
    data = tmp_path_factory.mktemp("kiln-live") / "data"
    srv = LiveServer(binary, data)
    try:
        yield srv
    finally:
        rc = srv.stop()
        assert rc == 0, f"kiln server exited with {rc} after SIGTERM:\n{srv.stderr()[-2000:]}"


@pytest.fixture
def admin(server: LiveServer) -> kiln.Client:
    return kiln.Client(server.url, username="admin", password=ADMIN_PASSWORD)


def test_login_and_whoami(server: LiveServer, admin: kiln.Client) -> None:
    me = admin.whoami()
    assert me["user"]["username"] == "admin"
    assert me["user"]["is_admin"] is True
    assert me["auth"]["kind"] == "jwt"
    other = kiln.Client(server.url)
    other.login("admin", ADMIN_PASSWORD)
    assert other.whoami()["user"]["id"] == me["user"]["id"]
    with pytest.raises(kiln.Unauthenticated) as info:
        kiln.Client(server.url, username="admin", password="Wrong-Password-0q").whoami()
    assert "Wrong-Password-0q" not in str(info.value)


def test_refresh_and_logout(server: LiveServer, admin: kiln.Client) -> None:
    admin.whoami()
    admin._access_renew_at = 0.0  # pretend the access token is about to expire
    assert admin.whoami()["user"]["username"] == "admin"  # renewed by the refresh grant
    admin.logout()
    with pytest.raises(kiln.Unauthenticated):
        admin.whoami()


def test_api_key_lifecycle(server: LiveServer, admin: kiln.Client) -> None:
    made = admin.create_api_key("sdk-live", scopes=["read"])
    key, meta = made["key"], made["api_key"]
    assert key.startswith("kiln_") and meta["scopes"] == ["read"]
    assert meta["id"] in [k["id"] for k in admin.api_keys()]
    assert all("key" not in k for k in admin.api_keys())

    by_key = kiln.Client(server.url, api_key=key)
    who = by_key.whoami()
    assert who["auth"]["kind"] == "api_key" and who["auth"]["key_id"] == meta["id"]
    assert key not in repr(by_key)
    with pytest.raises(kiln.PermissionDenied):
        by_key.create_api_key("stronger", scopes=["write"])  # no stronger than itself

    rotated = admin.rotate_api_key(meta["id"], grace_seconds=60)
    new_key = rotated["key"]
    assert new_key != key and new_key.startswith("kiln_")
    assert kiln.Client(server.url, api_key=new_key).whoami()["auth"]["kind"] == "api_key"
    assert by_key.whoami()["user"]["username"] == "admin"  # old key inside its grace period

    admin.revoke_api_key(rotated["api_key"]["id"])
    with pytest.raises(kiln.Unauthenticated):
        kiln.Client(server.url, api_key=new_key).whoami()
    with pytest.raises(kiln.NotFound):
        admin.revoke_api_key("0" * 32)


def test_create_user_and_reset(server: LiveServer, admin: kiln.Client) -> None:
    user = admin.create_user("bob", BOB_PASSWORD, email="bob@example.com")
    assert user["username"] == "bob" and user["is_admin"] is False
    bob = kiln.Client(server.url, username="bob", password=BOB_PASSWORD)
    assert bob.whoami()["user"]["id"] == user["id"]
    with pytest.raises(kiln.PermissionDenied):
        bob.create_user("mallory", "Mallory-Pass-1x")
    with pytest.raises(kiln.BadRequest):
        admin.create_user("weak", "password")  # fails the policy
    admin.reset_password(user["id"], "Bob-Reset-Password-4m")
    again = kiln.Client(server.url, username="bob", password="Bob-Reset-Password-4m")
    assert again.whoami()["user"]["must_change_password"] is True
    again.change_password("Bob-Reset-Password-4m", "Bob-Changed-Password-6n")
    assert again.whoami()["user"]["username"] == "bob"
    again._access_renew_at = 0.0  # refresh token was revoked by the change: signs in anew
    assert again.whoami()["user"]["username"] == "bob"


def test_audit_paging(server: LiveServer, admin: kiln.Client) -> None:
    for _ in range(3):
        kiln.Client(server.url, username="admin", password=ADMIN_PASSWORD).whoami()
    everything = admin.audit(max_results=1000)["entries"]
    assert len(everything) >= 5
    page = admin.audit(max_results=2)
    assert len(page["entries"]) == 2 and page["next_page_token"]
    paged = list(admin.iter_audit(max_results=2))
    assert [e["seq"] for e in paged] == [e["seq"] for e in everything]
    seqs = [e["seq"] for e in paged]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    logins = list(admin.iter_audit(action="auth.login", max_results=2))
    assert logins and all(e["action"] == "auth.login" for e in logins)
    text = repr(everything)
    for secret in (ADMIN_PASSWORD, BOB_PASSWORD):
        assert secret not in text


def test_invitation_round_trip(server: LiveServer, admin: kiln.Client) -> None:
    org = admin.create_org("sdk-invites")
    answer = admin.invite(org["id"], "carol@example.com", role="admin")
    assert answer["delivery"] == "link" and "token=" in answer["link"]
    admin.create_user("carol", CAROL_PASSWORD, email="carol@example.com")
    carol = kiln.Client(server.url, username="carol", password=CAROL_PASSWORD)
    offer = carol.preview_invitation(answer["link"])
    assert offer["org_name"] == "sdk-invites" and offer["role"] == "admin" and offer["status"] == "pending"
    joined = carol.accept_invitation(answer["link"])
    assert joined["status"] == "accepted" and joined["org_id"] == org["id"]
    roles = {o["id"]: o["role"] for o in carol.orgs()}
    assert roles[org["id"]] == "admin"
    with pytest.raises(kiln.BadRequest):
        carol.accept_invitation(answer["link"])
    assert carol.preview_invitation(answer["link"])["status"] == "accepted"

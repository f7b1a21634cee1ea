"""Sign-in, token renewal and identity calls of the SDK, against an in-process
stub that emulates Kiln's token endpoint (password and refresh grants, spent
refresh tokens, family revocation on reuse)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import kiln

USER = "alice"
PASSWORD = "Correct-Horse-42x"
NEW_PASSWORD = "Battery-Staple-77y"
API_KEY = "kiln_" + "K" * 43


class AuthStub:
    """A tiny Kiln: /api/v1/auth/token, logout, whoami, password and a few
    scripted routes. Records every request; counts grants."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: List[Tuple[str, str, Dict[str, str], Any]] = []
        self.grants: List[str] = []  # "password" / "refresh" per token call
        self.password = PASSWORD
        self.expires_in = 900
        self.refresh_delay_s = 0.0
        self.refresh_always_401 = False
        self.whoami_always_401 = False
        self.reuse_detected = False
        self.valid_access: Dict[str, str] = {}  # token -> kind
        self.refresh_tokens: Dict[str, Dict[str, Any]] = {}  # token -> {"family", "used"}
        self.revoked_families: set = set()
        self.scripted: Dict[Tuple[str, str], Tuple[int, Dict[str, str], Any]] = {}
        self._n = 0
        self.url = ""

    # -- helpers used by tests
    def calls(self, method: str, path: str) -> List[Tuple[str, str, Dict[str, str], Any]]:
        return [r for r in self.requests if r[0] == method and r[1].partition("?")[0] == path]

    def token_bodies(self) -> List[Dict[str, Any]]:
        return [r[3] for r in self.calls("POST", "/api/v1/auth/token")]

    def invalidate_access(self) -> None:
        with self.lock:
            self.valid_access.clear()

    def script(self, method: str, path: str, status: int = 200, body: Any = None,
               headers: Optional[Dict[str, str]] = None) -> None:
        self.scripted[(method, path)] = (status, dict(headers or {}), body)

    # -- token logic
    def _issue(self, family: str) -> Dict[str, Any]:
        self._n += 1
        access, refresh = f"at-{self._n}", f"rt-{self._n}"
        self.valid_access[access] = "jwt"
        self.refresh_tokens[refresh] = {"family": family, "used": False}
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in,
                "refresh_token": refresh}

    def token(self, body: Any) -> Tuple[int, Dict[str, str], Any]:
        if not isinstance(body, dict):
            return 400, {}, {"error_code": "INVALID_PARAMETER_VALUE", "message": "object expected"}
        if "refresh_token" in body:
            with self.lock:
                self.grants.append("refresh")
            time.sleep(self.refresh_delay_s)  # widen any race window
            with self.lock:
                rec = self.refresh_tokens.get(body["refresh_token"])
                if self.refresh_always_401 or rec is None or rec["family"] in self.revoked_families:
                    return 401, {}, {"error_code": "UNAUTHENTICATED", "message": "invalid refresh token"}
                if rec["used"]:
                    self.reuse_detected = True
                    self.revoked_families.add(rec["family"])
                    return 401, {}, {"error_code": "UNAUTHENTICATED", "message": "refresh token reused"}
                rec["used"] = True
                return 200, {"Cache-Control": "no-store"}, self._issue(rec["family"])
        with self.lock:
            self.grants.append("password")
            if body.get("username") == USER and body.get("password") == self.password:
                return 200, {"Cache-Control": "no-store"}, self._issue(f"fam-{self._n + 1}")
        return 401, {}, {"error_code": "UNAUTHENTICATED", "message": "invalid username or password"}

    def authorized(self, headers: Dict[str, str]) -> Optional[str]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return None
        cred = auth[len("Bearer "):]
        if cred == API_KEY:
            return "api_key"
        with self.lock:
            return self.valid_access.get(cred)

    def answer(self, method: str, target: str, headers: Dict[str, str], body: Any) -> Tuple[int, Dict[str, str], Any]:
        path = target.partition("?")[0]
        unauth = (401, {"WWW-Authenticate": 'Bearer realm="kiln"'},
                  {"error_code": "UNAUTHENTICATED", "message": "invalid or expired credentials"})
        if (method, path) == ("POST", "/api/v1/auth/token"):
            return self.token(body)
        if (method, path) == ("POST", "/api/v1/auth/logout"):
            with self.lock:
                rec = self.refresh_tokens.get((body or {}).get("refresh_token"))
                if rec:
                    self.revoked_families.add(rec["family"])
            return 200, {}, {}
        kind = self.authorized(headers)
        if kind is None:
            return unauth
        if (method, path) == ("GET", "/api/v1/auth/whoami"):
            if self.whoami_always_401:
                return unauth
            return 200, {}, {"user": {"id": "u" * 32, "username": USER, "is_admin": True, "created_at": 1},
                             "auth": {"kind": kind, "scopes": ["read", "write", "predict", "admin"]}}
        if (method, path) == ("POST", "/api/v1/auth/password"):
            if body.get("old_password") != self.password:
                return 401, {}, {"error_code": "UNAUTHENTICATED", "message": "the current password is incorrect"}
            with self.lock:
                self.password = body["new_password"]
                for rec in self.refresh_tokens.values():
                    self.revoked_families.add(rec["family"])
            return 200, {}, {}
        if (method, path) in self.scripted:
            return self.scripted[(method, path)]
        return 404, {}, {"error_code": "ENDPOINT_NOT_FOUND", "message": "no such endpoint"}


def _handler(stub: AuthStub) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = json.loads(raw) if raw else None
            with stub.lock:
                stub.requests.append((self.command, self.path, headers, body))
            status, hdrs, payload = stub.answer(self.command, self.path, headers, body)
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in hdrs.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@pytest.fixture
def auth() -> Iterator[AuthStub]:
    s = AuthStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(s))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    s.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(auth: AuthStub, clock: Optional[FakeClock] = None, **kw: Any) -> kiln.Client:
    kw.setdefault("username", USER)
    kw.setdefault("password", PASSWORD)
    c = kiln.Client(auth.url, **kw)
    if clock is not None:
        c._clock = clock
    return c


# ------------------------------------------------------------ construction


def test_username_and_password_go_together() -> None:
    with pytest.raises(ValueError):
        kiln.Client("http://h:1", username=USER)
    with pytest.raises(ValueError):
        kiln.Client("http://h:1", password=PASSWORD)


def test_only_one_kind_of_credential() -> None:
    with pytest.raises(ValueError) as info:
        kiln.Client("http://h:1", token="tok-secret", api_key=API_KEY)
    assert "tok-secret" not in str(info.value) and API_KEY not in str(info.value)
    with pytest.raises(ValueError):
        kiln.Client("http://h:1", api_key=API_KEY, username=USER, password=PASSWORD)


def test_timeout_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        kiln.Client("http://h:1", None, 5)  # type: ignore[misc]
    assert kiln.Client("http://h:1", timeout=5).timeout == 5


# ------------------------------------------------------------ password grant


def test_password_grant_is_lazy_and_well_formed(auth) -> None:
    client = _client(auth)
    assert auth.requests == []  # nothing sent on construction
    me = client.whoami()
    assert me["user"]["username"] == USER and me["auth"]["kind"] == "jwt"
    token_calls = auth.calls("POST", "/api/v1/auth/token")
    assert len(token_calls) == 1
    _, _, headers, body = token_calls[0]
    assert body == {"username": USER, "password": PASSWORD}
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers  # the token endpoint gets no bearer
    _, _, headers, _ = auth.calls("GET", "/api/v1/auth/whoami")[0]
    assert headers["authorization"] == "Bearer at-1"
    client.whoami()
    assert auth.grants == ["password"]  # tokens are reused, not fetched per call


def test_login_signs_in_now_and_replaces_token(auth) -> None:
    client = kiln.Client(auth.url, token="old-static-token")
    assert client.login(USER, PASSWORD) is None
    assert auth.grants == ["password"]
    client.whoami()
    assert auth.calls("GET", "/api/v1/auth/whoami")[0][2]["authorization"] == "Bearer at-1"
    assert client.token is None


def test_wrong_password_raises_without_leaking(auth) -> None:
    client = _client(auth, password="Wrong-Pass-123")
    with pytest.raises(kiln.Unauthenticated) as info:
        client.whoami()
    err = info.value
    for text in (str(err), repr(err), json.dumps(err.details), repr(client)):
        assert "Wrong-Pass-123" not in text
    assert auth.grants == ["password"]  # no retry loop on a failed sign-in
    assert auth.calls("GET", "/api/v1/auth/whoami") == []
    with pytest.raises(kiln.Unauthenticated):
        kiln.Client(auth.url).login(USER, "Wrong-Pass-123")


def test_throttled_login_carries_retry_after(stub) -> None:
    stub.reply("POST", "/api/v1/auth/token", 429,
               {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "too many failed attempts; retry in 8 s"},
               {"Retry-After": "8"})
    with pytest.raises(kiln.RateLimited) as info:
        kiln.Client(stub.url).login(USER, PASSWORD)
    assert info.value.retry_after == 8.0
    assert PASSWORD not in str(info.value)


def test_non_json_token_answer_does_not_quote_the_body(stub) -> None:
    stub.reply("POST", "/api/v1/auth/token", 200, "access_token=leaky-secret-token")
    with pytest.raises(kiln.KilnError) as info:
        kiln.Client(stub.url).login(USER, PASSWORD)
    assert info.value.error_code == "INVALID_RESPONSE"
    assert "leaky-secret-token" not in str(info.value) and "leaky-secret-token" not in repr(info.value)


# ------------------------------------------------------------ renewal


def test_refresh_shortly_before_expiry_with_fake_clock(auth) -> None:
    clock = FakeClock()
    client = _client(auth, clock)
    client.whoami()
    clock.now += 600  # well inside the 900 s lifetime
    client.whoami()
    assert auth.grants == ["password"]
    clock.now += 900 - 600 - 10  # 10 s before expiry: inside the renewal margin
    client.whoami()
    assert auth.grants == ["password", "refresh"]
    assert auth.token_bodies()[-1] == {"refresh_token": "rt-1"}
    whoamis = auth.calls("GET", "/api/v1/auth/whoami")
    assert [w[2]["authorization"] for w in whoamis] == ["Bearer at-1", "Bearer at-1", "Bearer at-2"]
    assert not auth.reuse_detected


def test_refresh_before_expiry_with_real_time(auth) -> None:
    auth.expires_in = 1
    client = _client(auth)
    client.whoami()
    time.sleep(1.0)
    client.whoami()
    assert auth.grants == ["password", "refresh"]
    assert auth.calls("GET", "/api/v1/auth/whoami")[-1][2]["authorization"] == "Bearer at-2"


def test_401_refreshes_once_and_retries_once(auth) -> None:
    client = _client(auth)
    client.whoami()
    auth.invalidate_access()  # e.g. the signing key was rotated out
    me = client.whoami()
    assert me["user"]["username"] == USER
    assert auth.grants == ["password", "refresh"]
    auths = [w[2]["authorization"] for w in auth.calls("GET", "/api/v1/auth/whoami")]
    assert auths == ["Bearer at-1", "Bearer at-1", "Bearer at-2"]


def test_persistent_401_is_retried_only_once(auth) -> None:
    client = _client(auth)
    client.whoami()
    auth.whoami_always_401 = True
    with pytest.raises(kiln.Unauthenticated):
        client.whoami()
    assert auth.grants == ["password", "refresh"]
    assert len(auth.calls("GET", "/api/v1/auth/whoami")) == 3  # first ok, then 401 + one retry


def test_concurrent_callers_refresh_exactly_once(auth) -> None:
    clock = FakeClock()
    client = _client(auth, clock)
    client.whoami()
    clock.now += 10_000  # the access token has expired
    auth.refresh_delay_s = 0.2
    barrier = threading.Barrier(10)
    results: List[Any] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(client.whoami()["user"]["username"])
        except Exception as err:  # pragma: no cover - reported below
            results.append(err)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [USER] * 10
    assert auth.grants == ["password", "refresh"]
    assert not auth.reuse_detected
    assert {w[2]["authorization"] for w in auth.calls("GET", "/api/v1/auth/whoami")[1:]} == {"Bearer at-2"}


def test_concurrent_401s_refresh_exactly_once(auth) -> None:
    client = _client(auth)
    client.whoami()
    auth.invalidate_access()
    auth.refresh_delay_s = 0.2
    barrier = threading.Barrier(10)
    results: List[Any] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(client.whoami()["user"]["username"])
        except Exception as err:  # pragma: no cover - reported below
            results.append(err)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [USER] * 10
    assert auth.grants == ["password", "refresh"]
    assert not auth.reuse_detected


def test_refused_refresh_falls_back_to_password_grant(auth) -> None:
    clock = FakeClock()
    client = _client(auth, clock)
    client.whoami()
    auth.refresh_always_401 = True  # e.g. the family was revoked elsewhere
    clock.now += 10_000
    assert client.whoami()["user"]["username"] == USER
    assert auth.grants == ["password", "refresh", "password"]
    assert auth.token_bodies()[-1] == {"username": USER, "password": PASSWORD}
    assert auth.calls("GET", "/api/v1/auth/whoami")[-1][2]["authorization"] == "Bearer at-2"


def test_refused_refresh_without_password_raises_unauthenticated(auth) -> None:
    clock = FakeClock()
    client = _client(auth, clock)
    client.whoami()
    client._password = None  # a session whose password is no longer kept
    auth.refresh_always_401 = True
    clock.now += 10_000
    with pytest.raises(kiln.Unauthenticated) as info:
        client.whoami()
    assert "rt-" not in str(info.value) and "at-" not in str(info.value)
    assert auth.grants == ["password", "refresh"]


# ------------------------------------------------------------ API keys as credentials


def test_api_key_is_sent_as_bearer(auth) -> None:
    client = kiln.Client(auth.url, api_key=API_KEY)
    assert client.whoami()["auth"]["kind"] == "api_key"
    assert auth.calls("GET", "/api/v1/auth/whoami")[0][2]["authorization"] == f"Bearer {API_KEY}"
    assert auth.grants == []
    assert API_KEY not in repr(client) and "api_key=***" in repr(client)


def test_api_key_from_environment(auth, monkeypatch) -> None:
    monkeypatch.setenv("KILN_API_KEY", API_KEY)
    kiln.Client(auth.url).whoami()
    assert auth.calls("GET", "/api/v1/auth/whoami")[0][2]["authorization"] == f"Bearer {API_KEY}"
    # explicit credentials win over the environment; "" means none at all
    kiln.Client(auth.url, username=USER, password=PASSWORD).whoami()
    assert auth.calls("GET", "/api/v1/auth/whoami")[-1][2]["authorization"] == "Bearer at-1"
    with pytest.raises(kiln.Unauthenticated):
        kiln.Client(auth.url, api_key="").whoami()
    assert "authorization" not in auth.requests[-1][2]


def test_token_environment_wins_over_api_key_environment(stub, monkeypatch) -> None:
    monkeypatch.setenv("KILN_API_KEY", API_KEY)
    monkeypatch.setenv("KILN_TOKEN", "env-token")
    stub.reply("GET", "/healthz", body={"status": "ok"})
    kiln.Client(stub.url).health()
    assert stub.last.headers["authorization"] == "Bearer env-token"


def test_api_key_401_is_not_retried(stub) -> None:
    stub.reply("GET", "/api/v1/auth/whoami", 401, {"error_code": "UNAUTHENTICATED", "message": "revoked key"})
    with pytest.raises(kiln.Unauthenticated) as info:
        kiln.Client(stub.url, api_key=API_KEY).whoami()
    assert len(stub.requests) == 1
    assert API_KEY not in str(info.value)


# ------------------------------------------------------------ secrets


def test_secrets_absent_from_repr_and_errors(auth) -> None:
    client = _client(auth)
    assert PASSWORD not in repr(client) and PASSWORD not in str(client)
    assert repr(client) == f"Client(url={auth.url!r}, username='alice', password=***, timeout=30.0)"
    client.whoami()
    dump = repr(client) + str(client) + repr(vars(client))
    for secret in (PASSWORD, "at-1", "rt-1"):
        assert secret not in dump
    auth.whoami_always_401 = True
    with pytest.raises(kiln.Unauthenticated) as info:
        client.whoami()
    text = str(info.value) + repr(info.value) + repr(info.value.__context__)
    for secret in (PASSWORD, "at-1", "at-2", "rt-1", "rt-2"):
        assert secret not in text


# ------------------------------------------------------------ logout, password


def test_logout_revokes_family_and_forgets_credentials(auth) -> None:
    client = _client(auth)
    client.whoami()
    client.logout()
    calls = auth.calls("POST", "/api/v1/auth/logout")
    assert len(calls) == 1 and calls[0][3] == {"refresh_token": "rt-1"}
    assert "authorization" not in calls[0][2]
    assert "fam-1" in auth.revoked_families
    with pytest.raises(kiln.Unauthenticated):
        client.whoami()
    assert "authorization" not in auth.requests[-1][2]
    assert auth.grants == ["password"]  # no silent sign-in after logout
    client.logout()  # not signed in: nothing to revoke
    assert len(auth.calls("POST", "/api/v1/auth/logout")) == 1


def test_change_password_keeps_session_working(auth) -> None:
    clock = FakeClock()
    client = _client(auth, clock)
    client.whoami()
    client.change_password(PASSWORD, NEW_PASSWORD)
    body = auth.calls("POST", "/api/v1/auth/password")[0][3]
    assert body == {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    clock.now += 10_000  # the refresh token was revoked by the change
    client.whoami()
    assert auth.grants == ["password", "password"]
    assert auth.token_bodies()[-1] == {"username": USER, "password": NEW_PASSWORD}


def test_change_password_wrong_old_is_not_retried(auth) -> None:
    client = _client(auth)
    with pytest.raises(kiln.Unauthenticated) as info:
        client.change_password("Not-The-Password-1", NEW_PASSWORD)
    assert len(auth.calls("POST", "/api/v1/auth/password")) == 1
    assert auth.grants == ["password"]
    assert "Not-The-Password-1" not in str(info.value) and NEW_PASSWORD not in str(info.value)


# ------------------------------------------------------------ keys, users, audit wire format


def test_api_key_methods(auth) -> None:
    key_obj = {"id": "k1", "name": "ci", "prefix": "kiln_abcdefg", "scopes": ["read"], "created_at": 5}
    auth.script("GET", "/api/v1/api-keys", body={"api_keys": [key_obj]})
    auth.script("POST", "/api/v1/api-keys", body={"key": API_KEY, "api_key": key_obj})
    auth.script("DELETE", "/api/v1/api-keys/k%2F1", body={})
    auth.script("POST", "/api/v1/api-keys/k1/rotate", body={"key": API_KEY, "api_key": key_obj})
    client = _client(auth)
    assert client.api_keys() == [key_obj]
    made = client.create_api_key("ci", scopes=["read", "predict"], project_id="p1", expires_at=1_700_000_000_000)
    assert made["key"] == API_KEY and made["api_key"]["id"] == "k1"
    assert auth.calls("POST", "/api/v1/api-keys")[0][3] == {
        "name": "ci", "scopes": ["read", "predict"], "project_id": "p1", "expires_at": 1_700_000_000_000}
    client.create_api_key("plain")
    assert auth.calls("POST", "/api/v1/api-keys")[1][3] == {"name": "plain"}
    assert client.revoke_api_key("k/1") is None
    assert len(auth.calls("DELETE", "/api/v1/api-keys/k%2F1")) == 1
    assert client.rotate_api_key("k1")["key"] == API_KEY
    assert client.rotate_api_key("k1", grace_seconds=60)["api_key"]["id"] == "k1"
    assert [c[3] for c in auth.calls("POST", "/api/v1/api-keys/k1/rotate")] == [{}, {"grace_seconds": 60}]


def test_user_admin_methods(auth) -> None:
    user = {"id": "b" * 32, "username": "bob", "is_admin": False, "created_at": 7}
    auth.script("POST", "/api/v1/users", body={"user": user})
    auth.script("POST", "/api/v1/users/" + "b" * 32 + "/password", body={})
    client = _client(auth)
    assert client.create_user("bob", "Bob-Password-9z", email="bob@example.com") == user
    assert auth.calls("POST", "/api/v1/users")[0][3] == {
        "username": "bob", "password": "Bob-Password-9z", "is_admin": False, "email": "bob@example.com"}
    assert client.reset_password("b" * 32, "Reset-Password-8w") is None
    assert auth.calls("POST", "/api/v1/users/" + "b" * 32 + "/password")[0][3] == {"new_password": "Reset-Password-8w"}


def test_audit_query_parameters(auth) -> None:
    import datetime

    auth.script("GET", "/api/v1/audit", body={"entries": [{"seq": 3}]})
    client = _client(auth)
    page = client.audit(actor="u1", action="auth.login",
                        since=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
                        until=1_800_000_000_000, max_results=5, page_token="9")
    assert page == {"entries": [{"seq": 3}]}
    query = urllib.parse.parse_qs(auth.calls("GET", "/api/v1/audit")[0][1].partition("?")[2])
    assert query == {"actor": ["u1"], "action": ["auth.login"], "since": ["1704067200000"],
                     "until": ["1800000000000"], "max_results": ["5"], "page_token": ["9"]}
    client.audit()
    assert auth.calls("GET", "/api/v1/audit")[1][1] == "/api/v1/audit"


def test_iter_audit_follows_next_page_token(auth) -> None:
    pages = {None: {"entries": [{"seq": 5}, {"seq": 4}], "next_page_token": "4"},
             "4": {"entries": [{"seq": 3}, {"seq": 2}], "next_page_token": "2"},
             "2": {"entries": [{"seq": 1}]}}
    original = auth.answer

    def answer(method: str, target: str, headers: Dict[str, str], body: Any) -> Any:
        if target.startswith("/api/v1/audit"):
            token = urllib.parse.parse_qs(target.partition("?")[2]).get("page_token", [None])[0]
            return 200, {}, pages[token]
        return original(method, target, headers, body)

    auth.answer = answer  # type: ignore[method-assign]
    client = _client(auth)
    assert [e["seq"] for e in client.iter_audit(action="auth.login", max_results=2)] == [5, 4, 3, 2, 1]
    targets = [c[1] for c in auth.calls("GET", "/api/v1/audit")]
    assert len(targets) == 3
    assert all("max_results=2" in t and "action=auth.login" in t for t in targets)

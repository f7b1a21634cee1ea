"""Identity and access over HTTP: the first-start admin, the token grants,
login backoff, logout, whoami with every credential, password change, API
keys, users (administrators) and the audit log, against real servers.

Every password hash is argon2id at libsodium's INTERACTIVE cost (about half a
second here), so the tests count their logins: independent ones run in
parallel(), and those that fail logins on purpose (which the per-address
throttle counts: 20 from 127.0.0.1 and every login on the shared server would
wait) are few, or run on a dedicated server.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import stat
import subprocess
import time
from typing import Any, Dict, Optional

import pytest

from kiln_harness import (ADMIN_PASSWORD_FILE, SECRETS, KilnServer, create_user, finish_server,
                          parallel, register_secret, run_kiln, scaled, strong_password,
                          unique_name, wait_for)

TOKEN = "/api/v1/auth/token"
LOGOUT = "/api/v1/auth/logout"
WHOAMI = "/api/v1/auth/whoami"
PASSWORD = "/api/v1/auth/password"
KEYS = "/api/v1/api-keys"
USERS = "/api/v1/users"
AUDIT = "/api/v1/audit"

BAD_LOGIN = "invalid username or password"
ID_RE = re.compile(r"[0-9a-f]{32}")
KEY_RE = re.compile(r"kiln_[0-9A-Za-z]{43}")
REFRESH_RE = re.compile(r"kiln_rt_[0-9A-Za-z]{43}")
DEFAULT_SCOPES = ["read", "write", "predict"]
ALL_SCOPES = ["read", "write", "predict", "admin"]


# ---- helpers ------------------------------------------------------------------------


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(r, status: int, code: str, message: Optional[str] = None,
                 contains: Optional[str] = None) -> Dict[str, Any]:
    """r is an error with this status and error_code (and message, exactly, or
    containing a piece); returns the body."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text[:400]}"
    body = r.json()
    assert body["error_code"] == code, body
    if message is not None:
        assert body["message"] == message, body
    if contains is not None:
        assert contains in body["message"], body
    return body


def assert_unauthenticated(r, contains: Optional[str] = None) -> None:
    """401 from the central check: UNAUTHENTICATED and the Bearer challenge."""
    assert_error(r, 401, "UNAUTHENTICATED", contains=contains)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith('Bearer realm="kiln"'), f"WWW-Authenticate: {challenge!r}"


def jwt_parts(token: str):
    """(header, claims) of a JWT, decoded without checking anything."""
    def dec(seg: str) -> Dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    head, claims, sig = token.split(".")
    assert sig, "unsigned token"
    return dec(head), dec(claims)


def password_grant(client, username: str, password: str):
    return client.post(TOKEN, json={"username": username, "password": password})


def refresh_grant(client, refresh_token: str):
    r = client.post(TOKEN, json={"refresh_token": refresh_token})
    if r.status_code == 200:
        register_secret(r.json()["access_token"], r.json()["refresh_token"])
    return r


def new_key(client, expect: int = 200, **body) -> Dict[str, Any]:
    """POST /api/v1/api-keys; the answer's JSON (the key is registered as a secret)."""
    body.setdefault("name", unique_name("key"))
    r = client.post(KEYS, json=body)
    assert r.status_code == expect, r.text[:400]
    out = r.json()
    if expect == 200:
        register_secret(out["key"])
        assert r.headers.get("Cache-Control") == "no-store"
    return out


def rotate(client, key_id: str, expect: int = 200, **body):
    r = client.post(f"{KEYS}/{key_id}/rotate", json=body) if body else \
        client.post(f"{KEYS}/{key_id}/rotate")
    assert r.status_code == expect, r.text[:400]
    if expect == 200:
        register_secret(r.json()["key"])
        assert r.headers.get("Cache-Control") == "no-store"
    return r.json()


def listed_keys(client) -> Dict[str, Dict[str, Any]]:
    r = client.get(KEYS)
    assert r.status_code == 200, r.text[:400]
    return {k["id"]: k for k in r.json()["api_keys"]}


def whoami(client, headers: Optional[Dict[str, str]] = None):
    return client.get(WHOAMI, headers=headers or {})


def audit_entries(client, **params) -> list:
    r = client.get(AUDIT, params=params)
    assert r.status_code == 200, r.text[:400]
    return r.json()["entries"]


def all_audit_entries(client, **params) -> list:
    """Every page (newest first), following next_page_token."""
    out, token = [], None
    for _ in range(1000):
        q = dict(params, max_results=1000)
        if token:
            q["page_token"] = token
        r = client.get(AUDIT, params=q)
        assert r.status_code == 200, r.text[:400]
        out += r.json()["entries"]
        token = r.json().get("next_page_token")
        if not token:
            return out
    raise AssertionError("audit paging did not end")


def read_db(data_dir, sql: str, *args):
    db = sqlite3.connect(f"file:{data_dir}/kiln.db?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alice(server, admin_token):
    """A plain (non-admin) user on the shared server, with an email, signed in."""
    admin = server.client(token=admin_token)
    name = unique_name("alice")
    u = create_user(admin, server, username=name, email=f"{name}@example.com")
    admin.close()
    return u


@pytest.fixture(scope="module")
def ttl_server(kiln_binary, tmp_path_factory):
    """A dedicated server whose access tokens live 1 s; the backoff test's
    failed logins stay away from the shared server's counters too."""
    srv = KilnServer(tmp_path_factory.mktemp("kiln-ttl"), args=["--access-token-ttl", "1"],
                     name="ttl").start()
    yield srv
    finish_server(srv)


# ---- first start --------------------------------------------------------------------


def test_first_start_generates_the_admin_password_once(make_server):
    srv = make_server(admin_password=None)
    pwfile = srv.data_dir / ADMIN_PASSWORD_FILE
    assert pwfile.is_file()
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o600
    pw = pwfile.read_text("utf-8")
    register_secret(pw)
    assert re.fullmatch(r"[A-Za-z0-9]{20}", pw), "the generated password is 20 alphanumerics"
    log = srv.log_text()
    assert str(pwfile) in log, "stderr names the password file"
    assert log.count(pw) == 1, "the password is printed exactly once"
    hint = f"kiln: sign in as 'admin' with the password in {pwfile}"
    wait_for(lambda: hint in srv.stdout_lines, scaled(5), what="the sign-in hint on stdout")

    c = srv.client(token=srv.login("admin", pw)["access_token"])
    me = whoami(c).json()
    assert me["user"]["username"] == "admin" and me["user"]["is_admin"] is True
    assert me["auth"] == {"kind": "jwt", "scopes": ALL_SCOPES}
    assert srv.stop() == 0

    again = make_server(data_dir=srv.data_dir, admin_password=None)
    log2 = again.log_text()
    assert "created user" not in log2 and pw not in log2, log2[-2000:]
    assert pw not in "\n".join(again.stdout_lines)
    assert pwfile.read_text("utf-8") == pw, "the file is not rewritten"
    assert read_db(again.data_dir, "SELECT COUNT(*), SUM(username = 'admin') FROM users") == [(1, 1)]
    # the file still exists, so the hint is printed again
    wait_for(lambda: hint in again.stdout_lines, scaled(5), what="the sign-in hint on stdout")


def test_admin_password_from_the_environment_writes_no_file(server, admin_token):
    assert not (server.data_dir / ADMIN_PASSWORD_FILE).exists()
    assert not any("sign in as" in line for line in server.stdout_lines), server.stdout_lines
    assert server.admin_password not in server.log_text()
    c = server.client(token=admin_token)
    assert whoami(c).json()["user"]["username"] == "admin"


def test_a_weak_admin_password_stops_the_server(tmp_path):
    def start(weak: str, d: str):
        return run_kiln("server", "--data", str(tmp_path / d), "--listen", "127.0.0.1:0",
                        env={"KILN_ADMIN_PASSWORD": weak})
    short, common = parallel(lambda: start("Sh0rt-pw", "a"), lambda: start("Password123", "b"))
    for out, rule in ((short, "password must be at least 10 characters"),
                      (common, "password is too common")):
        assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
        assert f"KILN_ADMIN_PASSWORD is too weak: {rule}" in out.stderr, out.stderr
        assert "listening on" not in out.stdout
    assert "Sh0rt-pw" not in short.stderr + short.stdout, "the rejected password is not echoed"
    assert "Password123" not in common.stderr + common.stdout
    for d in ("a", "b"):
        assert not (tmp_path / d / ADMIN_PASSWORD_FILE).exists()


# ---- POST /api/v1/auth/token -----------------------------------------------------------


def test_password_grant_by_username_or_email(server, client, make_user):
    name = unique_name("grant")
    u = make_user(username=name, email=f"{name}@Example.COM", login=False)
    assert u.email == f"{name}@example.com", "emails are stored lower case"
    by_name, by_mail = parallel(lambda: password_grant(server.client(), name.upper(), u.password),
                                lambda: password_grant(server.client(), f"{name}@EXAMPLE.com",
                                                       u.password))
    for r in (by_name, by_mail):
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store"
        body = r.json()
        register_secret(body["access_token"], body["refresh_token"])
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
        assert REFRESH_RE.fullmatch(body["refresh_token"]), body["refresh_token"]
        head, claims = jwt_parts(body["access_token"])
        assert head["alg"] == "HS256" and ID_RE.fullmatch(head["kid"])
        assert claims["sub"] == u.id and claims["name"] == name and claims["iss"] == "kiln"
        assert claims["adm"] is False
        assert claims["exp"] - claims["iat"] == 900
        me = whoami(client, bearer(body["access_token"]))
        assert me.status_code == 200
        assert me.json()["user"]["id"] == u.id and me.json()["auth"]["kind"] == "jwt"
    assert by_name.json()["refresh_token"] != by_mail.json()["refresh_token"]


def test_wrong_password_and_unknown_user_answer_the_same(server):
    def attempt(username: str):
        t0 = time.monotonic()
        r = password_grant(server.client(), username, "Not-The-Password-1")
        return r, time.monotonic() - t0
    (wrong, t_wrong), (unknown, t_unknown) = parallel(lambda: attempt("admin"),
                                                      lambda: attempt(unique_name("nobody")))
    assert_error(wrong, 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    assert_error(unknown, 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    assert wrong.content == unknown.content
    # an unknown user is checked against a dummy hash: no fast path to tell them apart
    assert t_unknown > 0.25 * t_wrong and t_wrong > 0.25 * t_unknown, (t_wrong, t_unknown)


@pytest.mark.parametrize("body, message", [
    ({}, "send exactly one of {username, password}, {refresh_token} or {api_key}"),
    ({"username": "admin"}, "username and password go together"),
    ({"password": "Some-Password-1"}, "username and password go together"),
    ({"username": "admin", "password": "Some-Password-1", "refresh_token": "kiln_rt_x"},
     "send exactly one of {username, password}, {refresh_token} or {api_key}"),
    ({"refresh_token": "kiln_rt_x", "api_key": "kiln_x"},
     "send exactly one of {username, password}, {refresh_token} or {api_key}"),
    ({"username": "admin", "password": "Some-Password-1", "api_key": "kiln_x"},
     "send exactly one of {username, password}, {refresh_token} or {api_key}"),
])
def test_token_request_needs_exactly_one_grant(client, body, message):
    assert_error(client.post(TOKEN, json=body), 400, "INVALID_PARAMETER_VALUE", message=message)


def test_token_request_body_must_be_a_json_object(client):
    assert_error(client.post(TOKEN, json=["admin"]), 400, "INVALID_PARAMETER_VALUE")
    assert_error(client.post(TOKEN, data=b"{nope", headers={"Content-Type": "application/json"}),
                 400, "MALFORMED_REQUEST")


def test_refresh_rotates_and_reuse_revokes_the_family(server, client):
    first = server.login("admin", server.admin_password)
    r = refresh_grant(client, first["refresh_token"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    second = r.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["token_type"] == "Bearer" and second["expires_in"] == 900
    assert REFRESH_RE.fullmatch(second["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert whoami(client, bearer(second["access_token"])).json()["user"]["username"] == "admin"
    third = refresh_grant(client, second["refresh_token"]).json()

    # the first token was spent: presenting it again is reuse, which ends the whole login
    assert_error(refresh_grant(client, first["refresh_token"]), 401, "UNAUTHENTICATED",
                 contains="reuse detected")
    assert_error(refresh_grant(client, third["refresh_token"]), 401, "UNAUTHENTICATED",
                 message="refresh token was revoked")
    assert_error(refresh_grant(client, second["refresh_token"]), 401, "UNAUTHENTICATED")
    assert_error(refresh_grant(client, "kiln_rt_" + "0" * 43), 401, "UNAUTHENTICATED",
                 message="invalid refresh token")
    assert_error(refresh_grant(client, "not-a-token"), 401, "UNAUTHENTICATED",
                 message="invalid refresh token")


def test_api_key_grant_returns_the_key_itself(client, admin_client):
    key = new_key(admin_client, scopes=["read"])["key"]
    r = client.post(TOKEN, json={"api_key": key})
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.json() == {"access_token": key, "token_type": "Bearer"}, "no refresh token, no expiry"

    expires_at = int(time.time() * 1000) + 3600 * 1000
    expiring = new_key(admin_client, scopes=["read"], expires_at=expires_at)
    body = client.post(TOKEN, json={"api_key": expiring["key"]}).json()
    assert body["access_token"] == expiring["key"] and "refresh_token" not in body
    assert 3590 <= body["expires_in"] <= 3600, body

    assert_error(client.post(TOKEN, json={"api_key": "kiln_" + "0" * 43}), 401, "UNAUTHENTICATED",
                 message="invalid API key")
    assert_error(client.post(TOKEN, json={"api_key": "garbage"}), 401, "UNAUTHENTICATED")
    assert admin_client.delete(f"{KEYS}/{expiring['api_key']['id']}").status_code == 200
    assert_error(client.post(TOKEN, json={"api_key": expiring["key"]}), 401, "UNAUTHENTICATED",
                 message="API key revoked")


# ---- backoff (a dedicated server: the address counter is shared by every test) ---------


def test_failed_logins_back_off(ttl_server):
    srv = ttl_server
    admin = srv.client()
    admin.headers["Authorization"] = basic("admin", srv.admin_password)  # JWTs live 1 s here
    u = create_user(admin, srv, login=False)
    c = srv.client()
    bad = {"username": u.username, "password": "Wrong-Password-1"}
    good = {"username": u.username, "password": u.password}
    for _ in range(5):
        assert_error(c.post(TOKEN, json=bad), 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    fifth = time.monotonic()

    r = c.post(TOKEN, json=bad)
    assert_error(r, 429, "REQUEST_LIMIT_EXCEEDED")
    assert r.headers.get("Retry-After") == "1"
    # the right password is refused too while throttled, under any spelling of the login
    for login in (u.username, u.username.upper()):
        r = c.post(TOKEN, json={"username": login, "password": u.password})
        assert_error(r, 429, "REQUEST_LIMIT_EXCEEDED")
        assert r.headers.get("Retry-After") == "1"

    time.sleep(max(0.0, fifth + 1.05 - time.monotonic()))
    assert_error(c.post(TOKEN, json=bad), 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    r = c.post(TOKEN, json=good)
    assert_error(r, 429, "REQUEST_LIMIT_EXCEEDED")
    assert r.headers.get("Retry-After") == "2", "the wait doubles with each further failure"

    # every attempt is in the audit log, the throttled ones too; the target is
    # the account's id (never the typed text, which could be a password)
    logins = [e for e in audit_entries(admin, action="auth.login", max_results=1000)
              if e["target"] == u.id and e["outcome"] != "success"]
    assert [e["outcome"] for e in logins] == ["throttled", "failure", "throttled", "throttled",
                                               "throttled"] + ["failure"] * 5, logins

    # Basic credentials go through the same backoff, and the 429 says when to retry
    r = whoami(c, {"Authorization": basic(u.username, u.password)})
    assert_error(r, 429, "REQUEST_LIMIT_EXCEEDED")
    assert r.headers.get("Retry-After") == "2", dict(r.headers)


def test_one_address_is_throttled_after_20_failures(make_server):
    """Failures spread over many accounts still add up per client address: after
    20 from 127.0.0.1, even the right password for another account waits."""
    srv = make_server()
    c = srv.client()

    def fail(i: int):
        return password_grant(srv.client(), f"nobody-{i}", "Wrong-Password-5")
    for pair in range(10):
        for r in parallel(lambda: fail(2 * pair), lambda: fail(2 * pair + 1)):
            assert_error(r, 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    r = password_grant(c, "admin", srv.admin_password)
    assert_error(r, 429, "REQUEST_LIMIT_EXCEEDED")
    assert r.headers.get("Retry-After") == "1"


# ---- logout ------------------------------------------------------------------------------


def test_logout_revokes_the_family(server, client):
    tokens = server.login("admin", server.admin_password)
    newer = refresh_grant(client, tokens["refresh_token"]).json()
    r = client.post(LOGOUT, json={"refresh_token": newer["refresh_token"]})
    assert r.status_code == 200 and r.json() == {}
    assert_error(refresh_grant(client, newer["refresh_token"]), 401, "UNAUTHENTICATED",
                 message="refresh token was revoked")
    # idempotent: the same token again, an unknown one, one that cannot be ours
    for t in (newer["refresh_token"], tokens["refresh_token"], "kiln_rt_" + "1" * 43, "nope"):
        r = client.post(LOGOUT, json={"refresh_token": t})
        assert r.status_code == 200 and r.json() == {}, (t, r.text)
    assert_error(client.post(LOGOUT, json={}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(client.post(LOGOUT, json={"refresh_token": 7}), 400, "INVALID_PARAMETER_VALUE")


# ---- whoami --------------------------------------------------------------------------


def test_whoami_with_each_kind_of_credential(server, client, admin_client, admin_token):
    me = whoami(client, bearer(admin_token))
    assert me.status_code == 200
    admin_user = me.json()["user"]
    assert admin_user["username"] == "admin" and admin_user["is_admin"] is True
    assert ID_RE.fullmatch(admin_user["id"]) and ID_RE.fullmatch(admin_user["default_project_id"])
    assert me.json()["auth"] == {"kind": "jwt", "scopes": ALL_SCOPES}

    k = new_key(admin_client, scopes=["read", "predict"])
    for headers in (bearer(k["key"]), {"X-API-Key": k["key"]},
                    {"Authorization": f"bearer {k['key']}"}):
        r = whoami(client, headers)
        assert r.status_code == 200, (headers, r.text)
        assert r.json()["user"]["id"] == admin_user["id"]
        assert r.json()["auth"] == {"kind": "api_key", "scopes": ["read", "predict"],
                                    "key_id": k["api_key"]["id"]}

    r = whoami(client, {"Authorization": basic("admin", server.admin_password)})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == admin_user["id"]
    assert r.json()["auth"] == {"kind": "basic", "scopes": ALL_SCOPES}


def test_whoami_refuses_missing_and_bad_credentials(client, admin_token):
    assert_unauthenticated(whoami(client), contains="authentication required")
    head, claims, sig = admin_token.split(".")
    tampered = ".".join([head, claims, ("A" if sig[0] != "A" else "B") + sig[1:]])
    none_alg = ".".join([base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("="),
                         claims, ""])
    cases = [
        ({"Authorization": "Bearer garbage"}, "invalid access token"),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": f"Bearer {tampered}"}, "invalid access token: bad signature"),
        ({"Authorization": f"Bearer {none_alg}"}, "invalid access token"),
        ({"Authorization": "Bearer kiln_rt_" + "2" * 43}, "invalid access token"),  # not an access token
        ({"Authorization": "Bearer kiln_" + "3" * 43}, "invalid API key"),
        ({"X-API-Key": "kiln_short"}, "invalid API key"),
        ({"Authorization": "Basic %%%"}, "malformed Basic credentials"),
        ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
         "malformed Basic credentials"),
        ({"Authorization": "Digest username=admin"}, "unsupported Authorization scheme"),
    ]
    for headers, contains in cases:
        r = whoami(client, headers)
        assert_unauthenticated(r, contains=contains)


def test_basic_auth_with_a_wrong_password_is_refused(client):
    r = whoami(client, {"Authorization": basic("admin", "Not-The-Password-2")})
    assert_unauthenticated(r, contains=BAD_LOGIN)


def test_an_expired_access_token_is_refused(ttl_server, admin_token):
    srv = ttl_server
    tokens = srv.login("admin", srv.admin_password)
    assert tokens["expires_in"] == 1
    time.sleep(2.0)
    c = srv.client()
    assert_unauthenticated(whoami(c, bearer(tokens["access_token"])),
                           contains="access token has expired")
    # the refresh token outlives it
    assert refresh_grant(c, tokens["refresh_token"]).status_code == 200
    # a token signed by another server's key means nothing here
    assert_unauthenticated(whoami(c, bearer(admin_token)),
                           contains="invalid access token: unknown or retired signing key")


# ---- POST /api/v1/auth/password ------------------------------------------------------


def test_password_change(server, client, make_user):
    u = make_user()
    c = u.client()
    key = new_key(c)["key"]
    r = client.post(PASSWORD, json={"old_password": u.password, "new_password": strong_password()},
                    headers=bearer(key))
    assert_error(r, 403, "PERMISSION_DENIED", contains="an API key cannot change")
    assert_error(c.post(PASSWORD, json={"old_password": u.password}), 400,
                 "INVALID_PARAMETER_VALUE")

    new_password = strong_password()
    register_secret(new_password)
    wrong, weak = parallel(
        lambda: u.client().post(PASSWORD, json={"old_password": "Wrong-Old-Password-1",
                                                "new_password": new_password}),
        lambda: u.client().post(PASSWORD, json={"old_password": u.password,
                                                "new_password": "Sh0rt-pw"}))
    assert_error(wrong, 401, "UNAUTHENTICATED", message="the current password is incorrect")
    assert_error(weak, 400, "INVALID_PARAMETER_VALUE",
                 message="password must be at least 10 characters")

    r = c.post(PASSWORD, json={"old_password": u.password, "new_password": new_password})
    assert r.status_code == 200 and r.json() == {}, r.text
    old, new = parallel(lambda: password_grant(server.client(), u.username, u.password),
                        lambda: password_grant(server.client(), u.username, new_password))
    assert_error(old, 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    assert new.status_code == 200, new.text
    register_secret(new.json()["access_token"], new.json()["refresh_token"])
    assert_error(refresh_grant(client, u.refresh_token), 401, "UNAUTHENTICATED",
                 message="refresh token was revoked")
    me = whoami(client, bearer(new.json()["access_token"])).json()
    assert me["user"]["must_change_password"] is False


# ---- API keys ------------------------------------------------------------------------


def test_api_key_is_shown_once(client, alice):
    c = alice.client()
    out = new_key(c, name="laptop")
    key, meta = out["key"], out["api_key"]
    assert KEY_RE.fullmatch(key) and len(key) == 48
    assert ID_RE.fullmatch(meta["id"])
    assert meta["prefix"] == key[:12] and meta["name"] == "laptop"
    assert meta["scopes"] == DEFAULT_SCOPES
    for absent in ("last_used_at", "revoked_at", "expires_at", "project_id", "grace_until"):
        assert absent not in meta, meta

    r = c.get(KEYS)
    assert key not in r.text, "the list never shows the key"
    listed = {k["id"]: k for k in r.json()["api_keys"]}[meta["id"]]
    assert "key" not in listed and listed["prefix"] == meta["prefix"]
    assert "last_used_at" not in listed

    assert whoami(client, bearer(key)).status_code == 200
    used = listed_keys(c)[meta["id"]]
    assert used["last_used_at"] >= used["created_at"]


def test_api_key_scopes_bound_what_it_can_do(client, admin_client, alice):
    c = alice.client()
    read_only = new_key(c, scopes=["read"])["key"]
    assert client.get(KEYS, headers=bearer(read_only)).status_code == 200
    r = client.post(KEYS, json={"name": "x"}, headers=bearer(read_only))
    assert_error(r, 403, "PERMISSION_DENIED")

    rw = new_key(c, scopes=["read", "write"])["key"]
    r = client.post(KEYS, json={"name": "x", "scopes": ["read", "write", "admin"]},
                    headers=bearer(rw))
    assert_error(r, 403, "PERMISSION_DENIED",
                 message="a key cannot create a key with scopes it does not have")
    r = client.post(KEYS, json={"name": "x"}, headers=bearer(rw))  # default adds predict
    assert_error(r, 403, "PERMISSION_DENIED")
    weaker = client.post(KEYS, json={"name": "weaker", "scopes": ["read"]}, headers=bearer(rw))
    assert weaker.status_code == 200, weaker.text
    register_secret(weaker.json()["key"])
    assert weaker.json()["api_key"]["scopes"] == ["read"]

    # an admin scope on a non-admin's key opens no admin route...
    adm = new_key(c, scopes=ALL_SCOPES)["key"]
    assert_error(client.get(AUDIT, headers=bearer(adm)), 403, "PERMISSION_DENIED",
                 message="server administrators only")
    # ...and an administrator's key without the admin scope opens none either
    admins_reader = new_key(admin_client, scopes=["read", "write"])["key"]
    assert_error(client.get(AUDIT, headers=bearer(admins_reader)), 403, "PERMISSION_DENIED",
                 message="the credential lacks the scope this needs")
    assert_error(client.post(USERS, json={"username": unique_name(), "password": strong_password()},
                             headers=bearer(admins_reader)), 403, "PERMISSION_DENIED")


def test_api_key_revoke(client, admin_client, alice):
    c = alice.client()
    k = new_key(c)
    kid = k["api_key"]["id"]
    theirs = new_key(admin_client)["api_key"]["id"]
    # another user's key does not exist for alice
    assert_error(c.delete(f"{KEYS}/{theirs}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(c.post(f"{KEYS}/{theirs}/rotate", json={}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "revoked_at" not in listed_keys(admin_client)[theirs]
    for unknown in ("0" * 32, "nope", "f" * 40):
        assert_error(c.delete(f"{KEYS}/{unknown}"), 404, "RESOURCE_DOES_NOT_EXIST")
        assert_error(c.post(f"{KEYS}/{unknown}/rotate", json={}), 404, "RESOURCE_DOES_NOT_EXIST")

    assert whoami(client, bearer(k["key"])).status_code == 200
    r = c.delete(f"{KEYS}/{kid}")
    assert r.status_code == 200 and r.json() == {}
    assert_unauthenticated(whoami(client, bearer(k["key"])), contains="API key revoked")
    assert_unauthenticated(whoami(client, {"X-API-Key": k["key"]}), contains="API key revoked")
    assert listed_keys(c)[kid]["revoked_at"] > 0
    assert c.delete(f"{KEYS}/{kid}").status_code == 200, "revoking twice is harmless"
    # a server administrator may revoke anyone's key
    other = new_key(c)
    assert admin_client.delete(f"{KEYS}/{other['api_key']['id']}").status_code == 200
    assert_unauthenticated(whoami(client, bearer(other["key"])))


def test_api_key_rotate(client, alice):
    c = alice.client()
    first = new_key(c, scopes=["read", "predict"], name="rotating")
    second = rotate(c, first["api_key"]["id"], grace_seconds=60)
    assert second["key"] != first["key"] and KEY_RE.fullmatch(second["key"])
    assert second["api_key"]["id"] != first["api_key"]["id"]
    assert second["api_key"]["name"] == "rotating"
    assert second["api_key"]["scopes"] == ["read", "predict"]
    for key in (first["key"], second["key"]):
        assert whoami(client, bearer(key)).status_code == 200, "both work within the grace period"
    old = listed_keys(c)[first["api_key"]["id"]]
    assert old["grace_until"] - old["revoked_at"] == 60_000

    third = rotate(c, second["api_key"]["id"], grace_seconds=0)
    assert_unauthenticated(whoami(client, bearer(second["key"])), contains="API key revoked")
    assert whoami(client, bearer(third["key"])).status_code == 200
    assert whoami(client, bearer(first["key"])).status_code == 200, "its own grace still runs"

    # a rotated key cannot be rotated again; the grace period is bounded
    assert_error(c.post(f"{KEYS}/{first['api_key']['id']}/rotate", json={}), 409, "CONFLICT")
    for grace in (-1, 30 * 86400 + 1):
        assert_error(c.post(f"{KEYS}/{third['api_key']['id']}/rotate",
                            json={"grace_seconds": grace}), 400, "INVALID_PARAMETER_VALUE")
    # no body: the default grace of an hour
    fourth = rotate(c, third["api_key"]["id"])
    prev = listed_keys(c)[third["api_key"]["id"]]
    assert prev["grace_until"] - prev["revoked_at"] == 3600_000
    assert whoami(client, bearer(fourth["key"])).status_code == 200


def test_api_key_requests_are_validated(client, admin_client, alice):
    c = alice.client()
    for body, contains in (
        ({"name": "x", "scopes": ["superuser"]}, "unknown scope 'superuser'"),
        ({"name": "x", "scopes": []}, "scopes must be a non-empty array"),
        ({"name": "x", "scopes": "read"}, "scopes must be a non-empty array"),
        ({"name": "x", "scopes": [1]}, "scopes must be strings"),
        ({"scopes": ["read"]}, None),
        ({"name": ""}, "an API key needs a name"),
        ({"name": "x", "expires_at": 1000}, "expires_at must be in the future"),
    ):
        assert_error(c.post(KEYS, json=body), 400, "INVALID_PARAMETER_VALUE", contains=contains)

    # a project: one's own works; someone else's does not exist for you
    mine = whoami(c).json()["user"]["default_project_id"]
    theirs = whoami(admin_client).json()["user"]["default_project_id"]
    restricted = new_key(c, scopes=["read"], project_id=mine)
    assert restricted["api_key"]["project_id"] == mine
    auth = whoami(client, bearer(restricted["key"])).json()["auth"]
    assert auth["project_id"] == mine and auth["kind"] == "api_key"
    assert_error(c.post(KEYS, json={"name": "x", "project_id": theirs}), 404,
                 "RESOURCE_DOES_NOT_EXIST")


# ---- users (administrators) ------------------------------------------------------------


def test_admin_creates_and_resets_users(server, client, admin_client, alice):
    name = unique_name("bob")
    pw = strong_password()
    register_secret(pw)
    r = admin_client.post(USERS, json={"username": name.upper(), "password": pw,
                                       "email": f"{name}@example.org"})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["username"] == name, "usernames are stored lower case"
    assert ID_RE.fullmatch(user["id"]) and ID_RE.fullmatch(user["default_project_id"])
    assert user["is_admin"] is False and user["must_change_password"] is False
    assert user["email"] == f"{name}@example.org"

    dup, login = parallel(
        lambda: server.client(token=server.admin_token()).post(
            USERS, json={"username": name, "password": strong_password()}),
        lambda: password_grant(server.client(), name, pw))
    assert_error(dup, 400, "RESOURCE_ALREADY_EXISTS", message=f"username '{name}' is already taken")
    assert login.status_code == 200, login.text
    tokens = login.json()
    register_secret(tokens["access_token"], tokens["refresh_token"])
    me = whoami(client, bearer(tokens["access_token"])).json()
    assert me["user"]["id"] == user["id"]
    assert me["user"]["default_project_id"] == user["default_project_id"]
    assert me["user"]["is_admin"] is False

    for body, contains in (
        ({"username": unique_name(), "password": "abcdefghijkl"}, "must mix at least 2 of"),
        ({"username": unique_name(), "password": "Sh0rt-pw"}, "at least 10 characters"),
        ({"username": "-bad", "password": strong_password()}, "must start with a letter or digit"),
        ({"username": unique_name(), "password": strong_password(), "email": "no-at-sign"},
         "exactly one '@'"),
        ({"username": unique_name()}, None),
        ({"username": unique_name(), "password": strong_password(), "is_admin": "yes"},
         "is_admin must be a boolean"),
    ):
        assert_error(admin_client.post(USERS, json=body), 400, "INVALID_PARAMETER_VALUE",
                     contains=contains)

    # only server administrators
    body = {"username": unique_name(), "password": strong_password()}
    assert_error(alice.client().post(USERS, json=body), 403, "PERMISSION_DENIED",
                 message="server administrators only")
    assert_unauthenticated(client.post(USERS, json=body))
    reset = f"{USERS}/{user['id']}/password"
    assert_error(alice.client().post(reset, json={"new_password": strong_password()}), 403,
                 "PERMISSION_DENIED")
    assert_unauthenticated(client.post(reset, json={"new_password": strong_password()}))
    assert_error(admin_client.post(f"{USERS}/{'0' * 32}/password",
                                   json={"new_password": strong_password()}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(admin_client.post(reset, json={"new_password": "Sh0rt-pw"}), 400,
                 "INVALID_PARAMETER_VALUE", message="password must be at least 10 characters")
    assert_error(admin_client.post(reset, json={}), 400, "INVALID_PARAMETER_VALUE")

    # the reset: the old password stops working, the new one must be changed
    new_pw = strong_password()
    register_secret(new_pw)
    r = admin_client.post(reset, json={"new_password": new_pw})
    assert r.status_code == 200 and r.json() == {}, r.text
    old, new = parallel(lambda: password_grant(server.client(), name, pw),
                        lambda: password_grant(server.client(), name, new_pw))
    assert_error(old, 401, "UNAUTHENTICATED", message=BAD_LOGIN)
    assert new.status_code == 200, new.text
    register_secret(new.json()["access_token"], new.json()["refresh_token"])
    me = whoami(client, bearer(new.json()["access_token"])).json()
    assert me["user"]["must_change_password"] is True
    assert_error(refresh_grant(client, tokens["refresh_token"]), 401, "UNAUTHENTICATED",
                 message="refresh token was revoked")


# ---- the audit log -------------------------------------------------------------------


def test_audit_log(server, client, admin_client, admin_token, alice):
    admin_id = whoami(admin_client).json()["user"]["id"]
    stranger = unique_name("stranger")
    fail = password_grant(client, stranger, "Wrong-Password-3")
    assert fail.status_code == 401
    key = new_key(admin_client, name="audited")
    key_id = key["api_key"]["id"]

    entries = audit_entries(admin_client)
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs), "newest first"
    assert len(entries) <= 100, "the default page is 100"
    created = [e for e in entries if e["action"] == "key.create" and e["target"] == key_id]
    assert len(created) == 1, entries[:5]
    assert created[0]["actor"] == admin_id and created[0]["outcome"] == "success"
    assert created[0]["detail"]["name"] == "audited"
    # an unknown account is not named: what was typed could be a password
    failed = [e for e in entries if e["action"] == "auth.login"
              and e["request_id"] == fail.headers["X-Request-Id"]]
    assert len(failed) == 1 and failed[0]["target"] is None
    assert not any(stranger in json.dumps(e) for e in entries)
    assert failed[0]["outcome"] == "failure" and failed[0]["actor"] is None
    assert failed[0]["client_addr"] == "127.0.0.1"
    assert failed[0]["request_id"] == fail.headers["X-Request-Id"]
    assert failed[0]["seq"] < created[0]["seq"]

    logins = audit_entries(admin_client, action="auth.login")
    assert logins and all(e["action"] == "auth.login" for e in logins)
    assert any(e["outcome"] == "success" and e["actor"] == admin_id for e in logins)
    assert any(e["outcome"] == "failure" and e["target"] is None for e in logins)

    by_admin = audit_entries(admin_client, actor=admin_id)
    assert by_admin and all(e["actor"] == admin_id for e in by_admin)
    assert any(e["action"] == "key.create" and e["target"] == key_id for e in by_admin)
    both = audit_entries(admin_client, actor=admin_id, action="key.create")
    assert both and all(e["actor"] == admin_id and e["action"] == "key.create" for e in both)
    assert audit_entries(admin_client, actor=alice.id, action="no.such.action") == []
    future = int(time.time() * 1000) + 3600_000
    assert audit_entries(admin_client, since=future) == []
    assert audit_entries(admin_client, until=1) == []

    # paging: pages of 2, disjoint, in order, matching the unpaged list
    seen, token = [], None
    for _ in range(3):
        params = {"max_results": 2}
        if token:
            params["page_token"] = token
        r = admin_client.get(AUDIT, params=params)
        assert r.status_code == 200
        page = r.json()["entries"]
        assert len(page) == 2
        seen += [e["seq"] for e in page]
        token = r.json()["next_page_token"]
    assert len(set(seen)) == 6 and seen == sorted(seen, reverse=True)
    assert seen == [e["seq"] for e in audit_entries(admin_client, max_results=6)]
    last = audit_entries(admin_client, actor=admin_id, action="key.create", max_results=1000)
    r = admin_client.get(AUDIT, params={"actor": admin_id, "action": "key.create",
                                        "max_results": len(last)})
    assert "next_page_token" not in r.json(), "no token after the last page"

    # administrators only; bad parameters
    assert_error(alice.client().get(AUDIT), 403, "PERMISSION_DENIED")
    assert_unauthenticated(client.get(AUDIT))
    for params in ({"max_results": 0}, {"max_results": 1001}, {"max_results": "x"},
                   {"page_token": "x"}, {"page_token": 0}, {"since": "yesterday"},
                   {"until": "x"}):
        assert_error(admin_client.get(AUDIT, params=params), 400, "INVALID_PARAMETER_VALUE")


def test_key_lifecycle_is_audited(admin_client):
    admin_id = whoami(admin_client).json()["user"]["id"]
    k = new_key(admin_client)
    kid = k["api_key"]["id"]
    rotated = rotate(admin_client, kid, grace_seconds=0)
    assert admin_client.delete(f"{KEYS}/{rotated['api_key']['id']}").status_code == 200
    entries = audit_entries(admin_client, actor=admin_id, max_results=20)
    actions = [(e["action"], e["target"]) for e in entries]
    assert ("key.revoke", rotated["api_key"]["id"]) in actions
    assert ("key.rotate", kid) in actions
    assert ("key.create", kid) in actions
    assert actions.index(("key.revoke", rotated["api_key"]["id"])) < actions.index(("key.rotate", kid))


def test_no_secret_appears_in_the_audit_log_or_the_server_log(server, client, admin_client):
    """Runs every flow that handles a secret, then looks for each secret this
    session has seen (passwords, access and refresh tokens, API keys) in the
    whole audit log and the server's stderr."""
    tokens = server.login("admin", server.admin_password)
    rotated = refresh_grant(client, tokens["refresh_token"]).json()
    assert client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]}).status_code == 200
    wrong = strong_password()
    register_secret(wrong)
    assert password_grant(client, "admin", wrong).status_code == 401
    k = new_key(admin_client)
    rotate(admin_client, k["api_key"]["id"], grace_seconds=0)
    # rotated without grace: the old key is refused, and the refusal does not echo it
    assert_error(client.post(TOKEN, json={"api_key": k["key"]}), 401, "UNAUTHENTICATED",
                 message="API key revoked")

    audit_text = json.dumps(all_audit_entries(admin_client))
    log_text = server.log_text()
    assert len(SECRETS) >= 10
    leaked_audit = sorted(s for s in SECRETS if s in audit_text)
    leaked_log = sorted(s for s in SECRETS if s in log_text)
    assert not leaked_audit, f"secrets in the audit log: {leaked_audit}"
    assert not leaked_log, f"secrets in the server's log: {leaked_log}"


# ---- kiln admin audit-verify --------------------------------------------------------


def test_audit_verify_on_a_stopped_server(make_server):
    srv = make_server()
    tokens, fail = parallel(lambda: srv.login("admin", srv.admin_password),
                            lambda: password_grant(srv.client(), "admin", "Wrong-Password-4"))
    assert fail.status_code == 401
    new_key(srv.client(token=tokens["access_token"]))
    assert srv.stop() == 0

    out = run_kiln("admin", "audit-verify", "--data", str(srv.data_dir))
    assert out.returncode == 0, (out.stdout, out.stderr)
    m = re.search(r"^audit log intact: (\d+) entries$", out.stdout, re.M)
    assert m and int(m.group(1)) >= 3, out.stdout
    n = int(m.group(1))
    assert re.search(rf"^last entry: seq {n}, hash [0-9a-f]{{64}} ", out.stdout, re.M), out.stdout

    # and it does notice an edit
    db = sqlite3.connect(str(srv.data_dir / "kiln.db"))
    try:
        with db:
            seq = db.execute("SELECT seq FROM audit_log WHERE outcome = 'failure'").fetchone()[0]
            db.execute("UPDATE audit_log SET outcome = 'success' WHERE seq = ?", (seq,))
    finally:
        db.close()
    out = run_kiln("admin", "audit-verify", "--data", str(srv.data_dir))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert f"audit log BROKEN at entry {seq}: entry {seq} was edited" in out.stdout, out.stdout


def test_audit_entries_of_store_changes_carry_actor_address_and_request_id(make_user, admin_client):
    """Entries written inside a change's own transaction (key.create,
    key.revoke) name the caller, its address and the request id, and the
    actor is whoever acted: a key revoking itself is "key:<id>"."""
    u = make_user()
    c = u.client()
    rid = "audit-ctx-" + unique_name("r")
    r = c.post(KEYS, json={"name": "audited"}, headers={"X-Request-Id": rid})
    assert r.status_code == 200
    key, key_id = r.json()["key"], r.json()["api_key"]["id"]
    register_secret(key)
    rid2 = rid + "-revoke"
    r = c.delete(f"{KEYS}/{key_id}", headers={"X-Request-Id": rid2, "Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text

    def entry(action: str) -> Dict[str, Any]:
        rows = admin_client.get(AUDIT, params={"action": action, "max_results": 200}).json()["entries"]
        found = [e for e in rows if e.get("target") == key_id]
        assert len(found) == 1, (action, found)
        return found[0]

    created = entry("key.create")
    assert created["actor"] == u.id
    assert created["request_id"] == rid
    assert created["client_addr"] == "127.0.0.1"
    revoked = entry("key.revoke")
    assert revoked["actor"] == f"key:{key_id}"
    assert revoked["request_id"] == rid2
    assert revoked["client_addr"] == "127.0.0.1"


def test_signing_keys_are_sealed_with_the_master_key(make_server):
    """With KILN_MASTER_KEY the JWT signing secret is stored sealed
    (XChaCha20-Poly1305, bound to its kid); the server refuses to start
    without the key or with another one, and `kiln admin
    rotate-signing-key` seals the new key too."""
    key = "ab" * 32
    srv = make_server(env={"KILN_MASTER_KEY": key})
    tok = srv.login("admin", srv.admin_password)
    db = srv.data_dir / "kiln.db"

    def secrets() -> Dict[str, str]:
        con = sqlite3.connect(str(db))
        try:
            return dict(con.execute("SELECT kid, secret FROM signing_keys").fetchall())
        finally:
            con.close()

    first = secrets()
    assert len(first) == 1
    (kid, stored), = first.items()
    assert stored.startswith("x1:") and len(stored) == 3 + 2 * (24 + 32 + 16)
    c = srv.client(token=tok["access_token"])
    assert c.get(WHOAMI).status_code == 200
    c.close()
    srv.stop()

    # the offline rotation seals its key with the same master key
    out = run_kiln("admin", "rotate-signing-key", "--data", str(srv.data_dir), env={"KILN_MASTER_KEY": key})
    assert out.returncode == 0, out.stderr
    assert "sealed with the master key" in out.stdout
    after = secrets()
    assert len(after) == 2 and all(v.startswith("x1:") for v in after.values())

    # without the key, or with another one: a clear refusal at start, not a 500 per sign-in
    for env, why in (({}, "KILN_MASTER_KEY"), ({"KILN_MASTER_KEY": "cd" * 32}, "does not open")):
        bad = make_server(data_dir=srv.data_dir, env=env, start=False)
        bad.expected_exit = True
        p = subprocess.run(bad.command(), env=bad.child_env(), capture_output=True, text=True, timeout=30)
        assert p.returncode != 0
        assert why in p.stderr, p.stderr

    # a sealed secret copied onto another kid's row does not open there
    con = sqlite3.connect(str(db))
    try:
        rows = con.execute("SELECT kid, secret FROM signing_keys ORDER BY created_at DESC").fetchall()
        con.execute("UPDATE signing_keys SET secret = ? WHERE kid = ?", (rows[1][1], rows[0][0]))
        con.commit()
    finally:
        con.close()
    bad = make_server(data_dir=srv.data_dir, env={"KILN_MASTER_KEY": key}, start=False)
    bad.expected_exit = True
    p = subprocess.run(bad.command(), env=bad.child_env(), capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "does not open" in p.stderr

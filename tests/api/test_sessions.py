"""Browser sessions against real servers: the sign-in cookies and their
attributes, CSRF on cookie-authenticated state changes, sign-out, expiry,
revocation by a password change, HTTPS (the Secure attribute) and
self-signup (off by default, throttled per address when on).
"""

from __future__ import annotations

import subprocess
import time
from http.cookies import SimpleCookie
from typing import Dict, List, Tuple

import pytest
import requests

from kiln_harness import create_user, register_secret, scaled, strong_password, unique_name

SESSION = "/api/v1/auth/session"
SIGNUP = "/api/v1/auth/signup"
WHOAMI = "/api/v1/auth/whoami"
KEYS = "/api/v1/api-keys"
PASSWORD = "/api/v1/auth/password"


def set_cookies(r: requests.Response) -> Dict[str, Tuple[str, Dict[str, str]]]:
    """Every Set-Cookie of a response: name -> (value, {attribute: value})."""
    out: Dict[str, Tuple[str, Dict[str, str]]] = {}
    for raw in r.raw.headers.getlist("Set-Cookie"):
        parts = [p.strip() for p in raw.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            attrs[k.lower()] = v
        out[name] = (value, attrs)
    return out


def sign_in(server, username: str, password: str):
    """A fresh client (no Authorization header) signed in with cookies."""
    c = server.client()
    r = c.post(SESSION, json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    register_secret(body["csrf_token"], c.cookies.get("kiln_session"))
    return c, r, body


@pytest.fixture
def user(server, make_user):
    return make_user(login=False)


def test_sign_in_sets_httponly_session_and_readable_csrf_cookie(server, user):
    c, r, body = sign_in(server, user.username, user.password)
    cookies = set_cookies(r)
    assert set(cookies) == {"kiln_session", "kiln_csrf"}
    sval, sattrs = cookies["kiln_session"]
    cval, cattrs = cookies["kiln_csrf"]
    assert sval.startswith("kses_") and len(sval) == 5 + 43
    assert cval == body["csrf_token"] and cval.startswith("kcsrf_")
    assert "httponly" in sattrs and "httponly" not in cattrs  # the page must read only the CSRF one
    for attrs in (sattrs, cattrs):
        assert attrs["samesite"] == "Strict"
        assert attrs["path"] == "/"
        assert int(attrs["max-age"]) == 7 * 86400
        assert "secure" not in attrs  # plain HTTP here
    assert r.headers["Cache-Control"] == "no-store"
    assert body["user"]["id"] == user.id
    assert abs(body["expires_at"] - (time.time() + 7 * 86400) * 1000) < 60_000
    who = c.get(WHOAMI)
    assert who.status_code == 200
    assert who.json()["user"]["id"] == user.id
    assert who.json()["auth"]["kind"] == "session"
    c.close()


def test_cookie_post_without_csrf_token_is_refused(server, user):
    c, _, body = sign_in(server, user.username, user.password)
    before = c.get(KEYS).json()["api_keys"]
    r = c.post(KEYS, json={"name": "no-csrf"})
    assert r.status_code == 403
    assert r.json()["error_code"] == "PERMISSION_DENIED"
    assert "CSRF" in r.json()["message"]
    # a wrong token, and another session's token, are refused just the same
    r = c.post(KEYS, json={"name": "bad-csrf"}, headers={"X-CSRF-Token": "kcsrf_" + "A" * 43})
    assert r.status_code == 403
    other, _, other_body = sign_in(server, user.username, user.password)
    r = c.post(KEYS, json={"name": "foreign-csrf"}, headers={"X-CSRF-Token": other_body["csrf_token"]})
    assert r.status_code == 403
    r = c.delete(f"{KEYS}/{'0' * 32}")
    assert r.status_code == 403
    assert c.get(KEYS).json()["api_keys"] == before  # nothing was created
    # with the right token it goes through
    r = c.post(KEYS, json={"name": "with-csrf"}, headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 200, r.text
    register_secret(r.json()["key"])
    names = [k["name"] for k in c.get(KEYS).json()["api_keys"]]
    assert names.count("with-csrf") == 1 and "no-csrf" not in names
    c.close()
    other.close()


def test_explicit_credentials_win_over_the_cookie(server, user, make_user):
    c, _, _ = sign_in(server, user.username, user.password)
    other = make_user()
    # a bearer token needs no CSRF token, and it decides who is calling
    r = c.get(WHOAMI, headers={"Authorization": f"Bearer {other.access_token}"})
    assert r.json()["user"]["id"] == other.id and r.json()["auth"]["kind"] == "jwt"
    r = c.post(KEYS, json={"name": "bearer"}, headers={"Authorization": f"Bearer {other.access_token}"})
    assert r.status_code == 200
    register_secret(r.json()["key"])
    c.close()


def test_sign_in_needs_json_content_type(server, user):
    c = server.client()
    # what a cross-site form could send: refused before any password check
    r = c.post(SESSION, data=f'{{"username":"{user.username}","password":"{user.password}"}}',
               headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "kiln_session" not in c.cookies
    r = c.post(SESSION, json={"username": user.username, "password": "wrong-" + user.password})
    assert r.status_code == 401
    assert r.json()["message"] == "invalid username or password"
    assert not r.raw.headers.getlist("Set-Cookie")
    r = c.post(SESSION, json={"username": user.username})
    assert r.status_code == 400
    c.close()


def test_bad_session_cookie_is_401_with_www_authenticate(server):
    c = server.client()
    for value in ("kses_" + "x" * 43, "garbage", "kses_" + "0" * 43):
        c.cookies.set("kiln_session", value)
        r = c.get(WHOAMI)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # public routes ignore it
    assert c.get("/api/v1/server-info").status_code == 200
    c.close()


def test_sign_out_revokes_and_clears_cookies(server, user):
    c, _, body = sign_in(server, user.username, user.password)
    token = c.cookies.get("kiln_session")
    # sign-out changes state: without the CSRF token it is refused
    assert c.delete(SESSION).status_code == 403
    r = c.delete(SESSION, headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 200
    cleared = set_cookies(r)
    assert cleared["kiln_session"][0] == "" and cleared["kiln_session"][1]["max-age"] == "0"
    assert cleared["kiln_csrf"][0] == "" and cleared["kiln_csrf"][1]["max-age"] == "0"
    replay = server.client()
    replay.cookies.set("kiln_session", token)
    assert replay.get(WHOAMI).status_code == 401  # revoked on the server, not just forgotten
    replay.close()
    c.close()


def test_password_change_ends_sessions(server, user):
    c, _, body = sign_in(server, user.username, user.password)
    keep = server.client()
    keep.cookies.set("kiln_session", c.cookies.get("kiln_session"))
    new_pw = strong_password()
    register_secret(new_pw)
    r = c.post(PASSWORD, json={"old_password": user.password, "new_password": new_pw},
               headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 200, r.text
    assert keep.get(WHOAMI).status_code == 401
    user.password = new_pw
    c.close()
    keep.close()


def test_session_expires(make_server):
    srv = make_server(args=["--session-ttl", "1"])
    admin = srv.client()
    c, r, body = sign_in(srv, "admin", srv.admin_password)
    assert set_cookies(r)["kiln_session"][1]["max-age"] == "1"
    assert c.get(WHOAMI).status_code == 200
    time.sleep(scaled(1.3))
    assert c.get(WHOAMI).status_code == 401
    c.close()
    admin.close()


def test_audit_records_session_events(server, user, admin_client):
    c, _, body = sign_in(server, user.username, user.password)
    c.delete(SESSION, headers={"X-CSRF-Token": body["csrf_token"]})
    entries = admin_client.get("/api/v1/audit", params={"actor": user.id, "max_results": 50}).json()["entries"]
    actions = [e["action"] for e in entries]
    assert "session.create" in actions and "session.revoke" in actions
    text = str(entries)
    assert body["csrf_token"] not in text
    c.close()


# ---- HTTPS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_server_marks_cookies_secure(make_server, tls_files):
    cert, key = tls_files
    srv = make_server(args=["--tls-cert", str(cert), "--tls-key", str(key)], start=False)
    srv.verify = str(cert)
    srv.start()
    assert srv.url.startswith("https://")
    c, r, _ = sign_in(srv, "admin", srv.admin_password)
    for name, (_, attrs) in set_cookies(r).items():
        assert "secure" in attrs, name
    assert c.get(WHOAMI).json()["auth"]["kind"] == "session"
    # plain HTTP on the TLS port gets no answer that a client could mistake
    with pytest.raises(requests.RequestException):
        requests.get(srv.url.replace("https://", "http://") + "/healthz", timeout=3)
    c.close()


def test_tls_needs_both_files_and_valid_pem(make_server, tls_files, tmp_path):
    cert, key = tls_files
    srv = make_server(args=["--tls-cert", str(cert)], start=False)
    srv.expected_exit = True
    proc = subprocess.run(srv.command(), env=srv.child_env(), capture_output=True, timeout=30)
    assert proc.returncode != 0
    assert b"--tls-cert and --tls-key go together" in proc.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    srv = make_server(args=["--tls-cert", str(junk), "--tls-key", str(key)], start=False)
    srv.expected_exit = True
    proc = subprocess.run(srv.command(), env=srv.child_env(), capture_output=True, timeout=30)
    assert proc.returncode != 0
    assert b"HTTPS" in proc.stderr


# ---- self-signup ---------------------------------------------------------------------


def test_signup_is_off_by_default(client):
    r = client.post(SIGNUP, json={"username": unique_name(), "email": "x@example.com",
                                  "password": strong_password()})
    assert r.status_code == 403
    assert r.json()["error_code"] == "PERMISSION_DENIED"
    assert "--allow-signup" in r.json()["message"]


def test_signup_when_allowed_and_throttled_per_address(make_server):
    srv = make_server(args=["--allow-signup"])
    c = srv.client()
    r = c.post(SIGNUP, json={"username": unique_name(), "password": strong_password()})
    assert r.status_code == 400  # an email is required
    r = c.post(SIGNUP, json={"username": unique_name(), "email": "not-an-email", "password": strong_password()})
    assert r.status_code == 400
    made: List[Tuple[str, str]] = []
    # two attempts above count too: 5 free per address, then 1 s, 2 s, ...
    for i in range(3):
        name, pw = unique_name("signup"), strong_password()
        register_secret(pw)
        r = c.post(SIGNUP, json={"username": name, "email": f"{name}@example.com", "password": pw})
        assert r.status_code == 200, r.text
        u = r.json()["user"]
        assert u["username"] == name and u["is_admin"] is False and u.get("default_project_id")
        made.append((name, pw))
    r = c.post(SIGNUP, json={"username": unique_name(), "email": "late@example.com", "password": strong_password()})
    assert r.status_code == 429
    assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert r.headers["Retry-After"] == "1"
    # the new account signs in
    s, _, _ = sign_in(srv, made[0][0], made[0][1])
    assert s.get(WHOAMI).json()["user"]["username"] == made[0][0]
    s.close()
    c.close()

"""The client verbs of the kiln binary against a real server: login (the
credentials file, its mode, refresh rotation), whoami, keys, projects,
logout."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest


@pytest.fixture
def kiln(server, kiln_binary, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_CONFIG_DIR=str(tmp_path / "cfg"), KILN_URL=server.url)

    def run(*args, stdin=None, ok=True):
        p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True,
                           env=env, timeout=60)
        if ok:
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    run.creds = tmp_path / "cfg" / "credentials"
    run.env = env
    return run


def creds(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_login_whoami_keys_projects_logout(server, kiln):
    p = kiln("login", "--username", "admin", "--password-stdin", stdin=server.admin_password + "\n")
    assert "signed in to" in p.stdout and "as admin" in p.stdout
    assert stat.S_IMODE(kiln.creds.stat().st_mode) == 0o600
    first = creds(kiln.creds)
    assert first["url"] == server.url and first["refresh_token"].startswith("kiln_rt_")
    assert server.admin_password not in kiln.creds.read_text()

    me = json.loads(kiln("whoami").stdout)
    assert me["user"]["username"] == "admin" and me["auth"]["kind"] == "jwt"
    # every use rotates the refresh token, and the file keeps the new one
    assert creds(kiln.creds)["refresh_token"] != first["refresh_token"]

    created = json.loads(kiln("keys", "create", "--name", "cli", "--scopes", "read").stdout)
    key, key_id = created["key"], created["api_key"]["id"]
    assert created["api_key"]["scopes"] == ["read"]
    listed = json.loads(kiln("keys", "list").stdout)["api_keys"]
    assert key_id in [k["id"] for k in listed] and key not in json.dumps(listed)
    rotated = json.loads(kiln("keys", "rotate", key_id, "--grace", "0").stdout)
    assert rotated["key"] != key
    kiln("keys", "revoke", rotated["api_key"]["id"])
    assert server.client(token=rotated["key"]).get("/api/v1/auth/whoami").status_code == 401

    projects = json.loads(kiln("projects", "list").stdout)["projects"]
    # the admin's own org (a server admin lists every project)
    org = [p for p in projects if p["id"] == me["user"]["default_project_id"]][0]["org_id"]
    made = json.loads(kiln("projects", "create", "--org", org, "--name", "cli-made").stdout)["project"]
    assert made["name"] == "cli-made"
    members = json.loads(kiln("projects", "members", made["id"]).stdout)["members"]
    assert [m["username"] for m in members] == ["admin"]

    kiln("logout")
    p = kiln("whoami", ok=False)
    assert p.returncode == 1 and "kiln login" in p.stderr
    # the revoked family cannot be used again
    r = server.client().post("/api/v1/auth/token", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401


def test_wrong_password_and_api_key_login(server, kiln, admin_client):
    p = kiln("login", "--username", "admin", "--password-stdin", stdin="Wrong-Password-9\n", ok=False)
    assert p.returncode == 1 and "UNAUTHENTICATED (401)" in p.stderr
    assert not kiln.creds.exists()
    key = admin_client.post("/api/v1/api-keys", json={"name": "cli-key", "scopes": ["read"]}).json()["key"]
    kiln("login", "--api-key", key)
    assert creds(kiln.creds)["api_key"] == key
    me = json.loads(kiln("whoami").stdout)
    assert me["auth"]["kind"] == "api_key" and me["auth"]["scopes"] == ["read"]
    p = kiln("keys", "create", "--name", "stronger", ok=False)
    assert p.returncode == 1 and "PERMISSION_DENIED (403)" in p.stderr


def test_usage_errors_exit_2(kiln):
    assert kiln("keys", ok=False).returncode == 2
    assert kiln("projects", "create", ok=False).returncode == 2
    p = kiln("help", "login")
    assert "--password-stdin" in p.stdout and "0600" in p.stdout


def test_unreachable_server_is_a_clear_error(kiln):
    kiln.env["KILN_URL"] = "http://127.0.0.1:9"
    p = kiln("login", "--username", "admin", "--password-stdin", stdin="x\n", ok=False)
    assert p.returncode == 1 and "cannot reach http://127.0.0.1:9" in p.stderr


def test_signing_key_rotation_logs_nobody_out(server, kiln_binary, admin_token):
    import base64

    def kid(tok):
        head = tok.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]

    before = kid(admin_token)
    p = subprocess.run([kiln_binary, "admin", "rotate-signing-key", "--data", str(server.data_dir)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert server.client(token=admin_token).get("/api/v1/auth/whoami").status_code == 200
    fresh = server.login("admin", server.admin_password)["access_token"]
    assert kid(fresh) != before and kid(fresh) in p.stdout

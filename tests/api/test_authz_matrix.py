"""The authorization matrix, generated from the route table: every
non-public route in /api/openapi.json is called by every kind of caller, and
the central check must answer exactly as the rules say, before any handler
runs. A route added later joins the matrix by itself."""

from __future__ import annotations

import re

import pytest

DUMMY = "0" * 32  # an id no resource has


def operations(spec):
    for path, item in spec.doc["paths"].items():
        for method, op in item.items():
            perm = op["x-kiln-permission"]
            if perm != "public":
                yield method.upper(), path, perm, op.get("x-kiln-project")


def fill(path, project_id):
    """Path parameters: the caller's project where the route takes one,
    an id nobody has elsewhere."""
    return re.sub(r"\{(\w+)\}", lambda m: project_id if m.group(1) == "project_id" else DUMMY, path)


@pytest.fixture(scope="module")
def callers(server):
    admin = server.admin_client()
    from kiln_harness import create_user
    viewer_owner = create_user(admin, server)   # owns its personal org and default project
    stranger = create_user(admin, server)       # another tenant
    oc = viewer_owner.client()
    project = oc.get("/api/v1/projects").json()["projects"][0]["id"]
    other_project = stranger.client().get("/api/v1/projects").json()["projects"][0]["id"]

    def key(client, **body):
        r = client.post("/api/v1/api-keys", json={"name": "matrix", **body})
        assert r.status_code == 200, r.text
        return r.json()

    read_key = key(oc, scopes=["read"])["key"]
    other_key = key(stranger.client(), scopes=["read", "write", "predict", "admin"],
                    project_id=other_project)["key"]
    revoked = key(oc)
    assert oc.delete(f"/api/v1/api-keys/{revoked['api_key']['id']}").status_code == 200
    expired = key(oc)
    # expire it in the store: creation refuses a past expiry
    import sqlite3
    db = sqlite3.connect(str(server.data_dir / "kiln.db"))
    db.execute("UPDATE api_keys SET expires_at = 1 WHERE id = ?", (expired["api_key"]["id"],))
    db.commit()
    db.close()
    return {
        "anonymous": server.client(),
        "garbage": server.client(token="eyJhbGciOiJIUzI1NiJ9.e30.AAAA"),
        "revoked key": server.client(token=revoked["key"]),
        "expired key": server.client(token=expired["key"]),
        "read-only key": server.client(token=read_key),
        "other project's key": server.client(token=other_key),
        "user": oc,
        "project": project,
    }


def expected(caller, method, path, perm, project=None):
    """The central check's answer, or None where the handler decides.
    project "selected": the route acts in the caller's selected project (a
    restricted key's own one), not in a path parameter."""
    if caller in ("anonymous", "garbage", "revoked key", "expired key"):
        return 401
    takes_project = "{project_id}" in path
    if caller == "read-only key":
        return 403 if perm in ("write", "admin", "predict") else None
    if caller == "other project's key":
        if takes_project:
            return 404  # another tenant's project: existence is not revealed
        if project == "selected":
            return None  # the key acts in its own project
        return 403 if perm in ("write", "admin") else None
    if caller == "user":  # a plain user, admin of its own project only
        # admin routes acting in the selected project (registry governance,
        # approvals) pass for the admin of that project: the handler decides
        if perm == "admin" and not takes_project and project != "selected":
            return 403
        return None
    raise AssertionError(caller)


CALLERS = ["anonymous", "garbage", "revoked key", "expired key", "read-only key",
           "other project's key", "user"]


@pytest.mark.parametrize("caller", CALLERS)
def test_every_protected_route_answers_by_the_rules(server, callers, caller):
    spec = server.spec()
    ops = list(operations(spec))
    assert len(ops) >= 20, "the matrix must cover the route table"
    checked = 0
    for method, path, perm, project in ops:
        want = expected(caller, method, path, perm, project)
        if want is None:
            continue
        url = fill(path, callers["project"])
        r = callers[caller].request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert r.status_code == want, f"{caller}: {method} {path} ({perm}) -> {r.status_code} {r.text}"
        body = r.json()
        assert body["error_code"] == {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                                      404: "RESOURCE_DOES_NOT_EXIST"}[want]
        if want == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        checked += 1
    assert checked > 0

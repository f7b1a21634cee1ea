"""`kiln members` and `kiln invitations` against a real server: org and
project members by name, email or id, invitations from creation to
acceptance and revocation, usage errors and server errors as messages with
a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from kiln_harness import register_secret, scaled, unique_name


@pytest.fixture
def make_kiln(server, kiln_binary, tmp_path):
    """Factory: a `kiln` runner with its own credentials directory."""
    n = [0]

    def factory():
        n[0] += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        env.update(KILN_CONFIG_DIR=str(tmp_path / f"cfg{n[0]}"), KILN_URL=server.url)

        def run(*args, stdin=None, ok=True):
            p = subprocess.run([kiln_binary, *args], input=stdin, capture_output=True, text=True, env=env,
                               timeout=scaled(60))
            if ok:
                assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
            return p

        def login(user):
            run("login", "--username", user.username, "--password-stdin", stdin=user.password + "\n")
            return run

        run.login = login
        return run

    return factory


@pytest.fixture
def owner_org(make_user):
    """A user owning a fresh org; (user, org)."""
    owner = make_user()
    r = owner.client().post("/api/v1/orgs", json={"name": unique_name("cli-org")})
    assert r.status_code == 200, r.text
    return owner, r.json()["org"]


def out(p):
    return json.loads(p.stdout)


def test_members_of_an_org_and_a_project(make_kiln, owner_org, make_user):
    owner, org = owner_org
    bob = make_user(email=f"{unique_name('bob')}@example.com")
    kiln = make_kiln().login(owner)

    members = out(kiln("members", "list", "--org", org["name"]))["members"]
    assert [(m["username"], m["role"]) for m in members] == [(owner.username, "owner")]

    added = out(kiln("members", "add", "--org", org["name"], "--user", bob.username))
    assert (added["user_id"], added["role"]) == (bob.id, "member")
    p = kiln("members", "add", "--org", org["name"], "--user", bob.id, ok=False)
    assert p.returncode == 1 and "already a member" in p.stderr and "kiln members set" in p.stderr
    # by email, with the org given by id
    changed = out(kiln("members", "set", "--org", org["id"], "--user", bob.email, "--role", "admin"))
    assert (changed["username"], changed["role"]) == (bob.username, "admin")
    roles = {m["username"]: m["role"] for m in out(kiln("members", "list", "--org", org["id"]))["members"]}
    assert roles == {owner.username: "owner", bob.username: "admin"}

    stranger = make_user()
    p = kiln("members", "set", "--org", org["name"], "--user", stranger.username, "--role", "admin", ok=False)
    assert p.returncode == 1 and "not a member" in p.stderr and "kiln members add" in p.stderr
    p = kiln("members", "set", "--org", org["name"], "--user", owner.username, "--role", "member", ok=False)
    assert p.returncode == 1 and "CONFLICT (409)" in p.stderr and "owner" in p.stderr
    p = kiln("members", "add", "--org", org["name"], "--user", "nobody-" + unique_name(), ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr

    proj = owner.client().post("/api/v1/projects", json={"org_id": org["id"], "name": "cli-proj"}).json()["project"]
    got = out(kiln("members", "add", "--project", proj["id"], "--user", bob.username, "--role", "editor"))
    assert got["role"] == "editor"
    got = out(kiln("members", "set", "--project", proj["id"], "--user", bob.username, "--role", "viewer"))
    assert got["role"] == "viewer"
    listed = out(kiln("members", "list", "--project", proj["id"]))["members"]
    assert {m["username"]: m["role"] for m in listed}[bob.username] == "viewer"
    assert out(kiln("members", "remove", "--project", proj["id"], "--user", bob.username)) == {}
    assert bob.username not in [m["username"] for m in out(kiln("members", "list", "--project", proj["id"]))["members"]]

    assert out(kiln("members", "remove", "--org", org["name"], "--user", bob.username)) == {}
    p = kiln("members", "remove", "--org", org["name"], "--user", bob.username, ok=False)
    assert p.returncode == 1 and "RESOURCE_DOES_NOT_EXIST (404)" in p.stderr

    p = kiln("members", "list", "--org", "no-such-org-" + org["id"][:6], ok=False)
    assert p.returncode == 1 and "no organization named" in p.stderr


def test_invitations_from_creation_to_acceptance(make_kiln, owner_org, make_user):
    owner, org = owner_org
    kiln = make_kiln().login(owner)
    p = kiln("invitations", "create", "--org", org["name"], "--email", "Carol@Example.com", "--role", "admin")
    made = out(p)
    register_secret(made["token"])
    # no SMTP on the shared server: the link comes back, and stderr says so
    assert made["delivery"] == "link" and made["link"] in p.stderr and "carol@example.com" in p.stderr.lower()
    assert made["invitation"]["email"] == "carol@example.com" and made["invitation"]["role"] == "admin"

    proj = owner.client().post("/api/v1/projects", json={"org_id": org["id"], "name": "inv-cli"}).json()["project"]
    to_project = out(kiln("invitations", "create", "--org", org["id"], "--email", "dan@example.com",
                          "--project", proj["id"], "--ttl", "7200"))
    register_secret(to_project["token"])
    inv = to_project["invitation"]
    assert (inv["role"], inv["project_id"], inv["expires_at"] - inv["created_at"]) == ("viewer", proj["id"], 7200_000)

    listed = out(kiln("invitations", "list", "--org", org["name"]))["invitations"]
    assert [(i["email"], i["status"]) for i in listed] == [("dan@example.com", "pending"),
                                                           ("carol@example.com", "pending")]
    assert out(kiln("invitations", "revoke", "--org", org["name"], inv["id"])) == {}
    assert [i["id"] for i in out(kiln("invitations", "list", "--org", org["name"], "--status", "revoked"))
            ["invitations"]] == [inv["id"]]

    carol = make_user()
    ck = make_kiln().login(carol)
    accepted = out(ck("invitations", "accept", made["link"]))
    assert accepted["invitation"]["org_id"] == org["id"]
    assert {m["username"]: m["role"] for m in out(ck("members", "list", "--org", org["id"]))["members"]}[
        carol.username] == "admin"
    p = ck("invitations", "accept", to_project["token"], ok=False)
    assert p.returncode == 1 and "revoked" in p.stderr
    statuses = {i["email"]: i["status"] for i in out(kiln("invitations", "list", "--org", org["name"]))["invitations"]}
    assert statuses == {"carol@example.com": "accepted", "dan@example.com": "revoked"}

    # a plain member may not manage invitations: the server's answer, exit 1
    dave = make_user()
    assert owner.client().put(f"/api/v1/orgs/{org['id']}/members/{dave.id}", json={"role": "member"}).status_code == 200
    dk = make_kiln().login(dave)
    p = dk("invitations", "list", "--org", org["name"], ok=False)
    assert p.returncode == 1 and "PERMISSION_DENIED (403)" in p.stderr
    p = dk("invitations", "create", "--org", org["name"], "--email", "e@example.com", ok=False)
    assert p.returncode == 1 and "PERMISSION_DENIED (403)" in p.stderr


@pytest.mark.parametrize("args", [
    ("members",),
    ("members", "grant"),
    ("members", "list"),
    ("members", "list", "--org", "a", "--project", "b"),
    ("members", "add", "--org", "a"),
    ("members", "set", "--org", "a", "--user", "bob"),
    ("members", "list", "--org", "a", "--colour", "red"),
    ("members", "list", "--org"),
    ("members", "remove", "--org", "a", "--user", "../../api-keys"),
    ("invitations",),
    ("invitations", "create", "--org", "a"),
    ("invitations", "create", "--org", "a", "--email", "x@example.com", "--ttl", "soon"),
    ("invitations", "list"),
    ("invitations", "revoke", "--org", "a"),
    ("invitations", "accept"),
])
def test_usage_errors_exit_2_before_any_request(make_kiln, args):
    kiln = make_kiln()  # not signed in: a usage error must not get as far as asking for credentials
    p = kiln(*args, ok=False)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert "usage: kiln" in p.stderr or "character" in p.stderr
    assert "kiln login" not in p.stderr


def test_help_and_not_signed_in(make_kiln):
    kiln = make_kiln()
    h = kiln("help", "members").stdout
    assert all(w in h for w in ("--org", "--project", "--user", "--role", "viewer", "owner"))
    h = kiln("help", "invitations").stdout
    assert all(w in h for w in ("--email", "--ttl", "--status", "revoke", "accept", "SMTP"))
    p = kiln("members", "list", "--org", "acme", ok=False)
    assert p.returncode == 1 and "kiln login" in p.stderr

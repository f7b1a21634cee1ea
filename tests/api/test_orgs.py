"""Organizations, projects, memberships and invitations over HTTP: who may do
what, and what each answer says."""

from __future__ import annotations

import pytest


def err(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error_code"] == code, r.text


@pytest.fixture
def team(server, make_user):
    """owner (creates org 'acme-N'), member (plain org member), outsider."""
    owner, member, outsider = make_user(), make_user(), make_user()
    oc = owner.client()
    r = oc.post("/api/v1/orgs", json={"name": f"acme-{owner.id[:8]}", "display_name": "Acme"})
    assert r.status_code == 200, r.text
    org = r.json()["org"]
    assert oc.put(f"/api/v1/orgs/{org['id']}/members/{member.id}", json={"role": "member"}).status_code == 200
    return {"owner": owner, "member": member, "outsider": outsider, "org": org}


def test_a_new_user_has_a_personal_org_and_default_project(make_user):
    u = make_user()
    c = u.client()
    orgs = c.get("/api/v1/orgs").json()["orgs"]
    assert [(o["name"], o["role"]) for o in orgs] == [(u.username, "owner")]
    projects = c.get("/api/v1/projects").json()["projects"]
    assert [(p["name"], p["role"], p["org_id"]) for p in projects] == [("default", "admin", orgs[0]["id"])]
    me = c.get("/api/v1/auth/whoami").json()["user"]
    assert me["default_project_id"] == projects[0]["id"]


def test_org_creation_rules(make_user, client):
    u = make_user()
    c = u.client()
    name = f"team-{u.id[:10]}"
    assert c.post("/api/v1/orgs", json={"name": name}).status_code == 200
    err(c.post("/api/v1/orgs", json={"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    err(c.post("/api/v1/orgs", json={"name": "Bad Name"}), 400, "INVALID_PARAMETER_VALUE")
    err(c.post("/api/v1/orgs", json={}), 400, "INVALID_PARAMETER_VALUE")
    err(client.post("/api/v1/orgs", json={"name": "anon-org"}), 401, "UNAUTHENTICATED")
    # a read-only key cannot create orgs
    key = c.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["read"]}).json()["key"]
    kc = u.server.client(token=key)
    err(kc.post("/api/v1/orgs", json={"name": f"ro-{u.id[:8]}"}), 403, "PERMISSION_DENIED")
    assert kc.get("/api/v1/orgs").status_code == 200


def test_org_members_roles_and_the_last_owner(team):
    org, owner, member, outsider = team["org"], team["owner"], team["member"], team["outsider"]
    oc, mc, xc = owner.client(), member.client(), outsider.client()
    members = {m["username"]: m["role"] for m in oc.get(f"/api/v1/orgs/{org['id']}/members").json()["members"]}
    assert members == {owner.username: "owner", member.username: "member"}
    assert mc.get(f"/api/v1/orgs/{org['id']}/members").status_code == 200
    # outsiders learn nothing: 404, as for an org that does not exist
    err(xc.get(f"/api/v1/orgs/{org['id']}/members"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(xc.get(f"/api/v1/orgs/{'0' * 32}/members"), 404, "RESOURCE_DOES_NOT_EXIST")
    # plain members cannot manage members
    err(mc.put(f"/api/v1/orgs/{org['id']}/members/{outsider.id}", json={"role": "member"}), 403, "PERMISSION_DENIED")
    err(oc.put(f"/api/v1/orgs/{org['id']}/members/{outsider.id}", json={"role": "king"}), 400,
        "INVALID_PARAMETER_VALUE")
    # an admin may not make owners; an owner may
    assert oc.put(f"/api/v1/orgs/{org['id']}/members/{member.id}", json={"role": "admin"}).status_code == 200
    err(mc.put(f"/api/v1/orgs/{org['id']}/members/{outsider.id}", json={"role": "owner"}), 403, "PERMISSION_DENIED")
    # the last owner stays
    err(oc.delete(f"/api/v1/orgs/{org['id']}/members/{owner.id}"), 409, "CONFLICT")
    err(oc.put(f"/api/v1/orgs/{org['id']}/members/{owner.id}", json={"role": "member"}), 409, "CONFLICT")
    assert mc.delete(f"/api/v1/orgs/{org['id']}/members/{member.id}").status_code == 200
    err(mc.get(f"/api/v1/orgs/{org['id']}/members"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_projects_roles_and_cross_tenant_404(team):
    org, owner, member, outsider = team["org"], team["owner"], team["member"], team["outsider"]
    oc, mc, xc = owner.client(), member.client(), outsider.client()
    err(mc.post("/api/v1/projects", json={"org_id": org["id"], "name": "nope"}), 403, "PERMISSION_DENIED")
    r = oc.post("/api/v1/projects", json={"org_id": org["id"], "name": "fraud", "description": "models"})
    assert r.status_code == 200, r.text
    p = r.json()["project"]
    err(oc.post("/api/v1/projects", json={"org_id": org["id"], "name": "fraud"}), 400, "RESOURCE_ALREADY_EXISTS")
    # org members see it as viewers, the owner as admin, outsiders not at all
    assert oc.get(f"/api/v1/projects/{p['id']}").json()["project"]["role"] == "admin"
    assert mc.get(f"/api/v1/projects/{p['id']}").json()["project"]["role"] == "viewer"
    err(xc.get(f"/api/v1/projects/{p['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(xc.get(f"/api/v1/projects/{'f' * 32}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert p["id"] not in [q["id"] for q in xc.get("/api/v1/projects").json()["projects"]]
    assert p["id"] in [q["id"] for q in mc.get("/api/v1/projects").json()["projects"]]
    # project roles: only project admins manage them; outsiders must join the org first
    err(mc.put(f"/api/v1/projects/{p['id']}/members/{member.id}", json={"role": "editor"}), 403, "PERMISSION_DENIED")
    err(oc.put(f"/api/v1/projects/{p['id']}/members/{outsider.id}", json={"role": "viewer"}), 400,
        "INVALID_PARAMETER_VALUE")
    assert oc.put(f"/api/v1/projects/{p['id']}/members/{member.id}", json={"role": "editor"}).status_code == 200
    assert mc.get(f"/api/v1/projects/{p['id']}").json()["project"]["role"] == "editor"
    members = oc.get(f"/api/v1/projects/{p['id']}/members").json()["members"]
    assert {m["username"]: m["role"] for m in members}[member.username] == "editor"
    err(xc.get(f"/api/v1/projects/{p['id']}/members"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert oc.delete(f"/api/v1/projects/{p['id']}/members/{member.id}").status_code == 200
    assert mc.get(f"/api/v1/projects/{p['id']}").json()["project"]["role"] == "viewer"
    # a key restricted to another project sees nothing of this one
    other = owner.client().get("/api/v1/projects").json()["projects"]
    mine = [q for q in other if q["id"] != p["id"]][0]
    key = oc.post("/api/v1/api-keys", json={"name": "scoped", "project_id": mine["id"]}).json()["key"]
    kc = owner.server.client(token=key)
    err(kc.get(f"/api/v1/projects/{p['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert [q["id"] for q in kc.get("/api/v1/projects").json()["projects"]] == [mine["id"]]


def test_invitations(team, make_user):
    org, owner, member = team["org"], team["owner"], team["member"]
    oc = owner.client()
    invitee = make_user()
    err(member.client().post(f"/api/v1/orgs/{org['id']}/invitations",
                             json={"email": "x@example.com", "role": "member"}), 403, "PERMISSION_DENIED")
    r = oc.post(f"/api/v1/orgs/{org['id']}/invitations", json={"email": "New.Person@Example.com", "role": "admin"})
    assert r.status_code == 200, r.text
    inv = r.json()
    assert inv["delivery"] == "link" and inv["token"] in inv["link"] and "delivery_error" not in inv
    assert inv["invitation"]["status"] == "pending" and inv["invitation"]["email"] == "new.person@example.com"
    assert r.headers["Cache-Control"] == "no-store"
    ic = invitee.client()
    err(ic.get(f"/api/v1/orgs/{org['id']}/members"), 404, "RESOURCE_DOES_NOT_EXIST")
    r = ic.post("/api/v1/invitations/accept", json={"token": inv["token"]})
    assert r.status_code == 200, r.text
    assert r.json()["invitation"]["org_id"] == org["id"] and r.json()["invitation"]["status"] == "accepted"
    roles = {m["username"]: m["role"] for m in ic.get(f"/api/v1/orgs/{org['id']}/members").json()["members"]}
    assert roles[invitee.username] == "admin"
    # single use
    err(ic.post("/api/v1/invitations/accept", json={"token": inv["token"]}), 400, "INVALID_PARAMETER_VALUE")
    err(ic.post("/api/v1/invitations/accept", json={"token": "kiln_inv_nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(oc.post(f"/api/v1/orgs/{org['id']}/invitations", json={"email": "not-an-email", "role": "member"}), 400,
        "INVALID_PARAMETER_VALUE")
    # every change above is in the audit log
    admin = owner.server.admin_client()
    actions = {e["action"] for e in admin.get("/api/v1/audit", params={"max_results": 200}).json()["entries"]}
    assert {"org.create", "org.member_set", "invitation.create", "invitation.accept"} <= actions

"""Registry governance over HTTP: per-project approval rules for Production
and protected aliases, approval requests (request, approve, reject, cancel,
stale), who may do what, the audit trail, project isolation, and comments
on model versions."""

from __future__ import annotations

import pytest

ML = "/api/2.0/mlflow"
GOV = "/api/v1/registry/governance"
APPROVALS = "/api/v1/approvals"


def err(r, status, code, fragment=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code, r.text
    if fragment is not None:
        assert fragment in body["message"], body["message"]
    return body["message"]


def ok(r):
    assert r.status_code == 200, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json()


class Member:
    def __init__(self, user, project):
        self.user, self.id = user, user.id
        self.c = user.client()
        self.c.headers["X-Kiln-Project"] = project

    def ml(self, path, body):
        return self.c.post(f"{ML}/{path}", json=body)

    def stage(self, name, version, stage, archive=False):
        return self.ml("model-versions/transition-stage", {"name": name, "version": str(version), "stage": stage,
                                                           "archive_existing_versions": archive})

    def alias(self, name, alias, version):
        return self.ml("registered-models/alias", {"name": name, "alias": alias, "version": str(version)})

    def request(self, **body):
        return self.c.post(APPROVALS, json=body)

    def version_stage(self, name, version):
        r = ok(self.c.get(f"{ML}/model-versions/get", params={"name": name, "version": str(version)}))
        return r["model_version"]["current_stage"]


@pytest.fixture
def team(make_user):
    """owner (project admin), editor and viewer of the owner's default project,
    a model `churn` with two versions, and an outsider with a project of
    their own."""
    owner_u = make_user()
    oc = owner_u.client()
    mine = ok(oc.get("/api/v1/projects"))["projects"][0]
    project = mine["id"]
    members = {}
    for role in ("editor", "viewer"):
        u = make_user()
        ok(oc.put(f"/api/v1/orgs/{mine['org_id']}/members/{u.id}", json={"role": "member"}))
        ok(oc.put(f"/api/v1/projects/{project}/members/{u.id}", json={"role": role}))
        members[role] = Member(u, project)
    owner = Member(owner_u, project)
    ok(owner.ml("registered-models/create", {"name": "churn"}))
    for _ in range(2):
        ok(owner.ml("model-versions/create", {"name": "churn", "source": "s3://bucket/churn"}))
    outsider_u = make_user()
    outsider = Member(outsider_u, ok(outsider_u.client().get("/api/v1/projects"))["projects"][0]["id"])
    return {"project": project, "owner": owner, "editor": members["editor"], "viewer": members["viewer"],
            "outsider": outsider}


def governed(team, aliases=("champion",)):
    return ok(team["owner"].c.put(GOV, json={"require_approval_for_production": True,
                                             "protected_aliases": list(aliases)}))["governance"]


def audit(admin_client, action, target=None):
    entries = ok(admin_client.get("/api/v1/audit", params={"action": action, "max_results": 1000}))["entries"]
    return [e for e in entries if target is None or e.get("target") == target]


# ---- settings ----------------------------------------------------------------------------


def test_settings_default_and_only_project_admins_change_them(team, admin_client):
    owner, editor, viewer = team["owner"], team["editor"], team["viewer"]
    assert ok(viewer.c.get(GOV)) == {"governance": {"require_approval_for_production": False,
                                                    "protected_aliases": []}}
    err(editor.c.put(GOV, json={"require_approval_for_production": True}), 403, "PERMISSION_DENIED")
    err(viewer.c.put(GOV, json={"protected_aliases": ["champion"]}), 403, "PERMISSION_DENIED")
    g = ok(owner.c.put(GOV, json={"require_approval_for_production": True,
                                  "protected_aliases": ["champion", "Champion", "prod-a"]}))["governance"]
    assert g["require_approval_for_production"] is True
    assert g["protected_aliases"] == ["champion", "prod-a"]  # deduplicated, case-blind
    assert g["updated_by"] == owner.user.username and g["updated_at"] > 0
    # a partial update leaves the other field alone
    g = ok(owner.c.put(GOV, json={"require_approval_for_production": False}))["governance"]
    assert g["require_approval_for_production"] is False and g["protected_aliases"] == ["champion", "prod-a"]
    assert ok(editor.c.get(GOV))["governance"] == g
    err(owner.c.put(GOV, json={"protected_aliases": ["latest"]}), 400, "INVALID_PARAMETER_VALUE", "reserved")
    err(owner.c.put(GOV, json={"protected_aliases": "champion"}), 400, "INVALID_PARAMETER_VALUE")
    err(owner.c.put(GOV, json={"protected_aliases": [f"a{i}" for i in range(33)]}), 400, "INVALID_PARAMETER_VALUE")
    err(owner.c.put(GOV, json={"require_approval_for_production": "yes"}), 400, "INVALID_PARAMETER_VALUE")
    # the outsider's project has its own settings
    assert ok(team["outsider"].c.get(GOV))["governance"]["protected_aliases"] == []
    entries = audit(admin_client, "registry.governance.update", f"project:{team['project']}")
    assert len(entries) == 2 and all(e["actor"] == owner.id for e in entries)


# ---- refusal and the approval flow -------------------------------------------------------------


def test_production_and_protected_aliases_need_approval(team, admin_client):
    owner, editor = team["owner"], team["editor"]
    # off by default: anyone who may write moves a version to Production
    ok(editor.stage("churn", 1, "Production"))
    ok(editor.stage("churn", 1, "None"))
    governed(team)
    msg = err(editor.stage("churn", 1, "production"), 409, "APPROVAL_REQUIRED", "needs approval")
    assert "/api/v1/approvals" in msg
    assert editor.version_stage("churn", 1) == "None"
    ok(editor.stage("churn", 1, "Staging"))  # other stages are not governed
    err(editor.alias("churn", "champion", 1), 409, "APPROVAL_REQUIRED", "protected")
    err(editor.alias("churn", "CHAMPION", 1), 409, "APPROVAL_REQUIRED")
    ok(editor.alias("churn", "candidate", 1))
    # the ajax-api alias is governed the same way
    r = editor.c.post("/ajax-api/2.0/mlflow/model-versions/transition-stage",
                      json={"name": "churn", "version": "1", "stage": "Production"})
    err(r, 409, "APPROVAL_REQUIRED")
    # project admins change directly, and that is audited as such
    ok(owner.stage("churn", 1, "Production"))
    ok(owner.alias("churn", "champion", 1))
    direct = audit(admin_client, "registry.governed_change.direct")
    mine = [e for e in direct if e["actor"] == owner.id]
    assert {e["detail"]["kind"] for e in mine} >= {"stage", "alias"}


def test_request_approve_performs_the_change(team, admin_client):
    owner, editor, viewer = team["owner"], team["editor"], team["viewer"]
    governed(team)
    ok(owner.stage("churn", 1, "Production"))
    ok(editor.stage("churn", 2, "Staging"))
    req = ok(editor.request(name="churn", version="2", stage="production", archive_existing_versions=True,
                            comment="beats v1 by 3 points"))["approval_request"]
    assert req["state"] == "PENDING" and req["kind"] == "stage" and req["target"] == "Production"
    assert req["from_stage"] == "Staging" and req["archive_existing_versions"] is True
    assert req["requester_id"] == editor.id and req["requester"] == editor.user.username
    assert req["model_name"] == "churn" and req["version"] == "2" and req["comment"] == "beats v1 by 3 points"
    err(editor.request(name="churn", version=2, stage="Production"), 409, "CONFLICT", req["id"])
    err(viewer.request(name="churn", version="2", stage="Production"), 403, "PERMISSION_DENIED")
    err(editor.request(name="churn", version="2"), 400, "INVALID_PARAMETER_VALUE", "exactly one")
    err(editor.request(name="churn", version="2", stage="Production", alias="x"), 400, "INVALID_PARAMETER_VALUE")
    err(editor.request(name="churn", version="2", stage="Gold"), 400, "INVALID_PARAMETER_VALUE")
    err(editor.request(name="churn", version="2", alias="x", archive_existing_versions=True), 400,
        "INVALID_PARAMETER_VALUE")
    err(editor.request(name="churn", version="9", stage="Production"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(editor.request(name="nope", version="1", stage="Production"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(editor.request(name="churn", version="2", stage="Staging"), 400, "INVALID_PARAMETER_VALUE", "already")
    err(editor.request(name="churn", version="2", stage="Production", comment="x" * 4001), 400,
        "INVALID_PARAMETER_VALUE")
    # the inbox
    inbox = ok(owner.c.get(APPROVALS))["approval_requests"]
    assert [r["id"] for r in inbox] == [req["id"]]
    assert ok(viewer.c.get(f"{APPROVALS}/{req['id']}"))["approval_request"] == req
    # only project admins decide
    err(editor.c.post(f"{APPROVALS}/{req['id']}/approve", json={}), 403, "PERMISSION_DENIED")
    err(viewer.c.post(f"{APPROVALS}/{req['id']}/reject", json={}), 403, "PERMISSION_DENIED")
    done = ok(owner.c.post(f"{APPROVALS}/{req['id']}/approve", json={"comment": "ship it"}))["approval_request"]
    assert done["state"] == "APPROVED" and done["decided_by"] == owner.id
    assert done["decided_by_name"] == owner.user.username and done["decision_comment"] == "ship it"
    # the change was made, archive_existing_versions honoured
    assert editor.version_stage("churn", 2) == "Production"
    assert editor.version_stage("churn", 1) == "Archived"
    # final states stay final
    err(owner.c.post(f"{APPROVALS}/{req['id']}/reject", json={}), 400, "INVALID_STATE", "APPROVED")
    err(editor.c.post(f"{APPROVALS}/{req['id']}/cancel"), 400, "INVALID_STATE")
    assert ok(owner.c.get(APPROVALS)) == {"approval_requests": []}
    assert [r["id"] for r in ok(owner.c.get(APPROVALS, params={"state": "approved"}))["approval_requests"]] == [
        req["id"]]
    # audited: who asked, who approved, what
    target = f"approval:{req['id']}"
    asked = audit(admin_client, "registry.approval.request", target)
    assert len(asked) == 1 and asked[0]["actor"] == editor.id
    assert asked[0]["detail"]["target"] == "Production" and asked[0]["detail"]["model_name"] == "churn"
    approved = audit(admin_client, "registry.approval.approve", target)
    assert len(approved) == 1 and approved[0]["actor"] == owner.id
    assert approved[0]["detail"]["from"] == "PENDING" and approved[0]["detail"]["to"] == "APPROVED"


def test_alias_request_reject_and_cancel(team, admin_client):
    owner, editor = team["owner"], team["editor"]
    governed(team)
    req = ok(editor.request(name="churn", version="1", alias="champion"))["approval_request"]
    assert req["kind"] == "alias" and req["target"] == "champion"
    done = ok(owner.c.post(f"{APPROVALS}/{req['id']}/reject", json={"comment": "not yet"}))["approval_request"]
    assert done["state"] == "REJECTED" and done["decision_comment"] == "not yet"
    r = editor.c.get(f"{ML}/registered-models/alias", params={"name": "churn", "alias": "champion"})
    err(r, 404, "RESOURCE_DOES_NOT_EXIST")
    err(owner.c.post(f"{APPROVALS}/{req['id']}/approve"), 400, "INVALID_STATE", "REJECTED")
    # the requester (and only they) may cancel
    again = ok(editor.request(name="churn", version="1", alias="champion"))["approval_request"]
    err(owner.c.post(f"{APPROVALS}/{again['id']}/cancel"), 403, "PERMISSION_DENIED")
    assert ok(editor.c.post(f"{APPROVALS}/{again['id']}/cancel"))["approval_request"]["state"] == "CANCELLED"
    assert audit(admin_client, "registry.approval.cancel", f"approval:{again['id']}")[0]["actor"] == editor.id
    assert audit(admin_client, "registry.approval.reject", f"approval:{req['id']}")[0]["actor"] == owner.id
    # approving an alias request points the alias
    third = ok(editor.request(name="churn", version="2", alias="champion"))["approval_request"]
    ok(owner.c.post(f"{APPROVALS}/{third['id']}/approve"))
    r = ok(editor.c.get(f"{ML}/registered-models/alias", params={"name": "churn", "alias": "champion"}))
    assert r["model_version"]["version"] == "2"
    # paging over every state, newest first
    seen, token = [], None
    while True:
        params = {"state": "ALL", "max_results": 1, **({"page_token": token} if token else {})}
        page = ok(owner.c.get(APPROVALS, params=params))
        seen += [r["id"] for r in page["approval_requests"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [third["id"], again["id"], req["id"]]
    err(owner.c.get(APPROVALS, params={"state": "bogus"}), 400, "INVALID_PARAMETER_VALUE")
    err(owner.c.get(APPROVALS, params={"max_results": 0}), 400, "INVALID_PARAMETER_VALUE")
    err(owner.c.get(APPROVALS, params={"page_token": "x"}), 400, "INVALID_PARAMETER_VALUE")
    err(owner.c.get(f"{APPROVALS}/{'0' * 32}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(owner.c.post(f"{APPROVALS}/nope/approve"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_requests_go_stale(team, admin_client):
    owner, editor = team["owner"], team["editor"]
    governed(team)
    # the stage changed meanwhile: the listing notices
    a = ok(editor.request(name="churn", version="1", stage="Production"))["approval_request"]
    ok(editor.stage("churn", 1, "Staging"))
    assert ok(owner.c.get(f"{APPROVALS}/{a['id']}"))["approval_request"]["state"] == "STALE"
    err(owner.c.post(f"{APPROVALS}/{a['id']}/approve"), 400, "INVALID_STATE", "STALE")
    assert editor.version_stage("churn", 1) == "Staging"
    stale = audit(admin_client, "registry.approval.stale", f"approval:{a['id']}")
    assert len(stale) == 1 and "stage" in stale[0]["detail"]["reason"]
    # the version was deleted meanwhile: approving notices
    b = ok(editor.request(name="churn", version="2", alias="champion"))["approval_request"]
    ok(editor.c.delete(f"{ML}/model-versions/delete", json={"name": "churn", "version": "2"}))
    err(owner.c.post(f"{APPROVALS}/{b['id']}/approve"), 409, "CONFLICT", "STALE")
    assert ok(owner.c.get(f"{APPROVALS}/{b['id']}"))["approval_request"]["state"] == "STALE"
    r = editor.c.get(f"{ML}/registered-models/alias", params={"name": "churn", "alias": "champion"})
    err(r, 404, "RESOURCE_DOES_NOT_EXIST")
    assert ok(owner.c.get(APPROVALS)) == {"approval_requests": []}


def test_projects_never_see_each_others_requests(team, server):
    owner, editor, outsider = team["owner"], team["editor"], team["outsider"]
    governed(team)
    req = ok(editor.request(name="churn", version="1", stage="Production"))["approval_request"]
    for method, suffix in (("GET", ""), ("POST", "/approve"), ("POST", "/reject"), ("POST", "/cancel")):
        err(outsider.c.request(method, f"{APPROVALS}/{req['id']}{suffix}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert ok(outsider.c.get(APPROVALS)) == {"approval_requests": []}
    # selecting the other project does not help
    c = outsider.user.client()
    err(c.get(APPROVALS, headers={"X-Kiln-Project": team["project"]}), 404, "RESOURCE_DOES_NOT_EXIST")
    # the outsider's own model of the same name is a different model
    ok(outsider.ml("registered-models/create", {"name": "churn"}))
    ok(outsider.ml("model-versions/create", {"name": "churn", "source": "s3://b/x"}))
    ok(outsider.stage("churn", 1, "Production"))  # their project is not governed
    # a read-only key of the owner cannot approve even in its own project
    key = ok(owner.c.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["read", "write"]}))["key"]
    kc = server.client(token=key)
    err(kc.post(f"{APPROVALS}/{req['id']}/approve"), 403, "PERMISSION_DENIED")
    assert ok(owner.c.get(f"{APPROVALS}/{req['id']}"))["approval_request"]["state"] == "PENDING"


# ---- comments ----------------------------------------------------------------------------------


def test_comments_on_model_versions(team, admin_client):
    owner, editor, viewer = team["owner"], team["editor"], team["viewer"]
    base = "/api/v1/models/churn/versions/1/comments"
    c1 = ok(editor.c.post(base, json={"body": "AUC 0.91 on holdout"}))["comment"]
    assert c1["author_id"] == editor.id and c1["author"] == editor.user.username
    assert c1["body"] == "AUC 0.91 on holdout" and c1["version"] == "1" and c1["model_name"] == "churn"
    c2 = ok(owner.c.post(base, json={"body": "looks good"}))["comment"]
    err(viewer.c.post(base, json={"body": "hi"}), 403, "PERMISSION_DENIED")
    err(editor.c.post(base, json={"body": ""}), 400, "INVALID_PARAMETER_VALUE")
    err(editor.c.post(base, json={"body": "x" * 10001}), 400, "INVALID_PARAMETER_VALUE")
    err(editor.c.post(base, json={}), 400, "INVALID_PARAMETER_VALUE")
    err(editor.c.post("/api/v1/models/churn/versions/9/comments", json={"body": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(editor.c.post("/api/v1/models/churn/versions/abc/comments", json={"body": "x"}), 400,
        "INVALID_PARAMETER_VALUE")
    # listing, oldest first, paged
    assert [c["id"] for c in ok(viewer.c.get(base))["comments"]] == [c1["id"], c2["id"]]
    page = ok(viewer.c.get(base, params={"max_results": 1}))
    assert [c["id"] for c in page["comments"]] == [c1["id"]]
    page2 = ok(viewer.c.get(base, params={"max_results": 1, "page_token": page["next_page_token"]}))
    assert [c["id"] for c in page2["comments"]] == [c2["id"]] and "next_page_token" not in page2
    assert ok(viewer.c.get("/api/v1/models/churn/versions/2/comments")) == {"comments": []}
    # only the author edits; the author or a project admin deletes
    edited = ok(editor.c.patch(f"{base}/{c1['id']}", json={"body": "AUC 0.92"}))["comment"]
    assert edited["body"] == "AUC 0.92" and edited["updated_at"] >= edited["created_at"]
    err(owner.c.patch(f"{base}/{c1['id']}", json={"body": "no"}), 403, "PERMISSION_DENIED")
    err(editor.c.delete(f"{base}/{c2['id']}"), 403, "PERMISSION_DENIED")
    err(viewer.c.delete(f"{base}/{c1['id']}"), 403, "PERMISSION_DENIED")
    ok(owner.c.delete(f"{base}/{c1['id']}"))
    ok(owner.c.delete(f"{base}/{c2['id']}"))
    err(owner.c.delete(f"{base}/{c2['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(editor.c.patch(f"{base}/{'f' * 32}", json={"body": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert ok(viewer.c.get(base)) == {"comments": []}
    # another project sees none of it
    err(team["outsider"].c.get(base), 404, "RESOURCE_DOES_NOT_EXIST")
    # audited, without the text
    created = audit(admin_client, "registry.comment.create", f"comment:{c1['id']}")
    assert created[0]["actor"] == editor.id and "AUC" not in str(created[0]["detail"])
    assert audit(admin_client, "registry.comment.update", f"comment:{c1['id']}")[0]["actor"] == editor.id
    deleted = audit(admin_client, "registry.comment.delete", f"comment:{c1['id']}")
    assert deleted[0]["actor"] == owner.id and deleted[0]["detail"]["by_author"] is False

"""The SDK's registry governance, approvals, comments, lineage, webhooks and
registry settings against a real `kiln server`: a project admin, an editor
and a viewer of one project (each with an API key scoped to it), the
governed change refused with APPROVAL_REQUIRED and then made through
request_approval + approve, who may do what (PERMISSION_DENIED), lists that
follow next_page_token, and a webhook delivered to a local receiver whose
signature the test checks with the secret create_webhook handed back."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

import kiln

from test_tracking import ADMIN_PASSWORD, Server

ML = "/api/2.0/mlflow"


def uniq(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


class Team:
    """One project: `admin` (server admin and org owner, with an admin-scoped
    key), `editor` and `viewer` (members with keys scoped to the project) and
    `admin_pw` (the admin signed in with a password, no project selected)."""

    def __init__(self, server: Server) -> None:
        self.admin_pw = kiln.Client(server.url, username="admin", password=ADMIN_PASSWORD)
        org = self.admin_pw.create_org(uniq("gov").lower())
        self.project = self.admin_pw.create_project(org["id"], "models")["id"]
        key = self.admin_pw.create_api_key("gov-admin", scopes=["read", "write", "admin"], project_id=self.project)
        self.admin = kiln.Client(server.url, api_key=key["key"])
        self.users: Dict[str, str] = {}
        for role in ("editor", "viewer"):
            name, pw = uniq(role), "Gov-Sdk-Password-4k"
            self.users[role] = self.admin_pw.create_user(name, pw)["id"]
            self.admin_pw.set_org_member(org["id"], name, "member")
            self.admin_pw.set_project_member(self.project, name, role)
            signed_in = kiln.Client(server.url, username=name, password=pw)
            made = signed_in.create_api_key(role, scopes=["read", "write"], project_id=self.project)
            setattr(self, role, kiln.Client(server.url, api_key=made["key"]))

    def model(self, versions: int = 2) -> str:
        """A fresh model in the project with `versions` versions from one run."""
        name = uniq("churn")
        self.admin.create_registered_model(name)
        run = self.admin._request_dict("POST", f"{ML}/runs/create", json={"experiment_id": "0"})["run"]["info"]
        for _ in range(versions):
            self.admin.create_model_version(name, f"runs:/{run['run_id']}/model", run_id=run["run_id"])
        return name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kiln-gov") / "data").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def team(server: Server) -> Team:
    return Team(server)


@pytest.fixture
def open_rules(team: Team) -> Iterator[None]:
    """Each governance test starts and ends with no rules."""
    team.admin.set_registry_governance(require_approval_for_production=False, protected_aliases=[])
    yield
    team.admin.set_registry_governance(require_approval_for_production=False, protected_aliases=[])


def stage_of(client: kiln.Client, name: str, version: str) -> str:
    return client._request_dict("GET", f"{ML}/model-versions/get",
                                params={"name": name, "version": version})["model_version"]["current_stage"]


# ---- governance settings -----------------------------------------------------------------------


def test_governance_settings(team: Team, open_rules: None) -> None:
    g = team.viewer.get_registry_governance()
    assert (g["require_approval_for_production"], g["protected_aliases"]) == (False, [])
    assert g["updated_by"] == "admin" and g["updated_at"] > 0  # the fixture cleared them
    g = team.admin.set_registry_governance(require_approval_for_production=True,
                                           protected_aliases=["champion", "Champion", "prod"])
    assert g["require_approval_for_production"] is True and g["protected_aliases"] == ["champion", "prod"]
    # a field left None stays as it is; a lone string is one alias
    g = team.admin.set_registry_governance(require_approval_for_production=False)
    assert g["protected_aliases"] == ["champion", "prod"] and g["require_approval_for_production"] is False
    assert team.admin.set_registry_governance(protected_aliases="champion")["protected_aliases"] == ["champion"]
    assert team.editor.get_registry_governance()["protected_aliases"] == ["champion"]

    with pytest.raises(kiln.PermissionDenied) as e:
        team.editor.set_registry_governance(require_approval_for_production=True)
    assert e.value.error_code == "PERMISSION_DENIED" and e.value.status == 403
    with pytest.raises(kiln.BadRequest) as e:
        team.admin.set_registry_governance(protected_aliases=["latest"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE" and "reserved" in e.value.message


# ---- approvals ---------------------------------------------------------------------------------


def test_production_needs_approval_then_approve_makes_the_change(team: Team, open_rules: None) -> None:
    name = team.model()
    team.admin.set_registry_governance(require_approval_for_production=True)
    with pytest.raises(kiln.Conflict) as e:
        team.editor.transition_model_version_stage(name, 1, "Production")
    assert e.value.error_code == "APPROVAL_REQUIRED" and e.value.status == 409
    assert stage_of(team.admin, name, "1") == "None"

    req = team.editor.request_approval(name, 1, stage="Production", comment="better AUC")
    assert (req["state"], req["kind"], req["target"], req["model_name"], req["version"]) == \
        ("PENDING", "stage", "Production", name, "1")
    assert req["comment"] == "better AUC" and req["archive_existing_versions"] is False
    assert team.viewer.get_approval(req["id"]) == req
    assert req["id"] in [r["id"] for r in team.viewer.list_approvals()]
    with pytest.raises(kiln.Conflict) as e:  # the same change asked twice
        team.editor.request_approval(name, "1", stage="production")
    assert e.value.error_code == "CONFLICT"

    # only a project admin decides
    with pytest.raises(kiln.PermissionDenied) as e:
        team.editor.approve(req["id"])
    assert e.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(kiln.PermissionDenied) as e:
        team.viewer.reject(req["id"])
    assert e.value.error_code == "PERMISSION_DENIED"

    done = team.admin.approve(req["id"], comment="ship it")
    assert done["state"] == "APPROVED" and done["decision_comment"] == "ship it"
    assert stage_of(team.admin, name, "1") == "Production"
    assert req["id"] not in [r["id"] for r in team.viewer.list_approvals()]
    assert req["id"] in [r["id"] for r in team.viewer.list_approvals(state="APPROVED")]
    with pytest.raises(kiln.BadRequest) as e:  # decided once
        team.admin.reject(req["id"])
    assert e.value.error_code == "INVALID_STATE"

    # archive_existing_versions travels with the request
    req2 = team.editor.request_approval(name, 2, stage="Production", archive_existing_versions=True)
    assert req2["archive_existing_versions"] is True
    team.admin.approve(req2["id"])
    assert (stage_of(team.admin, name, "1"), stage_of(team.admin, name, "2")) == ("Archived", "Production")


def test_alias_reject_cancel_and_errors(team: Team, open_rules: None) -> None:
    name = team.model(1)
    team.admin.set_registry_governance(protected_aliases=["champion"])
    with pytest.raises(kiln.Conflict) as e:
        team.editor.set_registered_model_alias(name, "champion", 1)
    assert e.value.error_code == "APPROVAL_REQUIRED"
    team.editor.set_registered_model_alias(name, "challenger", 1)  # not protected

    req = team.editor.request_approval(name, 1, alias="champion")
    assert (req["kind"], req["target"]) == ("alias", "champion")
    rejected = team.admin.reject(req["id"], comment="not yet")
    assert rejected["state"] == "REJECTED" and rejected["decision_comment"] == "not yet"
    with pytest.raises(kiln.NotFound):
        team.admin.get_model_version_by_alias(name, "champion")

    again = team.editor.request_approval(name, 1, alias="champion")
    with pytest.raises(kiln.PermissionDenied) as e:  # only the requester cancels
        team.admin.cancel_approval(again["id"])
    assert e.value.error_code == "PERMISSION_DENIED"
    assert team.editor.cancel_approval(again["id"])["state"] == "CANCELLED"
    states = {r["id"]: r["state"] for r in team.viewer.list_approvals(state="ALL")}
    assert states[req["id"]] == "REJECTED" and states[again["id"]] == "CANCELLED"

    # a project admin changes directly
    team.admin.set_registered_model_alias(name, "champion", 1)
    assert team.viewer.get_model_version_by_alias(name, "champion")["version"] == "1"

    with pytest.raises(kiln.BadRequest) as e:
        team.editor.request_approval(name, 1, stage="Staging", alias="x")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(kiln.PermissionDenied):  # viewers cannot ask
        team.viewer.request_approval(name, 1, stage="Staging")
    with pytest.raises(kiln.NotFound) as e:
        team.viewer.get_approval("0" * 32)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(kiln.BadRequest):
        team.viewer.list_approvals(state="MAYBE")


def test_list_approvals_follows_pages(team: Team, open_rules: None) -> None:
    name = team.model(5)
    team.admin.set_registry_governance(require_approval_for_production=True)
    made = [team.editor.request_approval(name, v, stage="Production")["id"] for v in range(1, 6)]
    sent: List[str] = []
    pager = kiln.Client(team.viewer.url, api_key=team.viewer._api_key.value)  # type: ignore[union-attr]
    pager._PAGE_SIZE = 2
    real = pager._request_dict

    def counting(method: str, path: str, **kw: Any) -> Dict[str, Any]:
        sent.append(path)
        return real(method, path, **kw)

    pager._request_dict = counting  # type: ignore[method-assign]
    pending = [r["id"] for r in pager.list_approvals()]
    assert pending[:5] == list(reversed(made))  # newest first, across pages
    assert len(sent) >= 3
    for rid in made:
        team.editor.cancel_approval(rid)


# ---- comments and lineage ----------------------------------------------------------------------


def test_comments(team: Team) -> None:
    name = team.model(1)
    c1 = team.editor.add_version_comment(name, 1, "first look: AUC 0.91")
    assert c1["body"] == "first look: AUC 0.91" and c1["model_name"] == name and c1["version"] == "1"
    c2 = team.admin.add_version_comment(name, "1", "agreed")
    team.viewer._PAGE_SIZE = 1  # type: ignore[misc]
    try:
        assert [c["id"] for c in team.viewer.list_version_comments(name, 1)] == [c1["id"], c2["id"]]
    finally:
        del team.viewer._PAGE_SIZE
    edited = team.editor.update_version_comment(name, 1, c1["id"], "first look: AUC 0.92")
    assert edited["body"] == "first look: AUC 0.92" and edited["id"] == c1["id"]

    with pytest.raises(kiln.PermissionDenied) as e:  # only the author edits
        team.admin.update_version_comment(name, 1, c1["id"], "hijacked")
    assert e.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(kiln.PermissionDenied):  # viewers cannot comment
        team.viewer.add_version_comment(name, 1, "hi")
    with pytest.raises(kiln.PermissionDenied):  # nor delete another's comment
        team.editor.delete_version_comment(name, 1, c2["id"])
    with pytest.raises(kiln.BadRequest):
        team.editor.add_version_comment(name, 1, "")

    team.admin.delete_version_comment(name, 1, c1["id"])  # a project admin deletes anyone's
    team.admin.delete_version_comment(name, 1, c2["id"])
    assert team.viewer.list_version_comments(name, 1) == []
    with pytest.raises(kiln.NotFound) as e:
        team.admin.delete_version_comment(name, 1, c1["id"])
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_lineage(team: Team) -> None:
    name = uniq("lin")
    team.admin.create_registered_model(name)
    run = team.admin._request_dict("POST", f"{ML}/runs/create", json={"experiment_id": "0"})["run"]["info"]
    team.admin.create_model_version(name, f"runs:/{run['run_id']}/model")
    g = team.viewer.model_version_lineage(name, 1)
    nodes = {n["id"]: n for n in g["nodes"]}
    mv, rn = f"model_version:{name}/1", f"run:{run['run_id']}"
    assert nodes[mv]["type"] == "model_version" and nodes[mv]["attrs"]["name"] == name
    assert nodes[rn]["attrs"]["run_id"] == run["run_id"]
    assert {"from": mv, "to": rn, "type": "produced_by"} in g["edges"]
    assert {"from": rn, "to": f"experiment:{run['experiment_id']}", "type": "logged_in"} in g["edges"]
    with pytest.raises(kiln.NotFound) as e:
        team.viewer.model_version_lineage(name, 7)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


# ---- webhooks ----------------------------------------------------------------------------------


class Receiver:
    """A local HTTP server on a thread that records every POST and answers 200."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rec.lock:
                    rec.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": body, "path": self.path})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, pred: Any, what: str, timeout: float = 15.0) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for r in self.requests:
                    if pred(r):
                        return r
            time.sleep(0.05)
        raise AssertionError(f"no {what} arrived; got {[r['headers'].get('x-kiln-event') for r in self.requests]}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def verified(req: Dict[str, Any], secret: kiln.Secret) -> Dict[str, Any]:
    """The payload, after checking the signature as docs/registry.md tells receivers to."""
    h = req["headers"]
    ts = h["x-kiln-timestamp"]
    assert abs(time.time() - int(ts)) < 300
    mac = hmac.new(secret.value.encode(), ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(h["x-kiln-signature"], "sha256=" + mac)
    payload = json.loads(req["body"])
    assert h["x-kiln-event"] == payload["event"]
    return payload


def test_webhook_lifecycle_and_a_signed_delivery(team: Team, receiver: Receiver, open_rules: None) -> None:
    name = team.model(1)
    made = team.admin.create_webhook(receiver.url, ["MODEL_VERSION_TRANSITIONED_STAGE"], model_name=name,
                                     description="ci")
    hook, secret = made["webhook"], made["secret"]
    # the secret is a kiln.Secret: usable, never printed
    assert isinstance(secret, kiln.Secret) and len(secret.value) >= 16
    assert secret.value not in repr(made) and "<secret>" in repr(made) and str(secret) == "<secret>"
    assert hook["project_id"] == team.project and hook["status"] == "ACTIVE" and hook["model_name"] == name
    assert team.admin.get_webhook(hook["id"]) == hook
    assert hook["id"] in [h["id"] for h in team.admin.list_webhooks()]
    # the password session has no key project: the user's default project is
    # another one, so the project is named
    assert team.admin_pw.get_webhook(hook["id"], project_id=team.project)["url"] == receiver.url

    team.admin.transition_model_version_stage(name, 1, "Staging")
    req = receiver.wait(lambda r: r["headers"].get("x-kiln-event") == "MODEL_VERSION_TRANSITIONED_STAGE",
                        "stage event")
    payload = verified(req, secret)
    assert payload["webhook_id"] == hook["id"] and payload["project_id"] == team.project
    assert (payload["data"]["name"], payload["data"]["version"], payload["data"]["to_stage"]) == \
        (name, "1", "Staging")

    # a test event, then the delivery log
    queued = team.admin.test_webhook(hook["id"])
    assert queued["event"] == "TEST" and queued["webhook_id"] == hook["id"]
    verified(receiver.wait(lambda r: r["headers"].get("x-kiln-delivery") == queued["id"], "TEST event"), secret)
    deadline = time.monotonic() + 15
    while team.admin.get_webhook_delivery(hook["id"], queued["id"])["state"] == "PENDING":
        assert time.monotonic() < deadline, "TEST delivery still pending"
        time.sleep(0.05)
    log = team.admin.list_webhook_deliveries(hook["id"])
    assert [d["event"] for d in log] == ["TEST", "MODEL_VERSION_TRANSITIONED_STAGE"]
    assert all(d["state"] == "SUCCEEDED" and d["last_status_code"] == 200 for d in log)

    # update: fields, then a rotated secret that signs the next delivery
    changed = team.admin.update_webhook(hook["id"], description="", status="TEST_MODE",
                                        events=["MODEL_VERSION_CREATED", "MODEL_VERSION_TRANSITIONED_STAGE"])
    assert "secret" not in changed and changed["webhook"]["status"] == "TEST_MODE"
    assert "description" not in changed["webhook"] and len(changed["webhook"]["events"]) == 2
    rotated = team.admin.update_webhook(hook["id"], rotate_secret=True)
    new_secret = rotated["secret"]
    assert isinstance(new_secret, kiln.Secret) and new_secret != secret and new_secret.value not in repr(rotated)
    queued = team.admin.test_webhook(hook["id"])
    req = receiver.wait(lambda r: r["headers"].get("x-kiln-delivery") == queued["id"], "TEST after rotation")
    verified(req, new_secret)
    own = kiln.Secret("my-own-secret-0123456789")
    assert "secret" not in team.admin.update_webhook(hook["id"], secret=own)  # yours is not echoed
    queued = team.admin.test_webhook(hook["id"])
    verified(receiver.wait(lambda r: r["headers"].get("x-kiln-delivery") == queued["id"], "TEST, own secret"), own)

    team.admin.delete_webhook(hook["id"])
    with pytest.raises(kiln.NotFound):
        team.admin.get_webhook(hook["id"])
    assert hook["id"] not in [h["id"] for h in team.admin.list_webhooks()]


def test_webhooks_are_for_project_admins(team: Team, receiver: Receiver) -> None:
    with pytest.raises(kiln.PermissionDenied) as e:
        team.editor.create_webhook(receiver.url, ["MODEL_VERSION_CREATED"])
    assert e.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(kiln.PermissionDenied):
        team.viewer.list_webhooks()
    with pytest.raises(kiln.BadRequest) as e:
        team.admin.create_webhook("ftp://example.com/hook", ["MODEL_VERSION_CREATED"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(kiln.BadRequest):
        team.admin.create_webhook(receiver.url, ["NO_SUCH_EVENT"])
    with pytest.raises(kiln.NotFound):
        team.admin.test_webhook("0" * 32)


def test_webhook_list_follows_pages(team: Team, receiver: Receiver) -> None:
    ids = [team.admin.create_webhook(receiver.url, "MODEL_VERSION_CREATED", status="DISABLED")["webhook"]["id"]
           for _ in range(3)]
    try:
        team.admin._PAGE_SIZE = 1  # type: ignore[misc]
        listed = [h["id"] for h in team.admin.list_webhooks()]
        assert [i for i in listed if i in ids] == ids  # oldest first, every page
    finally:
        del team.admin._PAGE_SIZE
        for i in ids:
            team.admin.delete_webhook(i)


# ---- registry settings -------------------------------------------------------------------------


def test_registry_settings(team: Team) -> None:
    s = team.viewer.get_registry_settings()
    assert s["project_id"] == team.project and s["allow_unsafe_pickles"] is False
    with pytest.raises(kiln.PermissionDenied) as e:
        team.editor.set_registry_settings(allow_unsafe_pickles=True)
    assert e.value.error_code == "PERMISSION_DENIED"
    try:
        assert team.admin.set_registry_settings(allow_unsafe_pickles=True)["allow_unsafe_pickles"] is True
        assert team.admin_pw.get_registry_settings(project_id=team.project)["allow_unsafe_pickles"] is True
    finally:
        team.admin.set_registry_settings(allow_unsafe_pickles=False)
    with pytest.raises(kiln.BadRequest) as e:
        team.admin.set_registry_settings(allow_unsafe_pickles="yes")  # type: ignore[arg-type]
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(kiln.NotFound):
        team.admin_pw.get_registry_settings(project_id="0" * 32)


def test_project_defaults_to_the_users_default_project(team: Team) -> None:
    mine = team.admin_pw.whoami()["user"]["default_project_id"]
    assert mine != team.project
    assert team.admin_pw.get_registry_settings()["project_id"] == mine
    assert team.admin_pw.list_webhooks() == []


# ---- the requests sent (stub server) -----------------------------------------------------------


def test_requests_carry_only_the_fields_given(stub) -> None:  # type: ignore[no-untyped-def]
    c = kiln.Client(stub.url, token="t")
    stub.reply("PUT", "/api/v1/registry/governance", body={"governance": {"protected_aliases": []}})
    c.set_registry_governance(protected_aliases=[])
    assert json.loads(stub.last.body) == {"protected_aliases": []}
    stub.reply("POST", "/api/v1/approvals", body={"approval_request": {"id": "r"}})
    assert c.request_approval("m", 3, alias="champion") == {"id": "r"}
    assert json.loads(stub.last.body) == {"name": "m", "version": "3", "alias": "champion"}
    stub.reply("POST", "/api/v1/approvals/r%2F1/cancel", body={"approval_request": {"id": "r/1"}})
    c.cancel_approval("r/1")
    assert stub.last.path == "/api/v1/approvals/r%2F1/cancel" and json.loads(stub.last.body) == {}
    stub.reply("GET", "/api/v1/approvals", body={"approval_requests": [{"id": "a"}], "next_page_token": "t2"})
    # a server answering the same token again ends the paging instead of looping
    assert c.list_approvals(state="ALL") == [{"id": "a"}, {"id": "a"}]
    assert "state=ALL" in stub.last.query and "page_token=t2" in stub.last.query
    stub.reply("POST", "/api/v1/projects/p1/webhooks",
               body={"webhook": {"id": "w"}, "secret": "s3cr3t-s3cr3t-s3cr3t"})
    made = c.create_webhook("http://h/x", "MODEL_VERSION_CREATED", project_id="p1")
    assert json.loads(stub.last.body) == {"url": "http://h/x", "events": ["MODEL_VERSION_CREATED"]}
    assert made["secret"] == "s3cr3t-s3cr3t-s3cr3t" and "s3cr3t" not in repr(made)
    stub.reply("GET", "/api/v1/auth/whoami", body={"user": {"id": "u"}, "auth": {"kind": "jwt"}})
    with pytest.raises(ValueError):  # no key project and no default project
        c.list_webhooks()

"""Registry webhooks over HTTP: management by project admins only, events
fired by real registry calls and received by a real local HTTP receiver that
checks the HMAC-SHA256 signature, retries with backoff, a receiver that is
down, deliveries that survive a restart, the delivery log and its paging,
and projects never seeing each other's webhooks."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
from typing import Dict, List, Optional

import pytest

from kiln_harness import create_user, register_secret, scaled, wait_for

ML = "/api/2.0/mlflow"
EVENTS = ["MODEL_VERSION_CREATED", "MODEL_VERSION_TRANSITIONED_STAGE", "REGISTERED_MODEL_ALIAS_SET",
          "REGISTERED_MODEL_ALIAS_DELETED"]


def err(r, status, code, fragment=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == code, r.text
    if fragment is not None:
        assert fragment in body["message"], body["message"]
    return body["message"]


class Receiver:
    """A local HTTP receiver on a thread: records every POST and answers the
    next status from `statuses` (200 once they run out)."""

    def __init__(self, port: int = 0, statuses: Optional[List[int]] = None) -> None:
        self.requests: List[Dict] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rec.lock:
                    rec.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": body, "path": self.path})
                    status = rec.statuses.pop(0) if rec.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def got(self, n: int) -> List[Dict]:
        wait_for(lambda: len(self.requests) >= n, scaled(15.0), what=f"{n} webhook requests")
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def verify(req: Dict, secret: str) -> Dict:
    """Checks the request's signature the way docs/registry.md tells receivers to."""
    h = req["headers"]
    ts = h["x-kiln-timestamp"]
    want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(h["x-kiln-signature"], want), (h["x-kiln-signature"], want)
    assert h["content-type"] == "application/json"
    payload = json.loads(req["body"])
    assert h["x-kiln-event"] == payload["event"]
    assert len(h["x-kiln-delivery"]) == 32
    return payload


class Proj:
    """A user's own project (they are its admin) and registry calls in it."""

    def __init__(self, server, user):
        self.user, self.c = user, user.client()
        self.id = self.c.get("/api/v1/projects").json()["projects"][0]["id"]
        self.base = f"/api/v1/projects/{self.id}/webhooks"

    def hook(self, url, events=EVENTS, **kw):
        r = self.c.post(self.base, json={"url": url, "events": events, **kw})
        assert r.status_code == 200, r.text
        body = r.json()
        register_secret(body["secret"])
        return body["webhook"], body["secret"]

    def ml(self, path, body):
        r = self.c.post(f"{ML}/{path}", json=body)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    def model_version(self, name):
        self.ml("registered-models/create", {"name": name})
        run = self.ml("runs/create", {"experiment_id": "0"})["run"]["info"]
        return self.ml("model-versions/create", {"name": name, "source": run["artifact_uri"] + "/model",
                                                 "run_id": run["run_id"]})["model_version"]

    def deliveries(self, hook_id, **params):
        r = self.c.get(f"{self.base}/{hook_id}/deliveries", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def finished(self, hook_id, n):
        """Waits until the webhook has n deliveries, none PENDING."""
        def done():
            d = self.deliveries(hook_id)["deliveries"]
            return d if len(d) == n and all(x["state"] != "PENDING" for x in d) else None
        return wait_for(done, scaled(20.0), what=f"{n} finished deliveries")


@pytest.fixture
def proj(server, make_user):
    return Proj(server, make_user())


def own_server(make_server, *args):
    srv = make_server(args=list(args))
    return srv, Proj(srv, create_user(srv.admin_client(), srv))


# ---- events from real registry calls ----------------------------------------------------------


def test_registry_events_are_delivered_signed(proj, receiver):
    hook, secret = proj.hook(receiver.url, description="ci")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert hook["events"] == EVENTS and hook["status"] == "ACTIVE" and hook["description"] == "ci"
    assert "secret" not in proj.c.get(f"{proj.base}/{hook['id']}").json()
    other, _ = proj.hook(receiver.url, events=["MODEL_VERSION_CREATED"], model_name="not-this-one")
    v = proj.model_version("churn")
    assert v["version"] == "1"
    proj.ml("model-versions/transition-stage", {"name": "churn", "version": "1", "stage": "Staging"})
    proj.ml("registered-models/alias", {"name": "churn", "alias": "champion", "version": "1"})
    r = proj.c.delete(f"{ML}/registered-models/alias", json={"name": "churn", "alias": "champion"})
    assert r.status_code == 200, r.text
    # deleting an alias that is not set changes nothing and sends nothing
    assert proj.c.delete(f"{ML}/registered-models/alias", json={"name": "churn", "alias": "nope"}).status_code == 200
    got = receiver.got(4)
    payloads = {p["event"]: p for p in (verify(q, secret) for q in got)}
    assert set(payloads) == set(EVENTS)
    for p in payloads.values():
        assert p["webhook_id"] == hook["id"] and p["project_id"] == proj.id and p["event_timestamp"] > 0
        assert p["data"]["name"] == "churn" and p["data"]["version"] == "1"
    created = payloads["MODEL_VERSION_CREATED"]["data"]
    assert created["run_id"] == v["run_id"] and created["source"] == v["source"]
    moved = payloads["MODEL_VERSION_TRANSITIONED_STAGE"]["data"]
    assert (moved["from_stage"], moved["to_stage"]) == ("None", "Staging")
    assert payloads["REGISTERED_MODEL_ALIAS_SET"]["data"]["alias"] == "champion"
    assert payloads["REGISTERED_MODEL_ALIAS_DELETED"]["data"]["alias"] == "champion"
    # the log: one successful attempt each, the payload as sent
    log = proj.finished(hook["id"], 4)
    assert {d["event"] for d in log} == set(EVENTS)
    for d in log:
        assert d["state"] == "SUCCEEDED" and d["attempts"] == 1 and d["last_status_code"] == 200
        assert d["attempt_log"][0]["status_code"] == 200 and d["attempt_log"][0]["duration_ms"] >= 0
        assert d["payload"] == payloads[d["event"]]
    ids = {q["headers"]["x-kiln-delivery"] for q in got}
    assert ids == {d["id"] for d in log}
    # the filtered webhook saw nothing of another model
    assert proj.deliveries(other["id"]) == {"deliveries": []}
    assert len(receiver.requests) == 4


def test_archive_existing_announces_every_moved_version(proj, receiver):
    hook, secret = proj.hook(receiver.url, events=["MODEL_VERSION_TRANSITIONED_STAGE"], model_name="m")
    proj.model_version("m")
    run = proj.ml("runs/create", {"experiment_id": "0"})["run"]["info"]
    proj.ml("model-versions/create", {"name": "m", "source": run["artifact_uri"], "run_id": run["run_id"]})
    proj.ml("model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Production"})
    receiver.got(1)
    proj.ml("model-versions/transition-stage", {"name": "m", "version": "2", "stage": "Production",
                                                "archive_existing_versions": True})
    got = [verify(q, secret)["data"] for q in receiver.got(3)]
    moves = sorted((d["version"], d["from_stage"], d["to_stage"]) for d in got)
    assert moves == [("1", "None", "Production"), ("1", "Production", "Archived"), ("2", "None", "Production")]


# ---- retries, failures, restarts --------------------------------------------------------------


def test_retries_until_the_receiver_answers_2xx(make_server):
    srv, p = own_server(make_server, "--webhook-backoff-ms", "20", "--webhook-max-attempts", "4")
    rec = Receiver(statuses=[500, 503])
    try:
        hook, secret = p.hook(rec.url, events=["MODEL_VERSION_CREATED"])
        p.model_version("retry")
        got = rec.got(3)
        [d] = p.finished(hook["id"], 1)
        assert d["state"] == "SUCCEEDED" and d["attempts"] == 3 and d["max_attempts"] == 4
        assert [a["status_code"] for a in d["attempt_log"]] == [500, 503, 200]
        assert [a["attempt"] for a in d["attempt_log"]] == [1, 2, 3]
        assert "HTTP 500" in d["attempt_log"][0]["error"] and "error" not in d["attempt_log"][2]
        # the same delivery each time, signed afresh each time
        assert {q["headers"]["x-kiln-delivery"] for q in got} == {d["id"]}
        for q in got:
            verify(q, secret)
    finally:
        rec.close()


def test_a_receiver_that_is_down_fails_after_the_last_attempt(make_server):
    srv, p = own_server(make_server, "--webhook-backoff-ms", "10", "--webhook-max-attempts", "3")
    hook, _ = p.hook(f"http://127.0.0.1:{free_port()}/gone", events=["MODEL_VERSION_CREATED"])
    p.model_version("down")
    [d] = p.finished(hook["id"], 1)
    assert d["state"] == "FAILED" and d["attempts"] == 3 and "completed_timestamp" in d
    assert "next_attempt_timestamp" not in d and "last_status_code" not in d
    assert len(d["attempt_log"]) == 3
    for a in d["attempt_log"]:
        assert "status_code" not in a and a["error"]


def test_pending_deliveries_are_sent_after_a_restart(make_server):
    port = free_port()
    srv, p = own_server(make_server, "--webhook-backoff-ms", "1500", "--webhook-max-attempts", "5")
    hook, secret = p.hook(f"http://127.0.0.1:{port}/later", events=["MODEL_VERSION_CREATED"])
    p.model_version("durable")

    def failed_once():
        d = p.deliveries(hook["id"])["deliveries"]
        return d and d[0]["attempts"] >= 1 and d[0]
    d = wait_for(failed_once, scaled(15.0), what="a first failed attempt")
    assert d["state"] == "PENDING" or d["state"] == "FAILED"
    srv.stop()
    rec = Receiver(port=port)
    try:
        srv2 = make_server(data_dir=srv.data_dir, args=["--webhook-backoff-ms", "1500"])
        p.c = srv2.client(token=srv2.login(p.user.username, p.user.password)["access_token"])
        got = rec.got(1)
        payload = verify(got[0], secret)
        assert payload["event"] == "MODEL_VERSION_CREATED" and payload["data"]["name"] == "durable"
        [d] = p.finished(hook["id"], 1)
        assert d["state"] == "SUCCEEDED" and d["attempts"] >= 2
        assert d["attempt_log"][-1]["status_code"] == 200
    finally:
        rec.close()


# ---- test events, statuses, secrets, the log ------------------------------------------------------


def test_test_events_statuses_and_secret_rotation(proj, receiver):
    hook, secret = proj.hook(receiver.url, status="TEST_MODE", model_name="tm")
    r = proj.c.post(f"{proj.base}/{hook['id']}/test")
    assert r.status_code == 200, r.text
    d = r.json()["delivery"]
    assert d["event"] == "TEST" and d["max_attempts"] == 1 and d["state"] in ("PENDING", "SUCCEEDED")
    payload = verify(receiver.got(1)[0], secret)
    assert payload["event"] == "TEST" and payload["webhook_id"] == hook["id"]
    one = proj.c.get(f"{proj.base}/{hook['id']}/deliveries/{d['id']}")
    assert one.status_code == 200 and one.json()["delivery"]["id"] == d["id"]
    wait_for(lambda: proj.c.get(f"{proj.base}/{hook['id']}/deliveries/{d['id']}").json()["delivery"]["state"]
             == "SUCCEEDED", scaled(10.0))
    # TEST_MODE: real events are not sent
    proj.model_version("tm")
    # DISABLED the same; ACTIVE again, they are
    r = proj.c.patch(f"{proj.base}/{hook['id']}", json={"status": "DISABLED"})
    assert r.status_code == 200 and r.json()["webhook"]["status"] == "DISABLED" and "secret" not in r.json()
    proj.ml("model-versions/transition-stage", {"name": "tm", "version": "1", "stage": "Staging"})
    r = proj.c.patch(f"{proj.base}/{hook['id']}", json={"status": "active", "rotate_secret": True,
                                                        "events": ["REGISTERED_MODEL_ALIAS_SET"]})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    register_secret(new)
    assert new != secret and r.json()["webhook"]["events"] == ["REGISTERED_MODEL_ALIAS_SET"]
    proj.ml("registered-models/alias", {"name": "tm", "alias": "a", "version": "1"})
    got = receiver.got(2)
    assert len(got) == 2
    assert verify(got[1], new)["event"] == "REGISTERED_MODEL_ALIAS_SET"
    with pytest.raises(AssertionError):
        verify(got[1], secret)
    # a secret of one's own
    mine = "my-own-secret-0123456789"
    register_secret(mine)
    r = proj.c.patch(f"{proj.base}/{hook['id']}", json={"secret": mine})
    assert r.status_code == 200 and "secret" not in r.json()
    proj.c.post(f"{proj.base}/{hook['id']}/test")
    verify(receiver.got(3)[2], mine)
    # the log pages, newest first
    proj.finished(hook["id"], 3)
    first = proj.deliveries(hook["id"], max_results=2)
    assert len(first["deliveries"]) == 2 and first["next_page_token"]
    rest = proj.deliveries(hook["id"], max_results=2, page_token=first["next_page_token"])
    assert len(rest["deliveries"]) == 1 and "next_page_token" not in rest
    seen = [d["id"] for d in first["deliveries"] + rest["deliveries"]]
    assert len(set(seen)) == 3 and seen[0] != d["id"] and seen[2] == d["id"]
    # the list, and delete
    listed = proj.c.get(proj.base, params={"max_results": 1}).json()
    assert [w["id"] for w in listed["webhooks"]] == [hook["id"]] and "next_page_token" not in listed
    assert proj.c.delete(f"{proj.base}/{hook['id']}").status_code == 200
    err(proj.c.get(f"{proj.base}/{hook['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(proj.c.get(f"{proj.base}/{hook['id']}/deliveries"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(proj.c.delete(f"{proj.base}/{hook['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert proj.c.get(proj.base).json() == {"webhooks": []}


def test_the_log_keeps_the_newest_deliveries(make_server, receiver):
    srv, p = own_server(make_server, "--webhook-log-keep", "2")
    hook, _ = p.hook(receiver.url)
    for i in range(4):
        assert p.c.post(f"{p.base}/{hook['id']}/test").status_code == 200
        receiver.got(i + 1)
    wait_for(lambda: len(p.deliveries(hook["id"])["deliveries"]) == 2, scaled(10.0))
    assert all(d["state"] == "SUCCEEDED" for d in p.deliveries(hook["id"])["deliveries"])


def test_the_server_does_not_call_itself(server, proj):
    hook, _ = proj.hook(f"http://127.0.0.1:{server.port}/api/2.0/mlflow/registered-models/create")
    d = proj.c.post(f"{proj.base}/{hook['id']}/test").json()["delivery"]
    [d] = proj.finished(hook["id"], 1)
    assert d["state"] == "FAILED" and "itself" in d["last_error"]


def test_private_addresses_can_be_refused(make_server):
    srv, p = own_server(make_server, "--webhook-allow-private", "false")
    for url in ["http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x", "http://10.1.2.3/",
                "http://169.254.169.254/latest/meta-data", "http://192.168.1.1/"]:
        err(p.c.post(p.base, json={"url": url, "events": EVENTS}), 400, "INVALID_PARAMETER_VALUE", "private")
    hook, _ = p.hook("https://hooks.example.com/kiln")
    err(p.c.patch(f"{p.base}/{hook['id']}", json={"url": "http://127.0.0.1/"}), 400, "INVALID_PARAMETER_VALUE")


# ---- validation, permissions, tenancy ---------------------------------------------------------------


def test_validation_errors(proj):
    ok = {"url": "https://example.com/hook", "events": EVENTS}
    for body, fragment in [
        ({"events": EVENTS}, "url"),
        ({"url": "https://example.com/"}, "events"),
        ({**ok, "url": "ftp://example.com/x"}, "http"),
        ({**ok, "url": "https://user:pw@example.com/x"}, "password"),
        ({**ok, "url": "https://example.com/x#frag"}, "fragment"),
        ({**ok, "url": "https://exa mple.com/"}, "printable"),
        ({**ok, "url": "https://example.com/" + "a" * 2100}, "longer"),
        ({**ok, "url": 5}, "url"),
        ({**ok, "events": []}, "at least one"),
        ({**ok, "events": ["MODEL_DELETED"]}, "Unknown webhook event"),
        ({**ok, "events": "MODEL_VERSION_CREATED"}, "events"),
        ({**ok, "events": [1]}, "events"),
        ({**ok, "status": "PAUSED"}, "status"),
        ({**ok, "secret": "short"}, "secret"),
        ({**ok, "secret": "has a space in it 0123"}, "secret"),
        ({**ok, "description": "d" * 1001}, "description"),
        ({**ok, "rotate_secret": True}, "rotate_secret"),
    ]:
        err(proj.c.post(proj.base, json=body), 400, "INVALID_PARAMETER_VALUE", fragment)
    err(proj.c.post(proj.base, data=b"{not json", headers={"Content-Type": "application/json"}), 400,
        "MALFORMED_REQUEST")
    hook, _ = proj.hook("https://example.com/ok")
    base = f"{proj.base}/{hook['id']}"
    err(proj.c.patch(base, json={"secret": "a-long-enough-secret", "rotate_secret": True}), 400,
        "INVALID_PARAMETER_VALUE")
    err(proj.c.patch(base, json={"rotate_secret": "yes"}), 400, "INVALID_PARAMETER_VALUE")
    err(proj.c.patch(base, json={"events": []}), 400, "INVALID_PARAMETER_VALUE")
    err(proj.c.get(proj.base, params={"max_results": 0}), 400, "INVALID_PARAMETER_VALUE")
    err(proj.c.get(proj.base, params={"max_results": 5000}), 400, "INVALID_PARAMETER_VALUE")
    err(proj.c.get(proj.base, params={"page_token": "x!"}), 400, "INVALID_PARAMETER_VALUE")
    err(proj.c.get(f"{base}/deliveries", params={"page_token": "-3"}), 400, "INVALID_PARAMETER_VALUE")
    for bad in ["0" * 32, "not-an-id", "A" * 32]:
        err(proj.c.get(f"{proj.base}/{bad}"), 404, "RESOURCE_DOES_NOT_EXIST")
        err(proj.c.post(f"{proj.base}/{bad}/test"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(proj.c.get(f"{base}/deliveries/{'0' * 32}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(proj.c.get(f"{base}/deliveries/zzz"), 404, "RESOURCE_DOES_NOT_EXIST")
    # an update with nothing in it changes nothing
    r = proj.c.patch(base, json={})
    assert r.status_code == 200 and r.json()["webhook"]["url"] == "https://example.com/ok"
    r = proj.c.patch(base, json={"model_name": "x", "description": "d", "url": "http://example.org/"})
    w = r.json()["webhook"]
    assert (w["model_name"], w["description"], w["url"]) == ("x", "d", "http://example.org/")
    w = proj.c.patch(base, json={"model_name": "", "description": ""}).json()["webhook"]
    assert "model_name" not in w and "description" not in w


def test_only_project_admins_manage_webhooks(server, make_user, receiver):
    owner, member, outsider = make_user(), make_user(), make_user()
    p = Proj(server, owner)
    org = p.c.get("/api/v1/orgs").json()["orgs"][0]["id"]
    assert p.c.put(f"/api/v1/orgs/{org}/members/{member.id}", json={"role": "member"}).status_code == 200
    hook, _ = p.hook(receiver.url)
    mc, xc = member.client(), outsider.client()
    one = f"{p.base}/{hook['id']}"
    # a viewer (org member), then an editor: refused
    for role in ("viewer", "editor"):
        if role == "editor":
            assert p.c.put(f"/api/v1/projects/{p.id}/members/{member.id}", json={"role": "editor"}).status_code == 200
        err(mc.get(p.base), 403, "PERMISSION_DENIED")
        err(mc.post(p.base, json={"url": receiver.url, "events": EVENTS}), 403, "PERMISSION_DENIED")
        err(mc.get(one), 403, "PERMISSION_DENIED")
        err(mc.patch(one, json={"status": "DISABLED"}), 403, "PERMISSION_DENIED")
        err(mc.delete(one), 403, "PERMISSION_DENIED")
        err(mc.post(f"{one}/test"), 403, "PERMISSION_DENIED")
        err(mc.get(f"{one}/deliveries"), 403, "PERMISSION_DENIED")
    # an outsider does not learn the project exists
    err(xc.get(p.base), 404, "RESOURCE_DOES_NOT_EXIST")
    err(xc.delete(one), 404, "RESOURCE_DOES_NOT_EXIST")
    # a project admin does
    assert p.c.put(f"/api/v1/projects/{p.id}/members/{member.id}", json={"role": "admin"}).status_code == 200
    assert [w["id"] for w in mc.get(p.base).json()["webhooks"]] == [hook["id"]]
    assert len(receiver.requests) == 0
    # anonymous callers are refused
    err(server.client().get(p.base), 401, "UNAUTHENTICATED")


def test_projects_never_see_each_others_webhooks(server, make_user, receiver):
    a, b = Proj(server, make_user()), Proj(server, make_user())
    ha, _ = a.hook(receiver.url)
    hb, secret_b = b.hook(receiver.url)
    # b's id under b's own project path: not found; a's project path: not b's to see
    err(b.c.get(f"{b.base}/{ha['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(b.c.patch(f"{b.base}/{ha['id']}", json={"status": "DISABLED"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(b.c.delete(f"{b.base}/{ha['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(b.c.post(f"{b.base}/{ha['id']}/test"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(b.c.get(f"{b.base}/{ha['id']}/deliveries"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(b.c.get(a.base), 404, "RESOURCE_DOES_NOT_EXIST")
    assert [w["id"] for w in b.c.get(b.base).json()["webhooks"]] == [hb["id"]]
    # a's registry events reach a's webhook only
    a.model_version("mine")
    got = receiver.got(1)
    assert json.loads(got[0]["body"])["webhook_id"] == ha["id"]
    a.finished(ha["id"], 1)
    assert b.deliveries(hb["id"]) == {"deliveries": []}
    assert len(receiver.requests) == 1

"""Organizations, projects, members and invitations in the SDK: the requests
each method sends and how it reads the answers (against the stub), then the
whole flow against the real server binary — including an invitation mailed
through a real SMTP server (Debian's python3-aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
import time
from typing import Iterator, List, Tuple

import pytest

import kiln

from test_live import ADMIN_PASSWORD, LiveServer, _binary

# ---------------------------------------------------------------- requests (stub)


def body_of(stub) -> object:
    return json.loads(stub.last.body)


def test_org_and_project_calls_send_the_documented_requests(stub) -> None:
    c = kiln.Client(stub.url, token="t")
    stub.reply("GET", "/api/v1/orgs", body={"orgs": [{"id": "o1", "name": "acme", "role": "owner"}]})
    assert c.orgs() == [{"id": "o1", "name": "acme", "role": "owner"}]
    stub.reply("POST", "/api/v1/orgs", body={"org": {"id": "o2", "name": "new"}})
    assert c.create_org("new", display_name="New Co") == {"id": "o2", "name": "new"}
    assert body_of(stub) == {"name": "new", "display_name": "New Co"}
    assert c.create_org("bare") == {"id": "o2", "name": "new"} and body_of(stub) == {"name": "bare"}

    stub.reply("GET", "/api/v1/orgs/o1/members", body={"members": [{"user_id": "u", "username": "bob", "role": "member"}]})
    assert c.org_members("o1")[0]["username"] == "bob"
    stub.reply("PUT", "/api/v1/orgs/o1/members/bob%40example.com", body={})
    c.set_org_member("o1", "bob@example.com", "admin")
    assert stub.last.method == "PUT" and stub.last.path == "/api/v1/orgs/o1/members/bob%40example.com"
    assert body_of(stub) == {"role": "admin"}
    stub.reply("DELETE", "/api/v1/orgs/o1/members/bob", body={})
    c.remove_org_member("o1", "bob")
    assert (stub.last.method, stub.last.path) == ("DELETE", "/api/v1/orgs/o1/members/bob")

    stub.reply("GET", "/api/v1/projects", body={"projects": [{"id": "p1", "role": "viewer"}, "junk"]})
    assert c.projects() == [{"id": "p1", "role": "viewer"}]
    stub.reply("GET", "/api/v1/projects/p1", body={"project": {"id": "p1", "role": "admin"}})
    assert c.project("p1")["role"] == "admin"
    stub.reply("POST", "/api/v1/projects", body={"project": {"id": "p2"}})
    assert c.create_project("o1", "fraud", description="models") == {"id": "p2"}
    assert body_of(stub) == {"org_id": "o1", "name": "fraud", "description": "models"}
    stub.reply("GET", "/api/v1/projects/p1/members", body={"members": []})
    assert c.project_members("p1") == []
    stub.reply("PUT", "/api/v1/projects/p1/members/bob", body={})
    c.set_project_member("p1", "bob", "editor")
    assert body_of(stub) == {"role": "editor"}
    stub.reply("DELETE", "/api/v1/projects/p1/members/bob", body={})
    c.remove_project_member("p1", "bob")
    assert stub.last.method == "DELETE"
    # path segments are quoted: a name can never reach another route
    stub.reply("DELETE", "/api/v1/projects/p1/members/..%2Fx", body={})
    c.remove_project_member("p1", "../x")
    assert stub.last.path == "/api/v1/projects/p1/members/..%2Fx"


def test_invitation_calls(stub) -> None:
    c = kiln.Client(stub.url, token="t")
    answer = {"id": "i1", "invitation": {"id": "i1", "status": "pending"}, "delivery": "email"}
    stub.reply("POST", "/api/v1/orgs/o1/invitations", body=answer)
    assert c.invite("o1", "a@example.com") == answer
    assert body_of(stub) == {"email": "a@example.com", "role": "member"}
    c.invite("o1", "a@example.com", project_id="p1", ttl_seconds=7200)
    assert body_of(stub) == {"email": "a@example.com", "role": "viewer", "project_id": "p1", "ttl_seconds": 7200}
    c.invite("o1", "a@example.com", role="owner")
    assert body_of(stub)["role"] == "owner"

    stub.reply("DELETE", "/api/v1/orgs/o1/invitations/i1", body={})
    c.revoke_invitation("o1", "i1")
    assert (stub.last.method, stub.last.path) == ("DELETE", "/api/v1/orgs/o1/invitations/i1")

    stub.reply("POST", "/api/v1/invitations/preview",
               body={"invitation": {"org_id": "o1", "org_name": "acme", "status": "pending"}})
    assert c.preview_invitation("https://k/invitations/accept?token=kiln_inv_p")["org_name"] == "acme"
    assert body_of(stub) == {"token": "kiln_inv_p"}
    with pytest.raises(ValueError):
        c.preview_invitation("")

    stub.reply("POST", "/api/v1/invitations/accept", body={"invitation": {"org_id": "o1", "status": "accepted"}})
    assert c.accept_invitation("kiln_inv_abc") == {"org_id": "o1", "status": "accepted"}
    assert body_of(stub) == {"token": "kiln_inv_abc"}
    c.accept_invitation("https://kiln.example.com/invitations/accept?token=kiln_inv_xyz")
    assert body_of(stub) == {"token": "kiln_inv_xyz"}
    with pytest.raises(ValueError):
        c.accept_invitation("")

    stub.reply("POST", "/api/v1/orgs/o1/invitations", status=403,
               body={"error_code": "PERMISSION_DENIED", "message": "your role does not allow this"})
    with pytest.raises(kiln.PermissionDenied) as info:
        c.invite("o1", "a@example.com")
    assert info.value.error_code == "PERMISSION_DENIED"


def test_invitations_follow_pages(stub) -> None:
    c = kiln.Client(stub.url, token="t")
    pages = {
        "": {"invitations": [{"id": "3"}, {"id": "2"}], "next_page_token": "2-x"},
        "2-x": {"invitations": [{"id": "1"}]},
    }

    seen: List[str] = []
    orig = stub.replies

    class Paged(dict):
        def get(self, key, default=None):  # type: ignore[override]
            if key == ("GET", "/api/v1/orgs/o1/invitations"):
                query = dict(p.split("=", 1) for p in stub.last.query.split("&") if p)
                seen.append(stub.last.query)
                data = json.dumps(pages[query.get("page_token", "")]).encode()
                return 200, {"Content-Type": "application/json"}, data
            return orig.get(key, default)

    stub.replies = Paged()
    assert [i["id"] for i in c.invitations("o1", status="pending")] == ["3", "2", "1"]
    assert all("status=pending" in q and "max_results=1000" in q for q in seen)
    assert "page_token=2-x" in seen[1]


# ---------------------------------------------------------------- the real server


class Inbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: List[Tuple[str, List[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                                  or envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Inbox, LiveServer]]:
    """An SMTP server (aiosmtpd) and a Kiln server that mails through it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    data = tmp_path_factory.mktemp("kiln-sdk-orgs") / "data"
    srv = LiveServer(_binary(), data, extra_args=["--smtp-url", f"smtp://127.0.0.1:{port}",
                                                 "--smtp-from", "kiln@sdk.test",
                                                 "--public-url", "https://kiln.sdk.test"])
    try:
        yield inbox, srv
    finally:
        rc = srv.stop()
        ctl.stop()
        assert rc == 0, srv.stderr()[-2000:]


def test_the_whole_flow_against_the_server(mail) -> None:
    inbox, srv = mail
    admin = kiln.Client(srv.url, username="admin", password=ADMIN_PASSWORD)
    pw = "Carol-Sdk-Password-8z"
    carol_user = admin.create_user("carol", pw, email="carol@sdk.test")
    carol = kiln.Client(srv.url, username="carol", password=pw)

    org = admin.create_org("sdk-org", display_name="SDK Org")
    assert org["name"] == "sdk-org" and "sdk-org" in [o["name"] for o in admin.orgs()]
    with pytest.raises(kiln.BadRequest):
        admin.create_org("sdk-org")
    proj = admin.create_project(org["id"], "sdk-proj", description="from the SDK")
    assert admin.project(proj["id"])["role"] == "admin"
    assert proj["id"] in [p["id"] for p in admin.projects()]

    # membership by username and by email
    admin.set_org_member(org["id"], "carol", "member")
    assert {m["username"]: m["role"] for m in admin.org_members(org["id"])}["carol"] == "member"
    admin.set_project_member(proj["id"], "carol@sdk.test", "editor")
    assert carol.project(proj["id"])["role"] == "editor"
    assert [m["username"] for m in admin.project_members(proj["id"])] == ["admin", "carol"]
    admin.remove_project_member(proj["id"], carol_user["id"])
    assert carol.project(proj["id"])["role"] == "viewer"
    with pytest.raises(kiln.PermissionDenied):
        carol.invitations(org["id"])
    admin.remove_org_member(org["id"], "carol")
    with pytest.raises(kiln.NotFound):
        carol.org_members(org["id"])
    with pytest.raises(kiln.Conflict):
        admin.remove_org_member(org["id"], "admin")

    # an invitation mailed through SMTP: no token in the answer, the link in the mail
    sent = admin.invite(org["id"], "carol@sdk.test", role="admin")
    assert sent["delivery"] == "email" and "token" not in sent and "link" not in sent
    deadline = time.monotonic() + 10
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    (mail_from, rcpts, raw), = inbox.messages
    assert mail_from == "kiln@sdk.test" and rcpts == ["carol@sdk.test"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    link = re.search(r"https://kiln\.sdk\.test/invitations/accept\?token=\S+", msg.get_content()).group(0)
    accepted = carol.accept_invitation(link)
    assert accepted["org_id"] == org["id"] and accepted["status"] == "accepted"
    assert {m["username"]: m["role"] for m in carol.org_members(org["id"])}["carol"] == "admin"

    # revoke, list with statuses
    other = admin.invite(org["id"], "dan@sdk.test", project_id=proj["id"])
    admin.revoke_invitation(org["id"], other["id"])
    admin.revoke_invitation(org["id"], other["id"])  # harmless twice
    statuses = {i["email"]: i["status"] for i in carol.invitations(org["id"])}
    assert statuses == {"carol@sdk.test": "accepted", "dan@sdk.test": "revoked"}
    assert [i["email"] for i in admin.invitations(org["id"], status="revoked")] == ["dan@sdk.test"]
    with pytest.raises(kiln.Conflict):
        admin.revoke_invitation(org["id"], sent["id"])
    with pytest.raises(kiln.NotFound):
        admin.revoke_invitation(org["id"], "0" * 32)
    with pytest.raises(kiln.NotFound):
        carol.accept_invitation("kiln_inv_unknown")
    assert "kiln_inv_" not in srv.stderr()

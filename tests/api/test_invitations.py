"""Invitations: delivery by mail through a real SMTP server (Debian's
python3-aiosmtpd on a free local port), the link fallback when mail cannot be
sent, listing with statuses, revocation, who may do what, and header
injection."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
import socket
import sqlite3
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from kiln_harness import create_user, register_secret, scaled, unique_name, wait_for

# the test SMTP server asks for AUTH over plain text on purpose (it is local)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SMTP_USER = "kiln-mailer"
SMTP_PASSWORD = "Smtp-Secret-4u8Q"
LINK_RE = re.compile(r"(https?://\S+/invitations/accept\?token=(kiln_inv_[0-9A-Za-z]+))")


def err(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error_code"] == code, r.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message and every AUTH login."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: List[Tuple[str, List[str], bytes]] = []
        self.logins: List[Tuple[str, str]] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                                  or envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            with self.lock:
                self.logins.append((login, password))
            return AuthResult(success=login == SMTP_USER and password == SMTP_PASSWORD)
        return AuthResult(success=False)

    def wait(self, n: int = 1) -> List[Tuple[str, List[str], bytes]]:
        wait_for(lambda: len(self.messages) >= n, scaled(10.0), what=f"{n} message(s) at the SMTP server")
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp():
    """A real SMTP server on 127.0.0.1 that requires AUTH (over plain text:
    it is a local test server) and keeps what it receives."""
    inbox = Inbox()
    inbox.port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=inbox.port, authenticator=inbox.authenticate,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        yield inbox
    finally:
        ctl.stop()


def mail_server(make_server, tmp_path, port: int, *extra: str):
    pw = tmp_path / "smtp-password"
    pw.write_text(SMTP_PASSWORD + "\n")
    register_secret(SMTP_PASSWORD)
    return make_server(args=["--smtp-url", f"smtp://127.0.0.1:{port}", "--smtp-from",
                             "Kiln Invites <invites@kiln.test>", "--smtp-user", SMTP_USER,
                             "--smtp-password-file", str(pw), *extra])


def new_org(c, prefix: str = "inv") -> Dict[str, Any]:
    r = c.post("/api/v1/orgs", json={"name": f"{prefix}-{unique_name('o')}", "display_name": "Invite Tests"})
    assert r.status_code == 200, r.text
    return r.json()["org"]


def invitations(c, org_id: str, **params) -> List[Dict[str, Any]]:
    r = c.get(f"/api/v1/orgs/{org_id}/invitations", params=params)
    assert r.status_code == 200, r.text
    return r.json()["invitations"]


def audit_entries(admin, action: str) -> List[Dict[str, Any]]:
    r = admin.get("/api/v1/audit", params={"action": action, "max_results": 1000})
    assert r.status_code == 200, r.text
    return r.json()["entries"]


# ---- delivery ---------------------------------------------------------------------------


def test_invitation_is_mailed_and_its_link_accepts_it(make_server, smtp, tmp_path):
    srv = mail_server(make_server, tmp_path, smtp.port, "--public-url", "https://kiln.example.com/")
    admin = srv.admin_client()
    org = new_org(admin)
    invitee = create_user(admin, srv, email=f"{unique_name('bob')}@example.com")

    r = admin.post(f"/api/v1/orgs/{org['id']}/invitations",
                   json={"email": invitee.email.upper(), "role": "admin"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["delivery"] == "email"
    # the inviter never sees the secret when it went by mail
    assert "link" not in answer and "token" not in answer and "kiln_inv_" not in r.text
    assert answer["invitation"]["status"] == "pending" and answer["invitation"]["email"] == invitee.email
    assert r.headers["Cache-Control"] == "no-store"

    (mail_from, rcpts, raw), = smtp.wait(1)
    assert mail_from == "invites@kiln.test" and rcpts == [invitee.email]
    assert smtp.logins == [(SMTP_USER, SMTP_PASSWORD)]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"] == invitee.email
    assert msg["From"].addresses[0].display_name == "Kiln Invites"
    assert msg["From"].addresses[0].addr_spec == "invites@kiln.test"
    assert org["name"] in msg["Subject"] and "Kiln" in msg["Subject"]
    sent = email.utils.parsedate_to_datetime(msg["Date"]).timestamp()
    assert abs(sent - time.time()) < 120
    assert re.fullmatch(r"<[0-9a-f]{32}@kiln\.test>", msg["Message-ID"])
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    body = msg.get_content()
    assert "Invite Tests" in body and "as admin" in body
    link, token = LINK_RE.search(body).groups()
    register_secret(token)
    assert link.startswith("https://kiln.example.com/invitations/accept?token=")

    ic = invitee.client()
    r = ic.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 200, r.text
    assert r.json()["invitation"]["org_id"] == org["id"]
    roles = {m["username"]: m["role"] for m in ic.get(f"/api/v1/orgs/{org['id']}/members").json()["members"]}
    assert roles[invitee.username] == "admin"
    assert [i["status"] for i in invitations(admin, org["id"])] == ["accepted"]

    created = [e for e in audit_entries(admin, "invitation.create") if e["target"] == answer["invitation"]["id"]]
    assert created[0]["detail"]["delivery"] == "email" and "delivery_error" not in created[0]["detail"]
    text = srv.log_text() + repr(audit_entries(admin, "invitation.create"))
    assert token not in text and SMTP_PASSWORD not in text


def test_a_closed_smtp_port_falls_back_to_the_link(make_server, tmp_path):
    srv = mail_server(make_server, tmp_path, free_port())  # nothing listens there
    admin = srv.admin_client()
    org = new_org(admin)
    invitee = create_user(admin, srv)
    t0 = time.monotonic()
    r = admin.post(f"/api/v1/orgs/{org['id']}/invitations", json={"email": "late@example.com", "role": "member"})
    assert time.monotonic() - t0 < scaled(10.0)
    assert r.status_code == 200, r.text
    answer = r.json()
    register_secret(answer.get("token"))
    assert answer["delivery"] == "link"
    assert answer["token"].startswith("kiln_inv_") and answer["link"].endswith("token=" + answer["token"])
    # without --public-url the link names the host the request went to
    assert answer["link"].startswith(srv.url + "/invitations/accept?token=")
    assert "connect" in answer["delivery_error"].lower()
    assert SMTP_PASSWORD not in answer["delivery_error"] and answer["token"] not in answer["delivery_error"]
    # nothing was lost: the invitation exists and the link's token works
    assert [i["status"] for i in invitations(admin, org["id"])] == ["pending"]
    r = invitee.client().post("/api/v1/invitations/accept", json={"token": answer["token"]})
    assert r.status_code == 200, r.text
    detail = [e for e in audit_entries(admin, "invitation.create")][0]["detail"]
    assert detail["delivery"] == "link" and detail["delivery_error"] == answer["delivery_error"]
    assert answer["token"] not in srv.log_text() and SMTP_PASSWORD not in srv.log_text()


def test_required_starttls_is_never_skipped(make_server, smtp, tmp_path):
    # the test SMTP server offers no STARTTLS: with --smtp-starttls nothing
    # may go out in clear text, so the link comes back instead
    srv = mail_server(make_server, tmp_path, smtp.port, "--smtp-starttls")
    admin = srv.admin_client()
    org = new_org(admin)
    r = admin.post(f"/api/v1/orgs/{org['id']}/invitations", json={"email": "tls@example.com", "role": "member"})
    assert r.status_code == 200, r.text
    register_secret(r.json().get("token"))
    assert r.json()["delivery"] == "link" and r.json()["delivery_error"]
    assert smtp.messages == [] and smtp.logins == []


def test_header_injection_is_refused(make_server, smtp, tmp_path):
    srv = mail_server(make_server, tmp_path, smtp.port)
    admin = srv.admin_client()
    org = new_org(admin)
    for bad in ("victim@example.com\r\nBcc: everyone@example.com", "victim@example.com\nSubject: x",
                "a@example.com>\r\nRCPT TO:<b@example.com", "tab\t@example.com"):
        r = admin.post(f"/api/v1/orgs/{org['id']}/invitations", json={"email": bad, "role": "member"})
        err(r, 400, "INVALID_PARAMETER_VALUE")
    assert invitations(admin, org["id"]) == []
    # a good one still goes out, and it is the only message
    assert admin.post(f"/api/v1/orgs/{org['id']}/invitations",
                      json={"email": "ok@example.com", "role": "member"}).json()["delivery"] == "email"
    assert [m[1] for m in smtp.wait(1)] == [["ok@example.com"]]
    time.sleep(0.2)
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("args, says", [
    (["--smtp-url", "smtp://kiln:hunter2-Secret@127.0.0.1:25", "--smtp-from", "k@example.com"], "credentials"),
    (["--smtp-url", "http://127.0.0.1:25", "--smtp-from", "k@example.com"], "smtp://"),
    (["--smtp-url", "smtp://127.0.0.1:25"], "smtp-from is required"),
    (["--smtp-url", "smtp://127.0.0.1:25", "--smtp-from", "k@example.com", "--smtp-user", "kiln"], "password"),
    (["--smtp-url", "smtps://127.0.0.1:465", "--smtp-from", "k@example.com", "--smtp-starttls"], "smtps://"),
    (["--public-url", "kiln.example.com"], "public-url"),
])
def test_bad_mail_settings_stop_the_server(kiln_binary, tmp_path, args, says):
    p = subprocess.run([kiln_binary, "server", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0", *args],
                       capture_output=True, text=True, timeout=scaled(30), env={"PATH": "/usr/bin:/bin"})
    assert p.returncode != 0 and says in p.stderr, (p.returncode, p.stderr)
    assert "hunter2-Secret" not in p.stderr + p.stdout


# ---- management ------------------------------------------------------------------------


@pytest.fixture
def team(server, make_user):
    owner, member, outsider = make_user(), make_user(), make_user()
    oc = owner.client()
    org = new_org(oc, "team")
    assert oc.put(f"/api/v1/orgs/{org['id']}/members/{member.id}", json={"role": "member"}).status_code == 200
    return {"owner": owner, "member": member, "outsider": outsider, "org": org}


def invite(c, org_id: str, email_addr: str, role: str = "member", **extra) -> Dict[str, Any]:
    r = c.post(f"/api/v1/orgs/{org_id}/invitations", json={"email": email_addr, "role": role, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    register_secret(body.get("token"))
    return body


def expire(server, invitation_id: str) -> None:
    """Moves an invitation's expiry into the past, straight in the store: the
    API's shortest lifetime is an hour, and expiry is only the clock passing
    expires_at."""
    db = sqlite3.connect(str(server.data_dir / "kiln.db"), timeout=30)
    try:
        with db:
            n = db.execute("UPDATE invitations SET expires_at = ? WHERE id = ?",
                           (int(time.time() * 1000) - 1000, invitation_id)).rowcount
        assert n == 1
    finally:
        db.close()


def test_list_shows_every_status_newest_first_and_pages(server, team, make_user):
    org, owner = team["org"], team["owner"]
    oc = owner.client()
    accepted = invite(oc, org["id"], "accepted@example.com", "admin")
    revoked = invite(oc, org["id"], "revoked@example.com")
    expired = invite(oc, org["id"], "expired@example.com")
    proj = oc.post("/api/v1/projects", json={"org_id": org["id"], "name": "inv-proj"}).json()["project"]
    pending = invite(oc, org["id"], "pending@example.com", "editor", project_id=proj["id"])

    joiner = make_user()
    assert joiner.client().post("/api/v1/invitations/accept", json={"token": accepted["token"]}).status_code == 200
    assert oc.delete(f"/api/v1/orgs/{org['id']}/invitations/{revoked['id']}").status_code == 200
    expire(server, expired["id"])

    listed = invitations(oc, org["id"])
    assert [i["id"] for i in listed] == [pending["id"], expired["id"], revoked["id"], accepted["id"]]
    assert [i["status"] for i in listed] == ["pending", "expired", "revoked", "accepted"]
    created = [i["created_at"] for i in listed]
    assert created == sorted(created, reverse=True)
    by_id = {i["id"]: i for i in listed}
    assert by_id[accepted["id"]]["accepted_by"] == joiner.id and "accepted_at" in by_id[accepted["id"]]
    assert "revoked_at" in by_id[revoked["id"]] and "accepted_at" not in by_id[revoked["id"]]
    p = by_id[pending["id"]]
    assert (p["project_id"], p["project_name"], p["role"]) == (proj["id"], "inv-proj", "editor")
    assert p["invited_by"] == owner.id and p["invited_by_username"] == owner.username
    assert all("token" not in i and "token_hash" not in i for i in listed)

    for status, want in (("pending", pending), ("expired", expired), ("revoked", revoked), ("accepted", accepted)):
        assert [i["id"] for i in invitations(oc, org["id"], status=status)] == [want["id"]]
    err(oc.get(f"/api/v1/orgs/{org['id']}/invitations", params={"status": "lost"}), 400, "INVALID_PARAMETER_VALUE")

    page1 = oc.get(f"/api/v1/orgs/{org['id']}/invitations", params={"max_results": 3}).json()
    assert len(page1["invitations"]) == 3 and page1["next_page_token"]
    page2 = oc.get(f"/api/v1/orgs/{org['id']}/invitations",
                   params={"max_results": 3, "page_token": page1["next_page_token"]}).json()
    assert "next_page_token" not in page2
    assert [i["id"] for i in page1["invitations"] + page2["invitations"]] == [i["id"] for i in listed]
    err(oc.get(f"/api/v1/orgs/{org['id']}/invitations", params={"max_results": 0}), 400, "INVALID_PARAMETER_VALUE")
    err(oc.get(f"/api/v1/orgs/{org['id']}/invitations", params={"page_token": "zzz"}), 400,
        "INVALID_PARAMETER_VALUE")

    # an expired invitation cannot be accepted
    r = joiner.client().post("/api/v1/invitations/accept", json={"token": expired["token"]})
    err(r, 400, "INVALID_PARAMETER_VALUE")
    assert "expired" in r.json()["message"]


def test_revoke_then_accept_fails(server, team, make_user):
    org, owner = team["org"], team["owner"]
    oc = owner.client()
    inv = invite(oc, org["id"], "revoke-me@example.com")
    r = oc.delete(f"/api/v1/orgs/{org['id']}/invitations/{inv['id']}")
    assert r.status_code == 200 and r.json() == {}
    invitee = make_user()
    r = invitee.client().post("/api/v1/invitations/accept", json={"token": inv["token"]})
    err(r, 400, "INVALID_PARAMETER_VALUE")
    assert "revoked" in r.json()["message"]
    err(invitee.client().get(f"/api/v1/orgs/{org['id']}/members"), 404, "RESOURCE_DOES_NOT_EXIST")
    # revoking again changes nothing; unknown ids and other orgs' ids are 404
    first = invitations(oc, org["id"])[0]["revoked_at"]
    assert oc.delete(f"/api/v1/orgs/{org['id']}/invitations/{inv['id']}").status_code == 200
    assert invitations(oc, org["id"])[0]["revoked_at"] == first
    err(oc.delete(f"/api/v1/orgs/{org['id']}/invitations/{'0' * 32}"), 404, "RESOURCE_DOES_NOT_EXIST")
    other = new_org(oc, "other")
    err(oc.delete(f"/api/v1/orgs/{other['id']}/invitations/{inv['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    # an accepted invitation is final: revoking it is a conflict
    done = invite(oc, org["id"], "done@example.com")
    assert invitee.client().post("/api/v1/invitations/accept", json={"token": done["token"]}).status_code == 200
    err(oc.delete(f"/api/v1/orgs/{org['id']}/invitations/{done['id']}"), 409, "CONFLICT")
    admin = server.admin_client()
    revokes = [e for e in audit_entries(admin, "invitation.revoke") if e["target"] == inv["id"]]
    assert revokes and revokes[0]["actor"] == owner.id


def test_only_org_admins_manage_invitations(server, team):
    org, owner, member, outsider = team["org"], team["owner"], team["member"], team["outsider"]
    inv = invite(owner.client(), org["id"], "someone@example.com")
    mc, xc = member.client(), outsider.client()
    err(mc.get(f"/api/v1/orgs/{org['id']}/invitations"), 403, "PERMISSION_DENIED")
    err(mc.delete(f"/api/v1/orgs/{org['id']}/invitations/{inv['id']}"), 403, "PERMISSION_DENIED")
    err(mc.post(f"/api/v1/orgs/{org['id']}/invitations", json={"email": "x@example.com", "role": "member"}),
        403, "PERMISSION_DENIED")
    # outsiders learn nothing, not even that the org exists
    err(xc.get(f"/api/v1/orgs/{org['id']}/invitations"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(xc.delete(f"/api/v1/orgs/{org['id']}/invitations/{inv['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(xc.get(f"/api/v1/orgs/{'0' * 32}/invitations"), 404, "RESOURCE_DOES_NOT_EXIST")
    # org admins and server admins may
    assert owner.client().put(f"/api/v1/orgs/{org['id']}/members/{member.id}", json={"role": "admin"}).status_code == 200
    assert [i["id"] for i in invitations(mc, org["id"])] == [inv["id"]]
    assert [i["id"] for i in invitations(server.admin_client(), org["id"])] == [inv["id"]]
    assert invitations(mc, org["id"])[0]["status"] == "pending"


def test_member_routes_take_a_username(server, team):
    org, owner, outsider = team["org"], team["owner"], team["outsider"]
    oc = owner.client()
    assert oc.put(f"/api/v1/orgs/{org['id']}/members/{outsider.username}", json={"role": "member"}).status_code == 200
    members = {m["user_id"]: m["role"] for m in oc.get(f"/api/v1/orgs/{org['id']}/members").json()["members"]}
    assert members[outsider.id] == "member"
    proj = oc.post("/api/v1/projects", json={"org_id": org["id"], "name": "by-name"}).json()["project"]
    assert oc.put(f"/api/v1/projects/{proj['id']}/members/{outsider.username}",
                  json={"role": "editor"}).status_code == 200
    assert outsider.client().get(f"/api/v1/projects/{proj['id']}").json()["project"]["role"] == "editor"
    assert oc.delete(f"/api/v1/projects/{proj['id']}/members/{outsider.username}").status_code == 200
    assert oc.delete(f"/api/v1/orgs/{org['id']}/members/{outsider.username}").status_code == 200
    err(oc.put(f"/api/v1/orgs/{org['id']}/members/no-such-user-{org['id'][:6]}", json={"role": "member"}), 404,
        "RESOURCE_DOES_NOT_EXIST")


def test_preview_shows_the_offer_without_spending_the_token(server, team, make_user):
    org, owner = team["org"], team["owner"]
    oc = owner.client()
    inv = invite(oc, org["id"], "preview@example.com", role="admin")
    invitee = make_user()
    ic = invitee.client()
    r = ic.post("/api/v1/invitations/preview", json={"token": inv["token"]})
    assert r.status_code == 200, r.text
    seen = r.json()["invitation"]
    assert seen["id"] == inv["id"] and seen["org_id"] == org["id"]
    assert seen["org_name"] == org["name"]
    assert seen["role"] == "admin" and seen["status"] == "pending"
    assert seen["invited_by"] == owner.id
    # still unspent: previewing twice and then accepting works
    assert ic.post("/api/v1/invitations/preview", json={"token": inv["token"]}).status_code == 200
    assert ic.post("/api/v1/invitations/accept", json={"token": inv["token"]}).status_code == 200
    after = ic.post("/api/v1/invitations/preview", json={"token": inv["token"]}).json()["invitation"]
    assert after["status"] == "accepted" and after["accepted_by"] == invitee.id
    err(ic.post("/api/v1/invitations/preview", json={"token": "kiln_inv_" + "A" * 43}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(ic.post("/api/v1/invitations/preview", json={}), 400, "INVALID_PARAMETER_VALUE")
    # it needs a signed-in caller, like accepting
    anon = server.client()
    r = anon.post("/api/v1/invitations/preview", json={"token": inv["token"]})
    assert r.status_code == 401

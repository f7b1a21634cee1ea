"""HTTP client for a Kiln server, built on urllib only (no third-party deps).

Every API method funnels through :meth:`Client._request`, which owns JSON
encoding, query strings, auth headers, response decoding and error mapping, so
later endpoint wrappers stay one-liners.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import http.client
import json as _jsonlib
import os
import platform
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._version import __version__
from .errors import ConnectionFailed, KilnError, Unauthenticated, error_from_response

__all__ = ["Client", "DEFAULT_URL", "Secret"]

DEFAULT_URL = "http://127.0.0.1:8080"

ParamValue = Union[str, int, float, bool, None, Sequence[Union[str, int, float, bool]]]
Params = Union[Mapping[str, ParamValue], Sequence[Tuple[str, ParamValue]]]

_USER_AGENT = f"kiln-sdk/{__version__} python/{platform.python_version()}"


def _param_str(value: Union[str, int, float, bool]) -> str:
    # Booleans first: bool is an int subclass and str(True) is "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_params(params: Optional[Params]) -> str:
    """Encode query parameters into a query string (without the ``?``).

    ``None`` values are skipped, booleans become ``true``/``false``, and list
    or tuple values become repeated keys (``tag=a&tag=b``). Order is kept.
    """
    if not params:
        return ""
    items: Iterable[Tuple[str, ParamValue]]
    if isinstance(params, Mapping):
        items = params.items()
    else:
        items = params
    pairs: List[Tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            pairs.extend((key, _param_str(v)) for v in value if v is not None)
        else:
            pairs.append((key, _param_str(value)))  # type: ignore[arg-type]
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


class Secret:
    """Holds a credential so that it never shows up in a repr, a traceback's
    locals, a log line or a debugger's view of the client. Read it with
    ``.value`` where it is really needed (to check a webhook's signature)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other.value
        return isinstance(other, str) and hmac.compare_digest(self.value.encode(), other.encode())

    __hash__ = None  # type: ignore[assignment]


_Secret = Secret


def _epoch_ms(value: Union[int, float, _dt.datetime, None], name: str) -> Optional[int]:
    """Epoch milliseconds from an int/float (already ms) or a datetime (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be epoch milliseconds or a datetime")
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)):
        return int(value)
    raise TypeError(f"{name} must be epoch milliseconds or a datetime")


def _quote(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")


class Client:
    """A connection-less client for one Kiln server.

    Args:
        url: Base URL of the server, e.g. ``"http://kiln.internal:8080"``
            (a path prefix such as ``"https://host/kiln"`` is kept). Defaults
            to the ``KILN_URL`` environment variable, else ``http://127.0.0.1:8080``.
        token: Bearer token (JWT or API key) sent as ``Authorization: Bearer
            <token>``. Defaults to the ``KILN_TOKEN`` environment variable;
            pass ``""`` to send no credentials even when it is set.
        username, password: Sign in with the password grant of
            ``POST /api/v1/auth/token`` on first use. The client keeps the
            access and refresh tokens in memory and renews them by itself.
        api_key: An API key (``kiln_...``), sent as ``Authorization: Bearer
            <key>``. Defaults to the ``KILN_API_KEY`` environment variable.
        timeout: Socket timeout in seconds for connecting and for each read.

    Pass at most one kind of credential (``token``, ``api_key`` or
    ``username``/``password``); explicit arguments win over the environment.

    Each call opens a fresh connection (no keep-alive), and token renewal is
    serialized by a lock, so a ``Client`` is safe to share between threads.

    Example::

        import kiln
        client = kiln.Client("http://127.0.0.1:8080", username="alice", password="...")
        print(client.whoami()["user"]["username"])
    """

    #: Renew the access token this many seconds before it expires (at most a
    #: tenth of its lifetime, so very short-lived tokens are still used).
    REFRESH_MARGIN_S = 30.0

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: float = 30.0,
    ) -> None:
        if url is None:
            url = os.environ.get("KILN_URL") or DEFAULT_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Kiln URL must look like http://host:port, got {url!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        explicit = [name for name, v in (("token", token), ("api_key", api_key), ("username", username)) if v]
        if len(explicit) > 1:
            raise ValueError("pass only one of token, api_key or username/password, not " + " and ".join(explicit))
        if not explicit and token != "" and api_key != "":
            # Nothing explicit: the environment decides ("" means "none").
            if token is None:
                token = os.environ.get("KILN_TOKEN") or None
            if not token and api_key is None:
                api_key = os.environ.get("KILN_API_KEY") or None

        self.url: str = url.rstrip("/")
        self.token: Optional[str] = token or None
        self.timeout: float = timeout
        self._api_key: Optional[_Secret] = _Secret(api_key) if api_key else None
        # Password sign-in state, guarded by _auth_lock. _generation counts
        # token changes, so a thread that got a 401 can tell whether another
        # thread has renewed the token meanwhile.
        self._auth_lock = threading.Lock()
        self._username: Optional[str] = username or None
        self._password: Optional[_Secret] = _Secret(password) if username and password else None
        self._session: bool = self._password is not None
        self._access: Optional[_Secret] = None
        self._refresh: Optional[_Secret] = None
        self._access_renew_at: float = 0.0
        self._generation: int = 0
        self._clock: Callable[[], float] = time.monotonic
        # Proxies from *_proxy / no_proxy are honoured like other HTTP tools.
        # Redirects are not followed: urllib would resend the Authorization
        # header to whatever host a redirect names, and Kiln's API never
        # redirects, so a 3xx surfaces as a KilnError instead.
        self._opener = urllib.request.build_opener(_NoRedirect())
        # (model, version) -> (when read, input names) for binary predictions
        self._input_cache: Dict[Tuple[str, Optional[str]], Tuple[float, List[str]]] = {}

    def __repr__(self) -> str:
        if self._session:
            auth = f"username={self._username!r}, password=***"
        elif self._api_key is not None:
            auth = "api_key=***"
        else:
            auth = "token=***" if self.token else "token=None"
        return f"Client(url={self.url!r}, {auth}, timeout={self.timeout!r})"

    # ------------------------------------------------------------------
    # Server status
    # ------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """Liveness probe: ``GET /healthz``; returns ``{"status": "ok"}``."""
        return self._request_dict("GET", "/healthz")

    def ready(self) -> Dict[str, Any]:
        """Readiness probe: ``GET /readyz``.

        Returns ``{"status": "ready", ...}`` when the server can take traffic;
        raises :class:`kiln.ServerError` (status 503) when it is not ready.
        """
        return self._request_dict("GET", "/readyz")

    def server_info(self) -> Dict[str, Any]:
        """``GET /api/v1/server-info``: name, version, commit, start time,
        uptime and store description of the server."""
        return self._request_dict("GET", "/api/v1/server-info")

    # ------------------------------------------------------------------
    # Signing in
    # ------------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """Sign in now with the password grant and use the session from here on.

        The tokens (and the password, to sign in again when the refresh token
        is refused) are kept in memory only. Replaces any ``token`` or
        ``api_key`` the client was built with.

        Raises:
            Unauthenticated: wrong username or password.
            RateLimited: too many failed attempts (see ``retry_after``).
        """
        if not username or not password:
            raise ValueError("username and password are required")
        with self._auth_lock:
            self._grant({"username": username, "password": password})
            self._username = username
            self._password = _Secret(password)
            self._session = True
            self.token = None
            self._api_key = None

    def logout(self) -> None:
        """Revoke the refresh token's family on the server
        (``POST /api/v1/auth/logout``) and forget every credential of the
        session, the password included. Later calls go unauthenticated until
        :meth:`login`. Does nothing on the server when not signed in."""
        with self._auth_lock:
            refresh = self._refresh
            self._forget_session()
            if refresh is not None:
                self._request("POST", "/api/v1/auth/logout", json={"refresh_token": refresh.value}, _auth=False)

    def whoami(self) -> Dict[str, Any]:
        """``GET /api/v1/auth/whoami``: ``{"user": {...}, "auth": {"kind",
        "scopes", "project_id"?, "key_id"?}}``."""
        return self._request_dict("GET", "/api/v1/auth/whoami")

    def change_password(self, old_password: str, new_password: str) -> None:
        """``POST /api/v1/auth/password``: change your own password.

        The server revokes every refresh token of the user; a password-signed-in
        client remembers the new password and signs in again with it when its
        access token runs out. A wrong ``old_password`` raises
        :class:`Unauthenticated` (without retrying) and a weak ``new_password``
        :class:`BadRequest` naming the rule.
        """
        self._request(
            "POST",
            "/api/v1/auth/password",
            json={"old_password": old_password, "new_password": new_password},
            _retry_auth=False,
        )
        with self._auth_lock:
            if self._session:
                self._password = _Secret(new_password)
                self._refresh = None  # revoked by the server

    # ------------------------------------------------------------------
    # API keys
    # ------------------------------------------------------------------

    def api_keys(self) -> List[Dict[str, Any]]:
        """``GET /api/v1/api-keys``: your keys (id, name, prefix, scopes,
        project_id, created_at, expires_at, last_used_at, revoked_at,
        grace_until; never the key itself)."""
        keys = self._request_dict("GET", "/api/v1/api-keys").get("api_keys")
        return list(keys) if isinstance(keys, list) else []

    def create_api_key(
        self,
        name: str,
        scopes: Optional[Sequence[str]] = None,
        project_id: Optional[str] = None,
        expires_at: Union[int, _dt.datetime, None] = None,
    ) -> Dict[str, Any]:
        """``POST /api/v1/api-keys``: create a key.

        Args:
            name: A label for the key.
            scopes: Some of ``"read"``, ``"write"``, ``"predict"``, ``"admin"``;
                the server's default is read, write and predict.
            project_id: Restrict the key to one project.
            expires_at: Epoch milliseconds or a ``datetime`` (naive = UTC).

        Returns:
            ``{"key": "kiln_...", "api_key": {...}}``. The key is shown only
            this once; store it.
        """
        body: Dict[str, Any] = {"name": name}
        if scopes is not None:
            if isinstance(scopes, str):
                scopes = [scopes]
            body["scopes"] = list(scopes)
        if project_id is not None:
            body["project_id"] = project_id
        ms = _epoch_ms(expires_at, "expires_at")
        if ms is not None:
            body["expires_at"] = ms
        return self._request_dict("POST", "/api/v1/api-keys", json=body)

    def revoke_api_key(self, key_id: str) -> None:
        """``DELETE /api/v1/api-keys/{key_id}``: revoke a key at once."""
        self._request("DELETE", f"/api/v1/api-keys/{_quote(key_id)}")

    def rotate_api_key(self, key_id: str, grace_seconds: Optional[int] = None) -> Dict[str, Any]:
        """``POST /api/v1/api-keys/{key_id}/rotate``: issue a new key; the old
        one stays valid for ``grace_seconds`` (server default 3600).

        Returns ``{"key": "kiln_...", "api_key": {...}}`` for the new key.
        """
        body: Dict[str, Any] = {}
        if grace_seconds is not None:
            body["grace_seconds"] = int(grace_seconds)
        return self._request_dict("POST", f"/api/v1/api-keys/{_quote(key_id)}/rotate", json=body)

    # ------------------------------------------------------------------
    # Users (server administrators)
    # ------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        email: Optional[str] = None,
        is_admin: bool = False,
    ) -> Dict[str, Any]:
        """``POST /api/v1/users`` (administrators): create a user; returns the
        user object (``id``, ``username``, ``is_admin``, ...)."""
        body: Dict[str, Any] = {"username": username, "password": password, "is_admin": bool(is_admin)}
        if email is not None:
            body["email"] = email
        answer = self._request_dict("POST", "/api/v1/users", json=body)
        user = answer.get("user")
        return user if isinstance(user, dict) else answer

    def reset_password(self, user_id: str, new_password: str) -> None:
        """``POST /api/v1/users/{user_id}/password`` (administrators): set a
        user's password; the user must change it at the next sign-in."""
        self._request("POST", f"/api/v1/users/{_quote(user_id)}/password", json={"new_password": new_password})

    # ------------------------------------------------------------------
    # Audit log (server administrators)
    # ------------------------------------------------------------------

    def audit(
        self,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        since: Union[int, _dt.datetime, None] = None,
        until: Union[int, _dt.datetime, None] = None,
        max_results: Optional[int] = None,
        page_token: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``GET /api/v1/audit``: one page of the audit log, newest first.

        ``since``/``until`` are epoch milliseconds or datetimes; ``max_results``
        is 1 to 1000 (server default 100). Returns ``{"entries": [...],
        "next_page_token": "..."}`` (the token only when more entries follow).
        """
        params = {
            "actor": actor,
            "action": action,
            "since": _epoch_ms(since, "since"),
            "until": _epoch_ms(until, "until"),
            "max_results": max_results,
            "page_token": page_token,
        }
        return self._request_dict("GET", "/api/v1/audit", params=params)

    def iter_audit(
        self,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        since: Union[int, _dt.datetime, None] = None,
        until: Union[int, _dt.datetime, None] = None,
        max_results: Optional[int] = None,
        page_token: Optional[str] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Every audit entry matching the filters, newest first, fetching page
        after page (``max_results`` is the page size) by ``next_page_token``."""
        token = page_token
        seen = set()
        while True:
            page = self.audit(actor, action, since, until, max_results, token)
            entries = page.get("entries")
            for entry in entries if isinstance(entries, list) else []:
                yield entry
            token = page.get("next_page_token")
            if not token or token in seen:
                return
            seen.add(token)

    # ------------------------------------------------------------------
    # Organizations, projects and members
    # ------------------------------------------------------------------

    def orgs(self) -> List[Dict[str, Any]]:
        """``GET /api/v1/orgs``: your organizations, newest first, each with
        ``id``, ``name``, ``display_name`` (when set), your ``role``
        (``"member"``, ``"admin"`` or ``"owner"``) and ``created_at``."""
        return self._list("GET", "/api/v1/orgs", "orgs")

    def create_org(self, name: str, display_name: Optional[str] = None) -> Dict[str, Any]:
        """``POST /api/v1/orgs``: create an organization; you become its owner.

        Args:
            name: A slug: lowercase letters, digits and ``-``, at most 64
                characters, not starting with ``-``.
            display_name: A free-text name for people.

        Returns:
            The org (``id``, ``name``, ``display_name``, ``created_at``).

        Raises:
            BadRequest: the name is malformed or taken
                (``RESOURCE_ALREADY_EXISTS``).
        """
        body: Dict[str, Any] = {"name": name}
        if display_name is not None:
            body["display_name"] = display_name
        return self._unwrap(self._request_dict("POST", "/api/v1/orgs", json=body), "org")

    def org_members(self, org_id: str) -> List[Dict[str, Any]]:
        """``GET /api/v1/orgs/{org_id}/members``: ``user_id``, ``username``,
        ``email`` (when set) and ``role`` of each member. Raises
        :class:`NotFound` when you are not a member (the org's existence is
        not revealed)."""
        return self._list("GET", f"/api/v1/orgs/{_quote(org_id)}/members", "members")

    def set_org_member(self, org_id: str, user: str, role: str) -> None:
        """``PUT /api/v1/orgs/{org_id}/members/{user}``: add a member or change
        their role (org owners and admins; only owners make owners).

        Args:
            user: A user id, username or email.
            role: ``"member"``, ``"admin"`` or ``"owner"``.

        Raises:
            PermissionDenied: your role does not allow it.
            Conflict: it would leave the org without an owner.
        """
        self._request("PUT", f"/api/v1/orgs/{_quote(org_id)}/members/{_quote(user)}", json={"role": role})

    def remove_org_member(self, org_id: str, user: str) -> None:
        """``DELETE /api/v1/orgs/{org_id}/members/{user}``: remove a member
        (and their roles in the org's projects). The last owner stays
        (:class:`Conflict`)."""
        self._request("DELETE", f"/api/v1/orgs/{_quote(org_id)}/members/{_quote(user)}")

    def projects(self) -> List[Dict[str, Any]]:
        """``GET /api/v1/projects``: the projects you can see, newest first,
        with ``org_id``, ``org_name``, ``name``, ``description`` and your
        ``role`` (``"viewer"``, ``"editor"`` or ``"admin"``)."""
        return self._list("GET", "/api/v1/projects", "projects")

    def project(self, project_id: str) -> Dict[str, Any]:
        """``GET /api/v1/projects/{project_id}``: one project and your role in it."""
        return self._unwrap(self._request_dict("GET", f"/api/v1/projects/{_quote(project_id)}"), "project")

    def create_project(self, org_id: str, name: str, description: Optional[str] = None) -> Dict[str, Any]:
        """``POST /api/v1/projects``: create a project in an organization
        (org owners and admins). ``name`` is a slug unique within the org.
        Returns the project."""
        body: Dict[str, Any] = {"org_id": org_id, "name": name}
        if description is not None:
            body["description"] = description
        return self._unwrap(self._request_dict("POST", "/api/v1/projects", json=body), "project")

    def project_members(self, project_id: str) -> List[Dict[str, Any]]:
        """``GET /api/v1/projects/{project_id}/members``: the project's
        explicit members (``user_id``, ``username``, ``email``, ``role``).
        Org owners and admins act as project admins without being listed."""
        return self._list("GET", f"/api/v1/projects/{_quote(project_id)}/members", "members")

    def set_project_member(self, project_id: str, user: str, role: str) -> None:
        """``PUT /api/v1/projects/{project_id}/members/{user}``: give an org
        member a project role (project admins).

        Args:
            user: A user id, username or email; they must belong to the
                project's org (else :class:`BadRequest`).
            role: ``"viewer"``, ``"editor"`` or ``"admin"``.
        """
        self._request("PUT", f"/api/v1/projects/{_quote(project_id)}/members/{_quote(user)}", json={"role": role})

    def remove_project_member(self, project_id: str, user: str) -> None:
        """``DELETE /api/v1/projects/{project_id}/members/{user}``: remove an
        explicit project role (project admins)."""
        self._request("DELETE", f"/api/v1/projects/{_quote(project_id)}/members/{_quote(user)}")

    # ------------------------------------------------------------------
    # Invitations
    # ------------------------------------------------------------------

    def invite(
        self,
        org_id: str,
        email: str,
        role: Optional[str] = None,
        project_id: Optional[str] = None,
        ttl_seconds: Optional[int] = None,
    ) -> Dict[str, Any]:
        """``POST /api/v1/orgs/{org_id}/invitations``: invite someone by email
        (org owners and admins).

        Args:
            email: The invitee's address.
            role: For an org invitation ``"member"`` (default), ``"admin"`` or
                ``"owner"``; with ``project_id``, ``"viewer"`` (default),
                ``"editor"`` or ``"admin"``.
            project_id: Invite to this project of the org (the invitee also
                becomes an org member).
            ttl_seconds: How long the invitation is valid: 1 hour to 30 days
                (server default 7 days).

        Returns:
            ``{"id", "invitation": {...}, "delivery": "email" | "link"}``.
            With ``"email"`` the server mailed the link and the answer holds
            no secret. With ``"link"`` (no SMTP configured, or sending failed,
            then with ``"delivery_error"``) it also holds ``"link"`` and
            ``"token"``: pass the link on; it works once.
        """
        body: Dict[str, Any] = {"email": email, "role": role or ("viewer" if project_id else "member")}
        if project_id is not None:
            body["project_id"] = project_id
        if ttl_seconds is not None:
            body["ttl_seconds"] = int(ttl_seconds)
        return self._request_dict("POST", f"/api/v1/orgs/{_quote(org_id)}/invitations", json=body)

    def invitations(self, org_id: str, status: Optional[str] = None) -> List[Dict[str, Any]]:
        """``GET /api/v1/orgs/{org_id}/invitations`` (org owners and admins):
        every invitation of the org, newest first, following the pages.

        Each has ``id``, ``email``, ``role``, ``project_id`` (when for a
        project), ``invited_by``, ``created_at``, ``expires_at``,
        ``accepted_at``/``revoked_at`` (when set) and ``status``: one of
        ``"pending"``, ``"accepted"``, ``"expired"``, ``"revoked"``; pass
        ``status`` to get only those. Never the token.
        """
        path = f"/api/v1/orgs/{_quote(org_id)}/invitations"
        found: List[Dict[str, Any]] = []
        token: Optional[str] = None
        seen = set()
        while True:
            page = self._request_dict(
                "GET", path, params={"status": status, "max_results": 1000, "page_token": token}
            )
            items = page.get("invitations")
            found.extend(i for i in (items if isinstance(items, list) else []) if isinstance(i, dict))
            token = page.get("next_page_token")
            if not isinstance(token, str) or not token or token in seen:
                return found
            seen.add(token)

    def revoke_invitation(self, org_id: str, invitation_id: str) -> None:
        """``DELETE /api/v1/orgs/{org_id}/invitations/{invitation_id}``:
        withdraw a pending invitation; its link stops working. Revoking twice
        is harmless; an accepted invitation raises :class:`Conflict` (remove
        the member instead) and an unknown id :class:`NotFound`."""
        self._request("DELETE", f"/api/v1/orgs/{_quote(org_id)}/invitations/{_quote(invitation_id)}")

    @staticmethod
    def _invitation_token(token: str) -> str:
        if "token=" in token:
            query = urllib.parse.urlsplit(token).query or token.split("?", 1)[-1]
            token = urllib.parse.parse_qs(query).get("token", [""])[0]
        if not token:
            raise ValueError("an invitation token or link is required")
        return token

    def preview_invitation(self, token: str) -> Dict[str, Any]:
        """``POST /api/v1/invitations/preview``: what an invitation offers
        (``org_name``, ``project_name``, ``role``, ``status``, ...) without
        accepting it; the token stays usable.

        Args:
            token: The invitation token, or the whole accept link.

        Raises:
            NotFound: no such invitation.
        """
        answer = self._request_dict("POST", "/api/v1/invitations/preview",
                                    json={"token": self._invitation_token(token)})
        invitation = answer.get("invitation")
        return invitation if isinstance(invitation, dict) else answer

    def accept_invitation(self, token: str) -> Dict[str, Any]:
        """``POST /api/v1/invitations/accept``: join as the signed-in user.

        Args:
            token: The invitation token, or the whole accept link
                (``.../invitations/accept?token=...``).

        Returns:
            The invitation (``org_id``, ``project_id``, ``role``, ...), now
            ``"accepted"``.

        Raises:
            NotFound: no such invitation.
            BadRequest: it was already accepted, revoked or has expired.
        """
        token = self._invitation_token(token)
        answer = self._request_dict("POST", "/api/v1/invitations/accept", json={"token": token})
        invitation = answer.get("invitation")
        return invitation if isinstance(invitation, dict) else answer

    # ------------------------------------------------------------------
    # Model registry (MLflow's registry API, in the selected project)
    # ------------------------------------------------------------------

    _REG = "/api/2.0/mlflow"

    def create_registered_model(self, name: str, description: Optional[str] = None,
                                tags: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """``POST registered-models/create``: register a model name in the
        selected project. Returns the RegisteredModel; a taken name raises
        ``AlreadyExists``-class ``KilnError`` (``RESOURCE_ALREADY_EXISTS``)."""
        body: Dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        if tags:
            body["tags"] = [{"key": k, "value": str(v)} for k, v in tags.items()]
        return self._unwrap(self._request_dict("POST", self._REG + "/registered-models/create", json=body),
                            "registered_model")

    def get_registered_model(self, name: str) -> Dict[str, Any]:
        """``GET registered-models/get``: the model with ``latest_versions``
        (the newest version per stage), ``tags`` and ``aliases``."""
        return self._unwrap(self._request_dict("GET", self._REG + "/registered-models/get", params={"name": name}),
                            "registered_model")

    def search_registered_models(self, filter: Optional[str] = None, order_by: Optional[Sequence[str]] = None,
                                 max_results: Optional[int] = None) -> List[Dict[str, Any]]:
        """``GET registered-models/search``, every page: the models matching
        ``filter`` (``name = 'x'``, ``name LIKE 'churn%'``, ``tags.team =
        'cv'``), ordered by ``order_by`` (``name``, ``last_updated_timestamp``,
        ``creation_timestamp`` with ASC/DESC). ``max_results`` caps the total."""
        out: List[Dict[str, Any]] = []
        token: Optional[str] = None
        while True:
            page_size = 1000 if max_results is None else max(1, min(1000, max_results - len(out)))
            params: Dict[str, Any] = {"max_results": page_size}
            if filter:
                params["filter"] = filter
            if order_by:
                params["order_by"] = list(order_by)
            if token:
                params["page_token"] = token
            answer = self._request_dict("GET", self._REG + "/registered-models/search", params=params)
            out += [m for m in answer.get("registered_models", []) if isinstance(m, dict)]
            token = answer.get("next_page_token")
            if not token or (max_results is not None and len(out) >= max_results):
                return out if max_results is None else out[:max_results]

    def create_model_version(self, name: str, source: str, run_id: Optional[str] = None,
                             tags: Optional[Mapping[str, str]] = None, description: Optional[str] = None,
                             run_link: Optional[str] = None) -> Dict[str, Any]:
        """``POST model-versions/create``: the next version of ``name`` from
        ``source`` (a run's artifact URI or ``runs:/<run_id>/<path>`` of this
        project, ``models:/<logged model id>``, or remote storage such as
        ``s3://...``; local paths are refused). Returns the ModelVersion."""
        body: Dict[str, Any] = {"name": name, "source": source}
        for k, v in (("run_id", run_id), ("description", description), ("run_link", run_link)):
            if v is not None:
                body[k] = v
        if tags:
            body["tags"] = [{"key": k, "value": str(v)} for k, v in tags.items()]
        return self._unwrap(self._request_dict("POST", self._REG + "/model-versions/create", json=body),
                            "model_version")

    def transition_model_version_stage(self, name: str, version: Union[str, int], stage: str,
                                       archive_existing_versions: bool = False) -> Dict[str, Any]:
        """``POST model-versions/transition-stage``: move a version to
        ``None``, ``Staging``, ``Production`` or ``Archived`` (any case);
        ``archive_existing_versions`` archives the stage's other versions."""
        body = {"name": name, "version": str(version), "stage": stage,
                "archive_existing_versions": bool(archive_existing_versions)}
        return self._unwrap(self._request_dict("POST", self._REG + "/model-versions/transition-stage", json=body),
                            "model_version")

    def register_model(self, model_uri: str, name: str, tags: Optional[Mapping[str, str]] = None,
                       description: Optional[str] = None) -> Dict[str, Any]:
        """Like ``mlflow.register_model``: registers ``name`` when it does not
        exist yet, then makes the next version from ``model_uri``
        (``runs:/<run_id>/<path>``, a run's artifact URI, ``models:/<logged
        model id>`` or remote storage). Returns the ModelVersion."""
        try:
            self.create_registered_model(name)
        except KilnError as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        run_id = None
        if model_uri.startswith("runs:/"):
            run_id = model_uri[len("runs:/"):].split("/", 1)[0] or None
        return self.create_model_version(name, model_uri, run_id=run_id, tags=tags, description=description)

    def transition(self, name: str, version: Union[str, int], stage: str,
                   archive_existing_versions: bool = False) -> Dict[str, Any]:
        """Short for :meth:`transition_model_version_stage`."""
        return self.transition_model_version_stage(name, version, stage, archive_existing_versions)

    def set_registered_model_alias(self, name: str, alias: str, version: Union[str, int]) -> None:
        """``POST registered-models/alias``: point ``alias`` at ``version``
        (moving it when already set)."""
        self._request("POST", self._REG + "/registered-models/alias",
                      json={"name": name, "alias": alias, "version": str(version)})

    def get_model_version_by_alias(self, name: str, alias: str) -> Dict[str, Any]:
        """``GET registered-models/alias``: the ModelVersion ``alias`` points at."""
        return self._unwrap(self._request_dict("GET", self._REG + "/registered-models/alias",
                                               params={"name": name, "alias": alias}), "model_version")

    # ------------------------------------------------------------------
    # Registry governance and approvals (the selected project)
    # ------------------------------------------------------------------

    def get_registry_governance(self) -> Dict[str, Any]:
        """``GET /api/v1/registry/governance``: the project's rules,
        ``{"require_approval_for_production": bool, "protected_aliases":
        [...], "updated_at"?, "updated_by"?}`` (anyone in the project)."""
        return self._unwrap(self._request_dict("GET", "/api/v1/registry/governance"), "governance")

    def set_registry_governance(self, require_approval_for_production: Optional[bool] = None,
                                protected_aliases: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """``PUT /api/v1/registry/governance`` (project admins): change the
        rules; an argument left ``None`` stays as it is, ``[]`` clears the
        protected aliases. Returns the new settings. Others get
        :class:`PermissionDenied` (``PERMISSION_DENIED``)."""
        body: Dict[str, Any] = {}
        if require_approval_for_production is not None:
            body["require_approval_for_production"] = require_approval_for_production
        if protected_aliases is not None:
            body["protected_aliases"] = [protected_aliases] if isinstance(protected_aliases, str) \
                else list(protected_aliases)
        return self._unwrap(self._request_dict("PUT", "/api/v1/registry/governance", json=body), "governance")

    _APPROVALS = "/api/v1/approvals"

    def request_approval(self, name: str, version: Union[str, int], stage: Optional[str] = None,
                         alias: Optional[str] = None, archive_existing_versions: bool = False,
                         comment: Optional[str] = None) -> Dict[str, Any]:
        """``POST /api/v1/approvals``: ask a project admin to move ``version``
        to ``stage`` or to point ``alias`` at it (exactly one of the two) —
        what to do after a change raised ``APPROVAL_REQUIRED``. Returns the
        PENDING request (``id``, ``kind``, ``target``, ``state``, ...). A
        request for the same change already pending raises :class:`Conflict`."""
        body: Dict[str, Any] = {"name": name, "version": str(version)}
        for k, v in (("stage", stage), ("alias", alias), ("comment", comment)):
            if v is not None:
                body[k] = v
        if archive_existing_versions:
            body["archive_existing_versions"] = True
        return self._unwrap(self._request_dict("POST", self._APPROVALS, json=body), "approval_request")

    def list_approvals(self, state: Optional[str] = "PENDING") -> List[Dict[str, Any]]:
        """``GET /api/v1/approvals``, every page: the project's approval
        requests, newest first, in ``state`` (``PENDING``, ``APPROVED``,
        ``REJECTED``, ``CANCELLED``, ``STALE`` or ``ALL``)."""
        return self._pages(self._APPROVALS, "approval_requests", {"state": state})

    def get_approval(self, request_id: str) -> Dict[str, Any]:
        """``GET /api/v1/approvals/{id}``: one request (``NotFound`` for
        another project's)."""
        return self._unwrap(self._request_dict("GET", f"{self._APPROVALS}/{_quote(request_id)}"),
                            "approval_request")

    def _decide(self, request_id: str, verb: str, comment: Optional[str]) -> Dict[str, Any]:
        body = {"comment": comment} if comment is not None else {}
        return self._unwrap(self._request_dict("POST", f"{self._APPROVALS}/{_quote(request_id)}/{verb}", json=body),
                            "approval_request")

    def approve(self, request_id: str, comment: Optional[str] = None) -> Dict[str, Any]:
        """``POST /api/v1/approvals/{id}/approve`` (project admins): the
        request becomes APPROVED and its change is made in the same write.
        Others get ``PERMISSION_DENIED``; a request decided already
        ``INVALID_STATE``; one gone stale (its version moved meanwhile)
        :class:`Conflict`."""
        return self._decide(request_id, "approve", comment)

    def reject(self, request_id: str, comment: Optional[str] = None) -> Dict[str, Any]:
        """``POST /api/v1/approvals/{id}/reject`` (project admins): REJECTED;
        nothing changes."""
        return self._decide(request_id, "reject", comment)

    def cancel_approval(self, request_id: str) -> Dict[str, Any]:
        """``POST /api/v1/approvals/{id}/cancel``: withdraw your own pending
        request (anyone else's is ``PERMISSION_DENIED``)."""
        return self._decide(request_id, "cancel", None)

    # ------------------------------------------------------------------
    # Comments on model versions, and lineage (the selected project)
    # ------------------------------------------------------------------

    @staticmethod
    def _version_path(name: str, version: Union[str, int]) -> str:
        return f"/api/v1/models/{_quote(name)}/versions/{_quote(str(version))}"

    def add_version_comment(self, name: str, version: Union[str, int], body: str) -> Dict[str, Any]:
        """``POST .../versions/{version}/comments`` (editors and up): comment
        on a version (1 to 10,000 bytes). Returns the comment (``id``,
        ``author``, ``body``, ``created_at``, ...)."""
        return self._unwrap(self._request_dict("POST", self._version_path(name, version) + "/comments",
                                               json={"body": body}), "comment")

    def list_version_comments(self, name: str, version: Union[str, int]) -> List[Dict[str, Any]]:
        """``GET .../versions/{version}/comments``, every page: the version's
        comments, oldest first."""
        return self._pages(self._version_path(name, version) + "/comments", "comments")

    def update_version_comment(self, name: str, version: Union[str, int], comment_id: str,
                               body: str) -> Dict[str, Any]:
        """``PATCH .../comments/{comment_id}``: edit your own comment (anyone
        else's is ``PERMISSION_DENIED``). Returns the comment."""
        path = f"{self._version_path(name, version)}/comments/{_quote(comment_id)}"
        return self._unwrap(self._request_dict("PATCH", path, json={"body": body}), "comment")

    def delete_version_comment(self, name: str, version: Union[str, int], comment_id: str) -> None:
        """``DELETE .../comments/{comment_id}``: its author or a project admin."""
        self._request("DELETE", f"{self._version_path(name, version)}/comments/{_quote(comment_id)}")

    def model_version_lineage(self, name: str, version: Union[str, int]) -> Dict[str, Any]:
        """``GET .../versions/{version}/lineage``: where a version came from,
        as a graph ``{"nodes": [{id, type, label, attrs, missing?}], "edges":
        [{from, to, type}], "truncated"?: true}``. Node ids are
        ``<type>:<key>`` (``run:<run id>``, ``model_version:<name>/<version>``,
        ...); ignore node and edge types you do not know."""
        return self._request_dict("GET", self._version_path(name, version) + "/lineage")

    # ------------------------------------------------------------------
    # Registry webhooks and settings (a project; its admins)
    # ------------------------------------------------------------------

    def _project_of(self, project_id: Optional[str]) -> str:
        """The project a per-project route is for: ``project_id``, else the
        API key's project, else the user's default project (as the CLI)."""
        if project_id:
            return project_id
        me = self.whoami()
        auth, user = me.get("auth"), me.get("user")
        found = (auth.get("project_id") if isinstance(auth, dict) else None) or \
            (user.get("default_project_id") if isinstance(user, dict) else None)
        if not isinstance(found, str) or not found:
            raise ValueError("no default project for these credentials: pass project_id=")
        return found

    def _hooks(self, project_id: Optional[str], webhook_id: Optional[str] = None) -> str:
        path = f"/api/v1/projects/{_quote(self._project_of(project_id))}/webhooks"
        return path + (f"/{_quote(webhook_id)}" if webhook_id is not None else "")

    @staticmethod
    def _hook_answer(answer: Dict[str, Any]) -> Dict[str, Any]:
        secret = answer.get("secret")
        if isinstance(secret, str):
            answer["secret"] = Secret(secret)
        return answer

    def create_webhook(self, url: str, events: Sequence[str], model_name: Optional[str] = None,
                       description: Optional[str] = None, status: Optional[str] = None,
                       secret: Union[str, Secret, None] = None, *,
                       project_id: Optional[str] = None) -> Dict[str, Any]:
        """``POST /api/v1/projects/{project_id}/webhooks`` (project admins):
        have Kiln POST signed JSON to ``url`` for ``events``
        (``MODEL_VERSION_CREATED``, ``MODEL_VERSION_READY``,
        ``MODEL_VERSION_TRANSITIONED_STAGE``, ``REGISTERED_MODEL_ALIAS_SET``,
        ``REGISTERED_MODEL_ALIAS_DELETED``), optionally only ``model_name``'s;
        ``status`` is ``ACTIVE`` (default), ``DISABLED`` or ``TEST_MODE``.

        Returns ``{"webhook": {...}, "secret": Secret}``: the signing secret
        (yours, or made by the server) is shown only this once; it prints as
        ``<secret>``, read it with ``.value``. ``project_id`` defaults to the
        API key's project, else your default project. Editors get
        ``PERMISSION_DENIED``."""
        body: Dict[str, Any] = {"url": url, "events": [events] if isinstance(events, str) else list(events)}
        for k, v in (("model_name", model_name), ("description", description), ("status", status)):
            if v is not None:
                body[k] = v
        if secret is not None:
            body["secret"] = secret.value if isinstance(secret, Secret) else secret
        return self._hook_answer(self._request_dict("POST", self._hooks(project_id), json=body))

    def list_webhooks(self, *, project_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """The project's webhooks, oldest first, every page (never secrets)."""
        return self._pages(self._hooks(project_id), "webhooks")

    def get_webhook(self, webhook_id: str, *, project_id: Optional[str] = None) -> Dict[str, Any]:
        """One webhook (``id``, ``url``, ``events``, ``status``, ...; never its secret)."""
        return self._unwrap(self._request_dict("GET", self._hooks(project_id, webhook_id)), "webhook")

    def update_webhook(self, webhook_id: str, *, url: Optional[str] = None, events: Optional[Sequence[str]] = None,
                       model_name: Optional[str] = None, description: Optional[str] = None,
                       status: Optional[str] = None, secret: Union[str, Secret, None] = None,
                       rotate_secret: bool = False, project_id: Optional[str] = None) -> Dict[str, Any]:
        """``PATCH .../webhooks/{id}``: change the fields given (``None`` leaves
        one alone; ``model_name=""`` / ``description=""`` clear). ``secret``
        sets your own signing secret, ``rotate_secret=True`` has the server
        make one. Returns ``{"webhook": {...}}``, with ``"secret"`` (a
        :class:`Secret`) when it was rotated."""
        body: Dict[str, Any] = {}
        for k, v in (("url", url), ("model_name", model_name), ("description", description), ("status", status)):
            if v is not None:
                body[k] = v
        if events is not None:
            body["events"] = [events] if isinstance(events, str) else list(events)
        if secret is not None:
            body["secret"] = secret.value if isinstance(secret, Secret) else secret
        if rotate_secret:
            body["rotate_secret"] = True
        return self._hook_answer(self._request_dict("PATCH", self._hooks(project_id, webhook_id), json=body))

    def delete_webhook(self, webhook_id: str, *, project_id: Optional[str] = None) -> None:
        """Delete a webhook with its queued deliveries and log."""
        self._request("DELETE", self._hooks(project_id, webhook_id))

    def test_webhook(self, webhook_id: str, *, project_id: Optional[str] = None) -> Dict[str, Any]:
        """``POST .../webhooks/{id}/test``: queue a ``TEST`` event now (one
        attempt, whatever the status). Returns the delivery (``id``,
        ``state`` PENDING); poll :meth:`get_webhook_delivery` for the outcome."""
        return self._unwrap(self._request_dict("POST", self._hooks(project_id, webhook_id) + "/test"), "delivery")

    def list_webhook_deliveries(self, webhook_id: str, *, project_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """The webhook's delivery log, newest first, every page: each with
        ``event``, ``state`` (PENDING, SUCCEEDED, FAILED), ``attempts``,
        ``last_status_code``, ``last_error``, ``payload`` and ``attempt_log``."""
        return self._pages(self._hooks(project_id, webhook_id) + "/deliveries", "deliveries")

    def get_webhook_delivery(self, webhook_id: str, delivery_id: str, *,
                             project_id: Optional[str] = None) -> Dict[str, Any]:
        """One delivery with its attempts."""
        path = f"{self._hooks(project_id, webhook_id)}/deliveries/{_quote(delivery_id)}"
        return self._unwrap(self._request_dict("GET", path), "delivery")

    def get_registry_settings(self, *, project_id: Optional[str] = None) -> Dict[str, Any]:
        """``GET /api/v1/projects/{project_id}/registry-settings``:
        ``{"project_id", "allow_unsafe_pickles", "updated_at"?, "updated_by"?}``."""
        path = f"/api/v1/projects/{_quote(self._project_of(project_id))}/registry-settings"
        return self._unwrap(self._request_dict("GET", path), "settings")

    def set_registry_settings(self, allow_unsafe_pickles: bool, *,
                              project_id: Optional[str] = None) -> Dict[str, Any]:
        """``PUT .../registry-settings`` (project admins): whether uploads of
        pickles importing unsafe globals become READY (flagged ``unsafe``)
        instead of being refused. Audited. Returns the settings."""
        path = f"/api/v1/projects/{_quote(self._project_of(project_id))}/registry-settings"
        return self._unwrap(self._request_dict("PUT", path, json={"allow_unsafe_pickles": allow_unsafe_pickles}),
                            "settings")

    # ------------------------------------------------------------------
    # Model files: upload (resumable) and download
    # ------------------------------------------------------------------

    _UPLOADS = "/api/v1/models/uploads"

    def upload_model(self, path: Union[str, "os.PathLike[str]"], name: str, description: Optional[str] = None,
                     tags: Optional[Mapping[str, str]] = None, chunk_size: int = 8 << 20,
                     progress: Optional[Callable[[int, int], None]] = None, upload_id: Optional[str] = None,
                     retries: int = 3) -> Dict[str, Any]:
        """Upload a model file as the next version of ``name`` (made when
        missing) in chunks through a resumable session, then have the server
        scan and register it. Returns the uploaded version (``status``,
        ``format``, ``framework``, ``sha256``, ``size``, ``scan``,
        ``signature``, ``prediction_url``).

        ``progress(bytes_sent, total)`` is called after every chunk. A chunk
        that fails in transit is retried (``retries`` times) from the byte the
        server says it has; when it still fails the ``KilnError`` raised carries
        ``upload_id``: pass it back as ``upload_id=`` to resume. A refused file
        raises the server's error (``UNSAFE_MODEL`` 422 naming the global,
        ``UNSUPPORTED_MEDIA_TYPE`` 415, a checksum mismatch 400); the version it
        made is in the error's ``details["model_version"]`` when it has one."""
        import hashlib

        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        fspath = os.fspath(path)
        size = os.path.getsize(fspath)
        digest = hashlib.sha256()
        with open(fspath, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        received = 0
        if upload_id:
            session = self._unwrap(self._request_dict("GET", f"{self._UPLOADS}/{_quote(upload_id)}"), "upload")
            if session.get("size") != size or session.get("sha256", sha) != sha:
                raise ValueError(f"upload {upload_id} was started for another file")
            received = int(session.get("received", 0))
        else:
            body: Dict[str, Any] = {"name": name, "size": size, "sha256": sha}
            if description is not None:
                body["description"] = description
            if tags:
                body["tags"] = [{"key": k, "value": str(v)} for k, v in tags.items()]
            upload_id = str(self._unwrap(self._request_dict("POST", self._UPLOADS, json=body), "upload")["upload_id"])
        where = f"{self._UPLOADS}/{_quote(upload_id)}"
        failures = 0
        if progress:
            progress(received, size)
        with open(fspath, "rb") as f:
            while received < size:
                f.seek(received)
                chunk = f.read(min(chunk_size, size - received))
                rng = f"bytes {received}-{received + len(chunk) - 1}/{size}"
                try:
                    answer = self._request_dict("PUT", where, data=chunk,
                                                headers={"Content-Type": "application/octet-stream",
                                                         "Content-Range": rng})
                    received = int(self._unwrap(answer, "upload")["received"])
                    failures = 0
                except KilnError as err:
                    transient = isinstance(err, ConnectionFailed) or err.error_code == "CONFLICT"
                    failures += 1
                    if not transient or failures > retries:
                        err.upload_id = upload_id  # type: ignore[attr-defined]
                        raise
                    try:
                        session = self._unwrap(self._request_dict("GET", where), "upload")
                        received = int(session["received"])
                    except ConnectionFailed:
                        time.sleep(min(2.0, 0.2 * failures))
                    continue
                if progress:
                    progress(received, size)
        return self._unwrap(self._request_dict("POST", where + "/complete"), "model_version")

    def download_model(self, name: str, version: Union[str, int], path: Union[str, "os.PathLike[str]"],
                       chunk_size: int = 8 << 20) -> str:
        """Download an uploaded version's file to ``path`` in ranged pieces
        (never the whole file in memory), checking its SHA-256 against the
        version's. Returns the SHA-256."""
        import hashlib

        base = f"/api/v1/models/{_quote(name)}/versions/{_quote(str(version))}"
        info = self._unwrap(self._request_dict("GET", base + "/scan"), "model_version")
        size, want = int(info["size"]), str(info["sha256"])
        fspath = os.fspath(path)
        tmp = fspath + ".part"
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                pos = 0
                while pos < size:
                    last = min(size, pos + chunk_size) - 1
                    piece = self._request("GET", base + "/download", raw=True,
                                          headers={"Range": f"bytes={pos}-{last}",
                                                   "Accept": "application/octet-stream"})
                    if not piece:
                        raise KilnError("INVALID_RESPONSE", f"empty piece at byte {pos}")
                    f.write(piece)
                    digest.update(piece)
                    pos += len(piece)
                f.flush()
                os.fsync(f.fileno())
            if digest.hexdigest() != want:
                raise KilnError("DATA_CORRUPTED", f"downloaded sha256 {digest.hexdigest()} is not {want}")
            os.replace(tmp, fspath)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return want

    def model_version_scan(self, name: str, version: Union[str, int]) -> Dict[str, Any]:
        """The scan report, format, framework, checksum and signature of an
        uploaded version."""
        return self._unwrap(self._request_dict(
            "GET", f"/api/v1/models/{_quote(name)}/versions/{_quote(str(version))}/scan"), "model_version")

    # ------------------------------------------------------------------
    # Serving: predictions, the loaded models, model metadata
    # ------------------------------------------------------------------

    #: How long :meth:`predict` trusts the input names it read from a model's
    #: V2 metadata (binary requests only).
    _METADATA_TTL_S = 10.0

    @staticmethod
    def _serving_version(version: Union[str, int, None]) -> str:
        return "latest" if version is None or str(version) == "" else str(version)

    def predict(self, model: str, data: Any, version: Union[str, int, None] = None, proba: bool = False,
                output_margin: bool = False, binary: Optional[bool] = None) -> Any:
        """Predictions of a registered model version (loaded on first use).

        Args:
            model: The registered model's name (in the selected project).
            data: The rows to score, as any of
                - a list of rows (``[[5.1, 3.5, 1.4, 0.2], ...]``; sent as
                  MLflow ``instances``),
                - a dict of columns (``{"age": [31, 45], "income": [...]}``;
                  ``dataframe_split``), or a dict of one row's values,
                - a list of dicts, one per row (``dataframe_records``),
                - a numpy array whose first dimension is the rows (or a dict
                  ``{input_name: array}`` for models with several inputs),
                - a pandas DataFrame (its column names are used).
                ``NaN`` is sent as missing (``null``), which XGBoost models
                read as a missing value.
            version: A version number, ``"latest"`` (the newest READY
                version; the default) or an alias such as ``"champion"``.
            proba: Class probabilities instead of labels (classifiers).
            output_margin: Raw scores before the link function (XGBoost).
            binary: Use the KServe V2 binary tensor extension. ``None`` (the
                default) uses it for numeric numpy input of more than
                ``serving.BINARY_MIN_ELEMENTS`` (1,000) elements; ``True``
                forces it (numeric numpy input only); ``False`` never.

        Returns:
            The JSON path returns the ``predictions`` list: one entry per row
            (a number, a list of probabilities, ...), or one ``{output: value}``
            object per row for models with several outputs. The binary path
            returns numpy arrays: the output's array (rows first) for a model
            with one output, else a dict ``{output_name: array}``; ``BYTES``
            outputs are object arrays of ``bytes``.

        Raises:
            BadRequest: the input does not fit the model's signature; the
                message names the input or column at fault and what was
                expected (``INVALID_PARAMETER_VALUE``).
            NotFound: no such model or version (``RESOURCE_DOES_NOT_EXIST``).
            ServerError: 503 ``TEMPORARILY_UNAVAILABLE`` when the model's queue
                is full (retry after ``Retry-After`` seconds), 504
                ``DEADLINE_EXCEEDED`` when the prediction took too long.
        """
        from . import serving

        if not model:
            raise ValueError("model must name a registered model")
        use_binary = binary
        if use_binary is None:
            use_binary = serving.numeric_numpy(data) and serving.numpy_elements(data) > serving.BINARY_MIN_ELEMENTS
        elif use_binary and not serving.numeric_numpy(data):
            raise ValueError("binary=True needs a numeric numpy array (or a dict of them)")
        if use_binary:
            return self._infer_binary(model, data, version, proba, output_margin)
        body = serving.mlflow_payload(data, proba, output_margin)
        path = (f"/api/v1/models/{_quote(model)}/versions/{_quote(self._serving_version(version))}/predict")
        answer = self._request_dict("POST", path, json=body)
        if "predictions" not in answer:
            raise KilnError("INVALID_RESPONSE", f"POST {path} answered no predictions")
        return answer["predictions"]

    def _v2_path(self, model: str, version: Union[str, int, None]) -> str:
        path = f"/v2/models/{_quote(model)}"
        if version is not None and str(version) not in ("", "latest"):
            path += f"/versions/{_quote(str(version))}"
        return path

    def _input_names(self, model: str, version: Union[str, int, None]) -> List[str]:
        """The model's input names from its V2 metadata, kept a few seconds
        (a loop of binary predictions asks once)."""
        key = (model, None if version is None else str(version))
        cache = self._input_cache
        hit = cache.get(key)
        now = self._clock()
        if hit is not None and now - hit[0] < self._METADATA_TTL_S:
            return hit[1]
        meta = self.model_metadata(model, version)
        names = [str(i.get("name")) for i in meta.get("inputs") or [] if isinstance(i, dict)]
        if not names:
            raise KilnError("INVALID_RESPONSE", f"the metadata of {model} lists no inputs")
        cache[key] = (now, names)
        return names

    def _infer_binary(self, model: str, data: Any, version: Union[str, int, None], proba: bool,
                      output_margin: bool) -> Any:
        from . import serving

        if isinstance(data, Mapping):
            inputs = [(str(k), v) for k, v in data.items()]
        else:
            names = self._input_names(model, version)
            if len(names) != 1:
                raise ValueError(f"{model} takes {len(names)} inputs ({', '.join(names)}); "
                                 "pass a dict {input_name: array}")
            inputs = [(names[0], data)]
        body, header_length = serving.encode_binary(inputs, proba, output_margin)
        headers = {"Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": str(header_length),
                   "Accept": "application/octet-stream, application/json"}
        got: Dict[str, str] = {}
        raw = self._request("POST", self._v2_path(model, version) + "/infer", data=body, headers=headers, raw=True,
                            response_headers=got)
        length = got.get("inference-header-content-length")
        try:
            _, arrays = serving.decode_v2(raw, int(length) if length is not None else None)
        except (ValueError, UnicodeDecodeError) as err:
            raise KilnError("INVALID_RESPONSE", f"the inference answer of {model} is malformed: {err}") from None
        if len(arrays) == 1:
            return next(iter(arrays.values()))
        return arrays

    def model_metadata(self, model: str, version: Union[str, int, None] = None) -> Dict[str, Any]:
        """``GET /v2/models/{model}[/versions/{version}]``: the model's V2
        metadata — ``name``, ``versions``, ``platform`` (the backend),
        ``inputs`` and ``outputs`` (``{"name", "datatype", "shape"}``, -1 for
        a variable dimension) and Kiln's ``columns`` (feature names) and
        ``classes`` (class labels) when the model has them. Without a version,
        the latest READY one answers."""
        return self._request_dict("GET", self._v2_path(model, version))

    def serving_models(self) -> List[Dict[str, Any]]:
        """``GET /api/v1/serving/models``: the models loaded for the selected
        project, each ``{"name", "version", "format", "backend", "state"
        (LOADING, READY, FAILED, DEGRADED or UNLOADING), "reason"?,
        "memory_bytes", "loaded_at", "last_used_at", "requests", "errors",
        "queue_depth", "settings", "signature"}``."""
        return self._list("GET", "/api/v1/serving/models", "models")

    def load_model(self, model: str, version: Union[str, int, None] = None, **settings: int) -> Dict[str, Any]:
        """Load a version now (it otherwise loads on its first prediction) and
        wait until it is READY; returns the loaded model as
        :meth:`serving_models` lists it. ``settings`` (integers):
        ``max_batch_size`` (rows per batch), ``max_queue_delay_us`` (how long
        a batch waits to fill), ``queue_capacity`` (queued requests before
        503), ``instances`` (parallel executors), ``priority_levels``. New
        settings reload a loaded version; the server refuses unknown ones
        (``BadRequest``)."""
        path = f"/api/v1/models/{_quote(model)}/versions/{_quote(self._serving_version(version))}/load"
        return self._request_dict("POST", path, json=dict(settings))

    def unload_model(self, model: str, version: Union[str, int]) -> None:
        """Drop a loaded version from memory (its next prediction loads it again)."""
        self._request("POST", f"/api/v1/models/{_quote(model)}/versions/{_quote(str(version))}/unload")

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    #: Page size the list calls that follow ``next_page_token`` ask for (the
    #: servers' maximum).
    _PAGE_SIZE = 1000

    def _pages(self, path: str, key: str, params: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
        """GET every page of a Kiln list route and return the items under
        ``key``, following ``next_page_token`` (a token seen twice ends it)."""
        found: List[Dict[str, Any]] = []
        token: Optional[str] = None
        seen = set()
        while True:
            query = dict(params or {})
            query["max_results"] = self._PAGE_SIZE
            query["page_token"] = token
            page = self._request_dict("GET", path, params=query)
            items = page.get(key)
            found.extend(i for i in (items if isinstance(items, list) else []) if isinstance(i, dict))
            token = page.get("next_page_token")
            if not isinstance(token, str) or not token or token in seen:
                return found
            seen.add(token)

    def _list(self, method: str, path: str, key: str) -> List[Dict[str, Any]]:
        items = self._request_dict(method, path).get(key)
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    @staticmethod
    def _unwrap(answer: Dict[str, Any], key: str) -> Dict[str, Any]:
        inner = answer.get(key)
        return inner if isinstance(inner, dict) else answer

    # ------------------------------------------------------------------
    # Credentials
    # ------------------------------------------------------------------

    def _forget_session(self) -> None:
        # caller holds _auth_lock
        self._session = False
        self._password = None
        self._access = None
        self._refresh = None
        self._access_renew_at = 0.0
        self._generation += 1

    def _grant(self, body: Dict[str, str]) -> None:
        """POST /api/v1/auth/token and keep the answer. Caller holds _auth_lock."""
        sent_at = self._clock()
        try:
            answer = self._request("POST", "/api/v1/auth/token", json=body, _auth=False)
        except KilnError as err:
            if err.error_code == "INVALID_RESPONSE":
                # its message quotes the body, which may hold tokens
                raise KilnError("INVALID_RESPONSE", "the token endpoint answered a non-JSON body", err.status,
                                err.request_id) from None
            raise
        access = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(access, str) or not access:
            raise KilnError("INVALID_RESPONSE", "the token endpoint answered no access_token")
        refresh = answer.get("refresh_token")
        expires_in = answer.get("expires_in")
        self._access = _Secret(access)
        self._refresh = _Secret(refresh) if isinstance(refresh, str) and refresh else None
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
            margin = min(self.REFRESH_MARGIN_S, expires_in / 10.0)
            self._access_renew_at = sent_at + expires_in - margin
        else:
            self._access_renew_at = float("inf")
        self._generation += 1

    def _renew(self) -> None:
        """Get a new access token: the refresh grant, else (refresh refused
        with 401 or no refresh token) the password grant. Caller holds _auth_lock."""
        if self._refresh is not None:
            refresh, self._refresh = self._refresh, None  # spent whatever happens
            try:
                self._grant({"refresh_token": refresh.value})
                return
            except Unauthenticated:
                self._access = None
                if self._password is None:
                    raise Unauthenticated(
                        "UNAUTHENTICATED", "the session expired and no password is kept; call login() again", 401
                    ) from None
        if self._password is None or not self._username:
            raise Unauthenticated("UNAUTHENTICATED", "not signed in; call login()", 401)
        self._grant({"username": self._username, "password": self._password.value})

    def _credential(self) -> Tuple[Optional[str], int]:
        """The bearer to send and the token generation it belongs to."""
        if self._api_key is not None:
            return self._api_key.value, -1
        if self.token:
            return self.token, -1
        if not self._session:
            return None, -1
        with self._auth_lock:
            if not self._session:
                return None, -1
            if self._access is None or self._clock() >= self._access_renew_at:
                self._renew()
            assert self._access is not None
            return self._access.value, self._generation

    def _after_401(self, generation: int) -> bool:
        """Renew the session's access token after a 401 unless another thread
        already did; returns whether a retry makes sense."""
        if generation < 0 or not self._session:
            return False
        with self._auth_lock:
            if not self._session:
                return False
            if self._generation == generation:
                self._renew()
            return True

    # ------------------------------------------------------------------
    # Transport
    # ------------------------------------------------------------------

    def _url_for(self, path: str, params: Optional[Params] = None) -> str:
        if not path.startswith("/"):
            path = "/" + path
        url = self.url + path
        query = encode_params(params)
        if query:
            url += ("&" if "?" in path else "?") + query
        return url

    def _request_dict(self, method: str, path: str, **kwargs: Any) -> Dict[str, Any]:
        result = self._request(method, path, **kwargs)
        if not isinstance(result, dict):
            raise KilnError(
                "INVALID_RESPONSE",
                f"expected a JSON object from {method} {path}, got {type(result).__name__}",
            )
        return result

    def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Optional[Params] = None,
        *,
        data: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        raw: bool = False,
        response_headers: Optional[Dict[str, str]] = None,
        _auth: bool = True,
        _retry_auth: bool = True,
    ) -> Any:
        """Send one request and return its decoded answer.

        Args:
            method: HTTP method (``"GET"``, ``"POST"``, ...).
            path: Path below the base URL, starting with ``/``. Callers quote
                user-supplied path segments (``urllib.parse.quote(name, safe="")``).
            json: JSON-serialisable body, sent as UTF-8 ``application/json``.
                NaN and infinity are refused (``ValueError``): the server's
                JSON parser rejects them.
            params: Query parameters; see :func:`encode_params`.
            data: Raw body bytes (mutually exclusive with ``json``); set the
                ``Content-Type`` through ``headers``.
            headers: Extra request headers.
            raw: Return the body as ``bytes`` instead of decoding JSON.
            response_headers: A dict that gets the answer's headers (names
                in lower case) when the request succeeds.

        With a password sign-in, the access token is fetched or renewed before
        the request when needed, and after a 401 answer it is renewed once and
        the request sent once more (``_retry_auth=False`` turns that off for
        calls whose 401 means something else, like a wrong old password).

        Returns:
            The decoded JSON value, ``None`` for an empty body, or ``bytes``
            when ``raw`` is true.

        Raises:
            KilnError: the subclass chosen by the HTTP status for any non-2xx
                answer, ``ConnectionFailed`` when no answer arrived, or a plain
                ``KilnError("INVALID_RESPONSE")`` when a 2xx body is not JSON.
        """
        if json is not None and data is not None:
            raise ValueError("pass either json or data, not both")
        send_headers: Dict[str, str] = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        body: Optional[bytes] = data
        if json is not None:
            body = _jsonlib.dumps(json, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        if headers:
            send_headers.update(headers)
        url = self._url_for(path, params)
        caller_auth = any(k.lower() == "authorization" for k in send_headers)
        if not _auth or caller_auth:
            return self._send(method, path, url, body, send_headers, raw, response_headers)

        bearer, generation = self._credential()
        if bearer:
            send_headers["Authorization"] = f"Bearer {bearer}"
        try:
            return self._send(method, path, url, body, send_headers, raw, response_headers)
        except Unauthenticated:
            if not _retry_auth or not self._after_401(generation):
                raise
        bearer, _ = self._credential()
        if bearer:
            send_headers["Authorization"] = f"Bearer {bearer}"
        else:
            send_headers.pop("Authorization", None)
        return self._send(method, path, url, body, send_headers, raw, response_headers)

    def _send(
        self,
        method: str,
        path: str,
        url: str,
        body: Optional[bytes],
        send_headers: Dict[str, str],
        raw: bool,
        response_headers: Optional[Dict[str, str]] = None,
    ) -> Any:
        req = urllib.request.Request(url, data=body, headers=send_headers, method=method.upper())
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status = resp.status
                resp_headers = resp.headers
                payload = resp.read()
        except urllib.error.HTTPError as err:
            try:
                err_body = err.read() or b""
            except (OSError, http.client.HTTPException):
                err_body = b""
            finally:
                err.close()
            raise error_from_response(err.code, err_body, err.headers) from None
        except urllib.error.URLError as err:
            reason = err.reason
            raise ConnectionFailed(f"cannot reach {self.url}: {_describe(reason)}") from err
        except (socket.timeout, TimeoutError) as err:
            raise ConnectionFailed(f"timed out after {self.timeout}s talking to {self.url}") from err
        except (OSError, http.client.HTTPException) as err:
            raise ConnectionFailed(f"connection to {self.url} failed: {_describe(err)}") from err

        if response_headers is not None:
            response_headers.update((k.lower(), v) for k, v in resp_headers.items())
        if raw:
            return payload
        if not payload.strip():
            return None
        try:
            return _jsonlib.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            snippet = payload[:200].decode("utf-8", errors="replace")
            raise KilnError(
                "INVALID_RESPONSE",
                f"{method.upper()} {path} answered {status} with a non-JSON body: {snippet!r}",
                status,
                resp_headers.get("X-Request-Id") or None,
            ) from None


def _describe(reason: Any) -> str:
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason)
    return text or type(reason).__name__

"""HTTP client for a Kiln server, built on urllib only (no third-party deps).

Every API method funnels through :meth:`Client._request`, which owns JSON
encoding, query strings, auth headers, response decoding and error mapping, so
later endpoint wrappers stay one-liners.
"""

from __future__ import annotations

import http.client
import json as _jsonlib
import os
import platform
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._version import __version__
from .errors import ConnectionFailed, KilnError, error_from_response

__all__ = ["Client", "DEFAULT_URL"]

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


class Client:
    """A connection-less client for one Kiln server.

    Args:
        url: Base URL of the server, e.g. ``"http://kiln.internal:8080"``
            (a path prefix such as ``"https://host/kiln"`` is kept). Defaults
            to the ``KILN_URL`` environment variable, else ``http://127.0.0.1:8080``.
        token: Bearer token (JWT or API key) sent as ``Authorization: Bearer
            <token>``. Defaults to the ``KILN_TOKEN`` environment variable;
            pass ``""`` to send no credentials even when it is set.
        timeout: Socket timeout in seconds for connecting and for each read.

    Each call opens a fresh connection (no keep-alive), so a ``Client`` is
    safe to share between threads.

    Example::

        import kiln
        client = kiln.Client("http://127.0.0.1:8080", token="...")
        print(client.server_info()["version"])
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 30.0,
    ) -> None:
        if url is None:
            url = os.environ.get("KILN_URL") or DEFAULT_URL
        if token is None:
            token = os.environ.get("KILN_TOKEN") or None
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Kiln URL must look like http://host:port, got {url!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url: str = url.rstrip("/")
        self.token: Optional[str] = token or None
        self.timeout: float = timeout
        # Proxies from *_proxy / no_proxy are honoured like other HTTP tools.
        # Redirects are not followed: urllib would resend the Authorization
        # header to whatever host a redirect names, and Kiln's API never
        # redirects, so a 3xx surfaces as a KilnError instead.
        self._opener = urllib.request.build_opener(_NoRedirect())

    def __repr__(self) -> str:
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
        if self.token:
            send_headers["Authorization"] = f"Bearer {self.token}"
        if headers:
            send_headers.update(headers)

        url = self._url_for(path, params)
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

"""Typed exceptions raised by the Kiln SDK.

The server answers every error as JSON ``{"error_code": "...", "message": "..."}``
with an HTTP status; :func:`error_from_response` turns that into the subclass
of :class:`KilnError` chosen by the status, so callers can catch broad families
(``except kiln.NotFound``) or branch on the stable ``error_code`` string.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import time
from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "KilnError",
    "BadRequest",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ConnectionFailed",
    "error_from_response",
]


class KilnError(Exception):
    """Base class of every error the SDK raises for a failed request.

    Attributes:
        error_code: Stable machine-readable code from the server
            (``"NOT_FOUND"``, ...), ``"HTTP_<status>"`` when the error body was
            not Kiln's JSON, or ``"CONNECTION_FAILED"`` for network errors.
        message: Human-readable explanation.
        status: HTTP status code, or ``None`` when no response was received.
        request_id: Value of the ``X-Request-Id`` response header, if any;
            quote it when reporting a problem so the server log can be searched.
        details: The decoded JSON error body (empty when there was none).
    """

    def __init__(
        self,
        error_code: str,
        message: str,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(error_code, message, status, request_id)
        self.error_code: str = error_code
        self.message: str = message
        self.status: Optional[int] = status
        self.request_id: Optional[str] = request_id
        self.details: Dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        text = self.error_code
        if self.status is not None:
            text += f" ({self.status})"
        text += f": {self.message}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(error_code={self.error_code!r}, "
            f"message={self.message!r}, status={self.status!r}, "
            f"request_id={self.request_id!r})"
        )

    # Exceptions with a custom __init__ do not survive pickling (e.g. across a
    # multiprocessing pool) unless they say how to rebuild themselves.
    def __reduce__(self) -> Any:
        return (
            _rebuild_error,
            (type(self), self.__dict__.copy()),
        )


def _rebuild_error(cls: Type[KilnError], state: Dict[str, Any]) -> KilnError:
    err = cls.__new__(cls)
    Exception.__init__(
        err, state.get("error_code"), state.get("message"), state.get("status"), state.get("request_id")
    )
    err.__dict__.update(state)
    return err


class BadRequest(KilnError):
    """400: the request was malformed or failed validation."""


class Unauthenticated(KilnError):
    """401: no credentials, or the token/API key is invalid or expired."""


class PermissionDenied(KilnError):
    """403: the caller is authenticated but lacks the needed permission."""


class NotFound(KilnError):
    """404: the addressed resource does not exist (or is not visible)."""


class Conflict(KilnError):
    """409: the resource already exists or is in a conflicting state."""


class PayloadTooLarge(KilnError):
    """413: the request body exceeds the server's limit."""


class RateLimited(KilnError):
    """429: too many requests.

    Attributes:
        retry_after: Seconds to wait before retrying, from the ``Retry-After``
            header (delta-seconds or an HTTP date), or ``None`` if absent.
    """

    def __init__(
        self,
        error_code: str,
        message: str,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(error_code, message, status, request_id, details)
        self.retry_after: Optional[float] = retry_after


class ServerError(KilnError):
    """5xx: the server failed or is unavailable (e.g. ``/readyz`` not ready)."""


class ConnectionFailed(KilnError):
    """No HTTP response: connection refused, DNS failure, timeout, reset."""

    def __init__(self, message: str, request_id: Optional[str] = None) -> None:
        super().__init__("CONNECTION_FAILED", message, None, request_id)


_BY_STATUS: Dict[int, Type[KilnError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
}


def _class_for_status(status: int) -> Type[KilnError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 500 <= status <= 599:
        return ServerError
    return KilnError


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Parse a ``Retry-After`` header value into seconds (``None`` if unusable)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_from_response(
    status: int,
    body: bytes,
    headers: Optional[Mapping[str, str]] = None,
) -> KilnError:
    """Build the :class:`KilnError` subclass for an HTTP error response.

    Args:
        status: HTTP status code of the response.
        body: Raw response body; Kiln's JSON error shape is decoded when present.
        headers: Response headers (case-insensitive mapping such as
            ``http.client.HTTPMessage``); ``X-Request-Id`` and ``Retry-After``
            are read from it.
    """
    request_id: Optional[str] = None
    retry_header: Optional[str] = None
    if headers is not None:
        request_id = headers.get("X-Request-Id") or None
        retry_header = headers.get("Retry-After")

    error_code = f"HTTP_{status}"
    message = ""
    details: Dict[str, Any] = {}
    try:
        decoded = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        decoded = None
    if isinstance(decoded, dict):
        details = decoded
        code = decoded.get("error_code")
        if isinstance(code, str) and code:
            error_code = code
        # /v2/ (Open Inference Protocol) errors carry the text under "error".
        msg = decoded.get("message")
        if not isinstance(msg, str) or not msg:
            msg = decoded.get("error")
        if isinstance(msg, str):
            message = msg
    elif body:
        message = body.decode("utf-8", errors="replace").strip()
        if len(message) > 500:
            message = message[:500] + "..."
    if not message:
        message = http.client.responses.get(status, "HTTP error")

    cls = _class_for_status(status)
    if cls is RateLimited:
        return RateLimited(
            error_code, message, status, request_id, details, parse_retry_after(retry_header)
        )
    return cls(error_code, message, status, request_id, details)

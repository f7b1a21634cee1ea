"""Kiln Python SDK: a small, dependency-free client for the Kiln MLOps server.

Quick start::

    import kiln

    client = kiln.Client()          # KILN_URL / KILN_TOKEN, else http://127.0.0.1:8080
    client.health()                 # {"status": "ok"}
    try:
        client.ready()
    except kiln.ServerError as err:
        print("not ready:", err)
"""

from ._version import __version__
from .client import DEFAULT_URL, Client
from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    KilnError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthenticated,
)

__all__ = [
    "__version__",
    "DEFAULT_URL",
    "Client",
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
]

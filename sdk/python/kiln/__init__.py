"""Kiln Python SDK: a small, dependency-free client for the Kiln MLOps server.

Quick start::

    import kiln

    client = kiln.Client()          # KILN_URL / KILN_TOKEN, else http://127.0.0.1:8080
    client.health()                 # {"status": "ok"}
    try:
        client.ready()
    except kiln.ServerError as err:
        print("not ready:", err)

    with kiln.start_run(experiment="demo") as run:   # fluent tracking, see docs/sdk.md
        kiln.log_param("lr", 0.01)
        kiln.log_metric("loss", 0.5, step=1)
"""

from ._version import __version__
from .client import DEFAULT_URL, Client, Secret
from .autologging import autolog
from .tracking import (
    ActiveRun,
    RunInfo,
    active_run,
    end_run,
    flush,
    get_client,
    init,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_experiment,
    set_tag,
    set_tags,
    start_run,
    sync,
)
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
    "Secret",
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
    # fluent tracking (kiln.tracking)
    "init",
    "get_client",
    "set_experiment",
    "start_run",
    "end_run",
    "active_run",
    "last_active_run",
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "set_tag",
    "set_tags",
    "log_artifact",
    "log_artifacts",
    "flush",
    "sync",
    "autolog",
    "ActiveRun",
    "RunInfo",
]

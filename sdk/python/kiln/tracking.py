"""Fluent experiment tracking: ``kiln.start_run()``, ``kiln.log_metric()`` and
friends, over Kiln's MLflow-compatible REST API.

Example::

    import kiln

    kiln.set_experiment("mnist")
    with kiln.start_run(run_name="baseline", tags={"team": "vision"}) as run:
        kiln.log_params({"lr": 0.01, "epochs": 10})
        for epoch in range(10):
            kiln.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    # the run ends FINISHED (FAILED when the block raised)

Writes (metrics, params, tags, the final status) never wait on the
network: they go into a bounded in-memory queue that a background thread
drains into ``runs/log-batch`` calls of at most 1000 metrics, 100 params
and 100 tags. :func:`end_run` (and interpreter exit) waits until everything
queued was sent. When the server cannot be reached, or answers with a
transient error, the batches go to an fsync'd spool file instead
(:mod:`kiln.spool`) and are replayed — by this process once the server
answers again, or later by ``kiln sync`` / ``python3 -m kiln sync``.
"""

from __future__ import annotations

import atexit
import getpass
import logging
import math
import numbers
import os
import queue
import re
import sys
import threading
import time
import urllib.parse
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from . import spool as _spool
from .client import Client
from .errors import BadRequest, ConnectionFailed, KilnError, NotFound

__all__ = [
    "init",
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
    "get_client",
    "ActiveRun",
    "RunInfo",
]

log = logging.getLogger("kiln")

MLFLOW = "/api/2.0/mlflow"
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_TOTAL = 1000, 100, 100, 1000
PARENT_TAG = "mlflow.parentRunId"

_KEY_RE = re.compile(r"^[\w\-. /:]+$")

Number = Union[int, float]


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _check_key(kind: str, key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{kind} key must be a non-empty string, got {key!r}")
    if len(key) > 250:
        raise ValueError(f"{kind} key {key[:40]!r}... is longer than 250 characters")
    if (not _KEY_RE.match(key) or key.startswith("/") or key.endswith("/") or "//" in key or key == "."
            or ".." in key.split("/")):
        raise ValueError(
            f"invalid {kind} key {key!r}: use letters, digits, '_', '-', '.', ' ', ':' and '/' "
            f"(no leading, trailing or doubled '/', no '..' part)")
    return key


def _metric_value(key: str, value: Any) -> Union[float, str]:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:  # numpy scalars and 0-d arrays
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}") from None
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # as MLflow: str(value)
    return str(value)


# ----------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------


@dataclass
class RunInfo:
    """What is known of a run. ``run_id`` is the server's id; while the
    server has not been reached yet it is a local id (``local`` is true)
    and is replaced by the server's once the spool is replayed."""

    run_id: str
    experiment_id: Optional[str]
    run_name: Optional[str]
    start_time: int
    status: str = "RUNNING"
    end_time: Optional[int] = None
    artifact_uri: Optional[str] = None
    local: bool = False
    parent_run_id: Optional[str] = None

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass
class _RunState:
    info: RunInfo
    local_id: Optional[str]
    spool_path: Path
    parent: Optional["_RunState"] = None
    params: Dict[str, str] = field(default_factory=dict)
    spooling: bool = False
    next_retry: float = 0.0
    pending_metrics: List[Dict[str, Any]] = field(default_factory=list)
    pending_params: List[Dict[str, Any]] = field(default_factory=list)
    pending_tags: List[Dict[str, Any]] = field(default_factory=list)
    monitor: Any = None
    experiment_name: Optional[str] = None  # for a run not on the server yet
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def run_id(self) -> Optional[str]:
        return None if self.info.local else self.info.run_id


class ActiveRun:
    """The handle :func:`start_run` returns; a context manager that ends the
    run FINISHED, or FAILED when the block raised (KILLED on Ctrl-C)."""

    def __init__(self, state: _RunState) -> None:
        self._state = state

    @property
    def info(self) -> RunInfo:
        return self._state.info

    @property
    def run_id(self) -> str:
        return self._state.info.run_id

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        _end(self._state, status)

    def __repr__(self) -> str:
        return f"<ActiveRun run_id={self.info.run_id!r} status={self.info.status!r}>"


# ----------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------


class _Config:
    def __init__(self) -> None:
        self.client: Optional[Client] = None
        self.headers: Dict[str, str] = {}
        self.experiment_id: Optional[str] = None
        self.experiment_name: Optional[str] = None


_lock = threading.RLock()
_config = _Config()
_stack: List[_RunState] = []
_last: Optional[RunInfo] = None
_logger: Optional["_Logger"] = None
_warned_offline = False


def init(
    url: Optional[str] = None,
    api_key: Optional[str] = None,
    *,
    token: Optional[str] = None,
    username: Optional[str] = None,
    password: Optional[str] = None,
    project: Optional[str] = None,
    experiment: Optional[str] = None,
    timeout: float = 10.0,
) -> Client:
    """Point the fluent API at a server (optional: the environment is read on
    first use otherwise).

    Args:
        url: The server, e.g. ``http://kiln:8080``. Default ``KILN_URL``, else
            ``MLFLOW_TRACKING_URI`` (http/https only), else ``http://127.0.0.1:8080``.
        api_key: An API key. Default ``KILN_API_KEY``.
        token: A bearer token. Default ``KILN_TOKEN``, else ``MLFLOW_TRACKING_TOKEN``.
        username, password: Password sign-in (default ``MLFLOW_TRACKING_USERNAME``
            / ``MLFLOW_TRACKING_PASSWORD`` when set).
        project: A project id sent as ``X-Kiln-Project`` (default ``KILN_PROJECT``).
        experiment: The experiment name for later runs (as :func:`set_experiment`,
            resolved lazily).
        timeout: Seconds per request of the tracking calls.

    Returns:
        The :class:`kiln.Client` used from now on.
    """
    env = os.environ
    if url is None:
        url = env.get("KILN_URL") or None
        mu = env.get("MLFLOW_TRACKING_URI") or ""
        if url is None and mu.startswith(("http://", "https://")):
            url = mu
    if not (api_key or token or username):
        if env.get("KILN_API_KEY") or env.get("KILN_TOKEN"):
            pass  # Client reads them
        elif env.get("MLFLOW_TRACKING_TOKEN"):
            token = env["MLFLOW_TRACKING_TOKEN"]
        elif env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
            username, password = env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
    client = Client(url, token, api_key=api_key, username=username, password=password, timeout=timeout)
    project = project or env.get("KILN_PROJECT") or None
    with _lock:
        _config.client = client
        _config.headers = {"X-Kiln-Project": project} if project else {}
        _config.experiment_id = None
        _config.experiment_name = experiment
    return client


def get_client() -> Client:
    """The :class:`kiln.Client` the fluent API uses (configured from the
    environment on first use)."""
    with _lock:
        if _config.client is None:
            init(timeout=_env_float("KILN_TIMEOUT", 10.0))
        assert _config.client is not None
        return _config.client


def _call(method: str, path: str, **kw: Any) -> Any:
    client = get_client()
    headers = dict(_config.headers)
    headers.update(kw.pop("headers", None) or {})
    return client._request(method, path, headers=headers or None, **kw)


def _experiment_by_name(name: str, create: bool = True) -> str:
    try:
        got = _call("GET", f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": name})
        return str(got["experiment"]["experiment_id"])
    except NotFound:
        if not create:
            raise
    try:
        return str(_call("POST", f"{MLFLOW}/experiments/create", json={"name": name})["experiment_id"])
    except BadRequest as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        got = _call("GET", f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": name})
        return str(got["experiment"]["experiment_id"])


def set_experiment(name: Optional[str] = None, experiment_id: Optional[str] = None) -> Optional[str]:
    """Choose the experiment of later runs, by name (created when missing)
    or by id. Returns its id, or None when the server could not be reached
    (the name is then used when the run is replayed)."""
    if (name is None) == (experiment_id is None):
        raise ValueError("pass exactly one of name or experiment_id")
    # Configure from the environment first: doing it lazily inside the lookup
    # below would reset the experiment chosen here.
    get_client()
    with _lock:
        if experiment_id is not None:
            _config.experiment_id, _config.experiment_name = str(experiment_id), None
            return str(experiment_id)
        _config.experiment_name, _config.experiment_id = name, None
    try:
        eid = _experiment_by_name(str(name))
    except KilnError as err:
        if not _spool.is_transient(err):
            raise
        return None
    with _lock:
        if _config.experiment_name == name:
            _config.experiment_id = eid
    return eid


def active_run() -> Optional[ActiveRun]:
    """The innermost active run of this process, or None."""
    with _lock:
        return ActiveRun(_stack[-1]) if _stack else None


def last_active_run() -> Optional[RunInfo]:
    """The run that ended last (or the active one)."""
    with _lock:
        return _stack[-1].info if _stack else _last


def _source_tags() -> Dict[str, str]:
    tags = {"mlflow.source.type": "LOCAL"}
    src = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if src:
        tags["mlflow.source.name"] = os.path.abspath(src) if os.path.exists(src) else src
    try:
        tags["mlflow.user"] = getpass.getuser()
    except Exception:  # pragma: no cover - no user name in some containers
        pass
    return tags


def start_run(
    run_name: Optional[str] = None,
    *,
    experiment: Optional[str] = None,
    experiment_id: Optional[str] = None,
    run_id: Optional[str] = None,
    nested: bool = False,
    tags: Optional[Mapping[str, Any]] = None,
    description: Optional[str] = None,
    log_system_metrics: Optional[bool] = None,
    system_metrics_interval: Optional[float] = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active one.

    Args:
        run_name: The run's name (the server picks one when absent).
        experiment: An experiment name (created when missing); default the one
            of :func:`set_experiment`, ``KILN_EXPERIMENT`` or
            ``MLFLOW_EXPERIMENT_NAME``, else the project's Default.
        experiment_id: An experiment by id instead.
        run_id: Resume an existing run (its status goes back to RUNNING).
        nested: Start a child of the active run (tag ``mlflow.parentRunId``).
            Without it, starting a run while one is active is an error.
        tags: Tags for the run.
        description: Stored as the ``mlflow.note.content`` tag.
        log_system_metrics: Sample CPU, memory and GPU as ``system/*`` metrics
            (default ``KILN_LOG_SYSTEM_METRICS`` / ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``).
        system_metrics_interval: Seconds between samples (default
            ``KILN_SYSTEM_METRICS_INTERVAL``, else 10).

    Returns:
        An :class:`ActiveRun`, usable as a context manager.

    When the server cannot be reached the run is started locally and spooled
    (see :mod:`kiln.spool`); its ``info.run_id`` is a local id until replayed.
    """
    global _warned_offline
    with _lock:
        if _stack and not nested:
            raise RuntimeError(
                f"run {_stack[-1].info.run_id} is already active; end it with kiln.end_run() "
                f"or start this one with nested=True")
        parent = _stack[-1] if (_stack and nested) else None
        if experiment is None and experiment_id is None:
            if parent is not None and parent.info.experiment_id:
                experiment_id = parent.info.experiment_id
            elif parent is not None and parent.experiment_name:
                experiment = parent.experiment_name
            elif _config.experiment_id:
                experiment_id = _config.experiment_id
            else:
                experiment = (_config.experiment_name or os.environ.get("KILN_EXPERIMENT")
                              or os.environ.get("MLFLOW_EXPERIMENT_NAME") or None)
                if experiment is None:
                    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or None
    get_client()
    all_tags: Dict[str, str] = _source_tags()
    for k, v in (tags or {}).items():
        all_tags[_check_key("tag", k)] = _param_value(v)
    if description is not None:
        all_tags["mlflow.note.content"] = description
    now = _spool.now_ms()
    directory = _spool.spool_dir()

    if run_id is not None:
        got = _call("GET", f"{MLFLOW}/runs/get", params={"run_id": run_id})["run"]["info"]
        _call("POST", f"{MLFLOW}/runs/update", json={"run_id": run_id, "status": "RUNNING"})
        info = RunInfo(run_id, str(got.get("experiment_id")), got.get("run_name"), int(got.get("start_time") or now),
                       artifact_uri=got.get("artifact_uri"))
        state = _RunState(info, None, _spool.file_for(run_id, None, directory), parent)
    else:
        if parent is not None:
            all_tags[PARENT_TAG] = parent.info.run_id
        state = None
        try:
            eid = experiment_id
            if eid is None and experiment is not None:
                eid = _experiment_by_name(experiment)
            if parent is not None and parent.info.local:
                raise ConnectionFailed("parent run is not on the server yet")
            body: Dict[str, Any] = {"experiment_id": str(eid or "0"), "start_time": now,
                                    "tags": [{"key": k, "value": v} for k, v in all_tags.items()]}
            if run_name:
                body["run_name"] = run_name
            made = _call("POST", f"{MLFLOW}/runs/create", json=body)["run"]["info"]
            rid = str(made["run_id"])
            info = RunInfo(rid, str(made.get("experiment_id")), made.get("run_name") or run_name, now,
                           artifact_uri=made.get("artifact_uri"),
                           parent_run_id=parent.info.run_id if parent else None)
            state = _RunState(info, None, _spool.file_for(rid, None, directory), parent)
        except KilnError as err:
            if not _spool.is_transient(err):
                raise
            local_id = uuid.uuid4().hex
            all_tags[_spool.SPOOL_TAG] = local_id
            path = parent.spool_path if (parent is not None and parent.info.local) else \
                _spool.file_for(None, local_id, directory)
            rec: Dict[str, Any] = {"op": "create", "url": get_client().url, "local_id": local_id,
                                   "run_name": run_name, "start_time": now,
                                   "tags": [{"key": k, "value": v} for k, v in all_tags.items()
                                            if not (k == PARENT_TAG and parent is not None and parent.info.local)]}
            if experiment_id is not None:
                rec["experiment_id"] = str(experiment_id)
            elif experiment is not None:
                rec["experiment_name"] = experiment
            if parent is not None and parent.info.local:
                rec["parent_local_id"] = parent.local_id
            _spool.append(path, rec)
            info = RunInfo(local_id, str(experiment_id) if experiment_id else None, run_name, now, local=True,
                           parent_run_id=parent.info.run_id if parent else None)
            state = _RunState(info, local_id, path, parent, spooling=True,
                              experiment_name=None if experiment_id is not None else experiment)
            if not _warned_offline:
                _warned_offline = True
                warnings.warn(f"kiln: cannot reach the server ({err}); run spooled to {path} "
                              f"and replayed once it answers (or by `kiln sync`)", stacklevel=2)
    with _lock:
        _stack.append(state)
    _ensure_logger()
    if log_system_metrics is None:
        flag = os.environ.get("KILN_LOG_SYSTEM_METRICS") or os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")
        log_system_metrics = (flag or "").lower() in ("1", "true", "yes", "on")
    if log_system_metrics:
        from .sysmetrics import SystemMetricsMonitor
        interval = system_metrics_interval or _env_float("KILN_SYSTEM_METRICS_INTERVAL", 10.0)
        state.monitor = SystemMetricsMonitor(lambda m, step: _enqueue_metrics(state, m, step, None), interval)
        state.monitor.start()
    return ActiveRun(state)


def end_run(status: str = "FINISHED") -> None:
    """End the active run with ``status`` (FINISHED, FAILED or KILLED),
    after everything it logged was sent (or spooled). No-op without one."""
    with _lock:
        state = _stack[-1] if _stack else None
    if state is not None:
        _end(state, status)


def _end(state: _RunState, status: str) -> None:
    global _last
    if status not in ("FINISHED", "FAILED", "KILLED"):
        raise ValueError(f"status must be FINISHED, FAILED or KILLED, not {status!r}")
    with _lock:
        if state not in _stack:
            return
        # children first
        while _stack and _stack[-1] is not state:
            child = _stack[-1]
            _end(child, status)
    if state.monitor is not None:
        state.monitor.stop()
        state.monitor = None
    end = _spool.now_ms()
    _logger_put(("u", state, status, end))
    flush()
    with _lock:
        if state in _stack:
            _stack.remove(state)
        state.info.status = status
        state.info.end_time = end
        _last = state.info


def _active() -> _RunState:
    with _lock:
        if _stack:
            return _stack[-1]
    start_run()  # as MLflow: logging without a run starts one
    with _lock:
        return _stack[-1]


# ----------------------------------------------------------------------------
# Logging
# ----------------------------------------------------------------------------


def log_metric(key: str, value: Number, step: Optional[int] = None, timestamp: Optional[int] = None) -> None:
    """Queue one metric point of the active run (never waits on the network).

    Args:
        key: Metric name (letters, digits, ``_ - . / : `` and space).
        value: A number; NaN and ±infinity are kept.
        step: An integer step (default 0).
        timestamp: Epoch milliseconds (default now).
    """
    state = _active()
    _enqueue_metrics(state, {key: value}, step, timestamp)


def log_metrics(metrics: Mapping[str, Number], step: Optional[int] = None, timestamp: Optional[int] = None) -> None:
    """Queue several metric points sharing a step and timestamp."""
    state = _active()
    _enqueue_metrics(state, metrics, step, timestamp)


def _enqueue_metrics(state: _RunState, metrics: Mapping[str, Any], step: Optional[int],
                     timestamp: Optional[int]) -> None:
    ts = int(timestamp) if timestamp is not None else _spool.now_ms()
    st = int(step) if step is not None else 0
    for key, value in metrics.items():
        _check_key("metric", key)
        _logger_put(("m", state, {"key": key, "value": _metric_value(key, value), "timestamp": ts, "step": st}))


def log_param(key: str, value: Any) -> Any:
    """Queue a param of the active run. Params are immutable: logging the same
    key again with another value raises ``kiln.BadRequest`` at once."""
    log_params({key: value})
    return value


def log_params(params: Mapping[str, Any]) -> None:
    """Queue several params of the active run (see :func:`log_param`)."""
    state = _active()
    items = []
    for key, value in params.items():
        _check_key("param", key)
        v = _param_value(value)[:6000]
        with state.lock:
            old = state.params.get(key)
            if old is not None and old != v:
                raise BadRequest("INVALID_PARAMETER_VALUE",
                                 f"Changing param values is not allowed. Param with key='{key}' was already "
                                 f"logged with value='{old}' for run ID='{state.info.run_id}'. "
                                 f"Attempted logging new value '{v}'.", 400)
            if old is not None:
                continue
            state.params[key] = v
        items.append({"key": key, "value": v})
    for item in items:
        _logger_put(("p", state, item))


def set_tag(key: str, value: Any) -> None:
    """Queue a tag of the active run (a later value replaces an earlier one)."""
    set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    """Queue several tags of the active run."""
    state = _active()
    for key, value in tags.items():
        _check_key("tag", key)
        _logger_put(("t", state, {"key": key, "value": _param_value(value)[:8000]}))


def flush(timeout: Optional[float] = None) -> bool:
    """Wait until everything queued so far was sent or spooled; returns
    False when ``timeout`` seconds passed first."""
    lg = _logger
    if lg is None or not lg.is_alive():
        return True
    done = threading.Event()
    _logger_put(("f", done))
    return done.wait(timeout)


# ----------------------------------------------------------------------------
# Artifacts
# ----------------------------------------------------------------------------


def _artifact_url_path(state: _RunState, rel: str) -> str:
    uri = state.info.artifact_uri
    if not uri:
        got = _call("GET", f"{MLFLOW}/runs/get", params={"run_id": state.info.run_id})
        uri = state.info.artifact_uri = got["run"]["info"].get("artifact_uri")
    if not uri or not uri.startswith("mlflow-artifacts:"):
        raise KilnError("INVALID_STATE", f"run {state.info.run_id} has no mlflow-artifacts: URI ({uri!r})")
    base = uri[len("mlflow-artifacts:"):].lstrip("/")
    full = "/".join(p for p in (base, rel) if p)
    return "/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(full, safe="/")


def log_artifact(local_path: Union[str, os.PathLike], artifact_path: Optional[str] = None) -> str:
    """Upload one file as an artifact of the active run (``PUT`` to the
    artifact proxy, streamed). Returns the artifact's path in the run.

    Raises:
        kiln.NotFound: with ``error_code == "ENDPOINT_NOT_FOUND"`` when the
            server has no artifact endpoint.
        kiln.ConnectionFailed: the server cannot be reached (artifacts are
            not spooled).
    """
    state = _active()
    if state.info.local:
        flush()  # may bind the run
        if state.info.local:
            raise ConnectionFailed("the run is not on the server yet (spooled); artifacts need the server")
    p = Path(local_path)
    rel = "/".join(x for x in ((artifact_path or "").strip("/"), p.name) if x)
    size = p.stat().st_size
    with open(p, "rb") as f:
        _call("PUT", _artifact_url_path(state, rel), data=f,  # type: ignore[arg-type]
              headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
    return rel


def log_artifacts(local_dir: Union[str, os.PathLike], artifact_path: Optional[str] = None) -> List[str]:
    """Upload every file under ``local_dir`` (keeping the tree) as artifacts."""
    root = Path(local_dir)
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            sub = path.parent.relative_to(root).as_posix()
            dest = "/".join(x for x in ((artifact_path or "").strip("/"), "" if sub == "." else sub) if x)
            out.append(log_artifact(path, dest or None))
    return out


_artifacts_ok: Optional[bool] = None


def artifacts_supported() -> bool:
    """Whether the server has the artifact proxy (probed once)."""
    global _artifacts_ok
    if _artifacts_ok is None:
        try:
            _call("GET", "/api/2.0/mlflow-artifacts/artifacts", params={"path": ""})
            _artifacts_ok = True
        except NotFound as err:
            _artifacts_ok = err.error_code != "ENDPOINT_NOT_FOUND"
        except KilnError as err:
            if err.error_code == "ENDPOINT_NOT_FOUND" or err.status == 405:
                _artifacts_ok = False
            else:
                return True  # some other answer: the route exists
    return bool(_artifacts_ok)


# ----------------------------------------------------------------------------
# The background sender
# ----------------------------------------------------------------------------


def _ensure_logger() -> "_Logger":
    global _logger
    with _lock:
        if _logger is None or not _logger.is_alive():
            _logger = _Logger()
            _logger.start()
        return _logger


def _logger_put(item: Tuple[Any, ...]) -> None:
    lg = _ensure_logger()
    try:
        lg.q.put_nowait(item)
    except queue.Full:
        lg.spill(item)


class _Logger(threading.Thread):
    """Drains the queue into log-batch calls, spooling what cannot be sent."""

    def __init__(self) -> None:
        super().__init__(name="kiln-logger", daemon=True)
        size = int(_env_float("KILN_QUEUE_SIZE", 100_000))
        self.q: "queue.Queue[Tuple[Any, ...]]" = queue.Queue(maxsize=max(1, size))
        self.retry_s = _env_float("KILN_SPOOL_RETRY_S", 5.0)
        self.bindings: Dict[str, str] = {}
        self.replayed_others = False
        self.spill_lock = threading.Lock()
        self.sent_batches = 0

    # called on the caller's thread when the queue is full: straight to disk
    def spill(self, item: Tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "f":
            self.q.put(item)  # a flush marker may wait
            return
        state: _RunState = item[1]
        with self.spill_lock:
            rec = self._record(state, kind, item)
            with state.lock:
                state.spooling = True
            _spool.append(state.spool_path, rec)

    def _record(self, state: _RunState, kind: str, item: Tuple[Any, ...]) -> Dict[str, Any]:
        rec: Dict[str, Any] = {"url": get_client().url}
        if state.info.local:
            rec["local_id"] = state.local_id
        else:
            rec["run_id"] = state.info.run_id
        if kind == "u":
            rec.update(op="update", status=item[2], end_time=item[3])
        else:
            rec.update(op="batch", metrics=[item[2]] if kind == "m" else [],
                       params=[item[2]] if kind == "p" else [], tags=[item[2]] if kind == "t" else [])
        return rec

    def run(self) -> None:
        while True:
            item = self.q.get()
            items = [item]
            while len(items) < 20_000:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            touched: List[_RunState] = []
            events: List[threading.Event] = []
            for it in items:
                kind = it[0]
                try:
                    if kind == "f":
                        self._send_all(touched, force=True)
                        touched = []
                        self._retry_spools(force=True)
                        it[1].set()
                        continue
                    if kind == "stop":
                        self._send_all(touched, force=True)
                        for ev in events:
                            ev.set()
                        return
                    state: _RunState = it[1]
                    if state not in touched:
                        touched.append(state)
                    if kind == "m":
                        state.pending_metrics.append(it[2])
                        if len(state.pending_metrics) >= MAX_METRICS:
                            self._send_pending(state, full_only=True)
                    elif kind == "p":
                        state.pending_params.append(it[2])
                    elif kind == "t":
                        state.pending_tags.append(it[2])
                    elif kind == "u":
                        self._send_pending(state)
                        self._deliver(state, {"op": "update", "status": it[2], "end_time": it[3]})
                except Exception as err:  # never let the thread die
                    log.warning("kiln: background logging failed: %s", err)
            try:
                self._send_all(touched, force=False)
                self._retry_spools(force=False)
            except Exception as err:
                log.warning("kiln: background logging failed: %s", err)

    def _send_all(self, states: List[_RunState], force: bool) -> None:
        for s in states:
            self._send_pending(s)

    def _send_pending(self, state: _RunState, full_only: bool = False) -> None:
        while state.pending_metrics or state.pending_params or state.pending_tags:
            if full_only and len(state.pending_metrics) < MAX_METRICS:
                return
            params = state.pending_params[:MAX_PARAMS]
            tags = state.pending_tags[:MAX_TAGS]
            room = MAX_TOTAL - len(params) - len(tags)
            metrics = state.pending_metrics[:min(MAX_METRICS, room)]
            del state.pending_params[:len(params)]
            del state.pending_tags[:len(tags)]
            del state.pending_metrics[:len(metrics)]
            self._deliver(state, {"op": "batch", "metrics": metrics, "params": params, "tags": tags})

    def _deliver(self, state: _RunState, rec: Dict[str, Any]) -> None:
        with state.lock:
            spooling = state.spooling or state.info.local
        if not spooling:
            try:
                _spool.send_record(get_client(), rec, state.info.run_id, _config.headers)
                self.sent_batches += 1
                if not self.replayed_others:
                    self.replayed_others = True
                    self._replay_others()
                return
            except KilnError as err:
                if not _spool.is_transient(err):
                    warnings.warn(f"kiln: the server refused a {rec['op']} of run {state.info.run_id}: {err}")
                    return
                log.warning("kiln: %s; spooling run %s to %s", err, state.info.run_id, state.spool_path)
                with state.lock:
                    state.spooling = True
                    state.next_retry = time.monotonic() + self.retry_s
        full = dict(rec, url=get_client().url)
        if state.info.local:
            full["local_id"] = state.local_id
        else:
            full["run_id"] = state.info.run_id
        _spool.append(state.spool_path, full)

    def _retry_spools(self, force: bool) -> None:
        with _lock:
            states = [s for s in _stack if s.spooling or s.info.local]
        for s in states:
            if not force and time.monotonic() < s.next_retry:
                continue
            self._replay_state(s)

    def _replay_state(self, state: _RunState) -> None:
        with self.spill_lock:
            res = _spool.replay_file(get_client(), state.spool_path, _config.headers, self.bindings)
        self._apply_bindings()
        if res.files_kept:
            state.next_retry = time.monotonic() + self.retry_s
            return
        with state.lock:
            state.spooling = False
        if not self.replayed_others and res.files_done:
            self.replayed_others = True
            self._replay_others()

    def _apply_bindings(self) -> None:
        with _lock:
            states = list(_stack)
        for s in states:
            if s.info.local and s.local_id in self.bindings:
                rid = self.bindings[s.local_id]
                with s.lock:
                    s.info.run_id = rid
                    s.info.local = False
                    s.spool_path = _spool.file_for(rid, None, s.spool_path.parent)
                    s.spooling = s.spool_path.exists()
                for c in states:
                    if c.parent is s:
                        c.info.parent_run_id = rid

    def _replay_others(self) -> None:
        """Spool files left by earlier processes, replayed on the first success."""
        with _lock:
            mine = tuple(s.spool_path for s in _stack)
        try:
            res = _spool.replay_all(get_client(), headers=_config.headers, bindings=self.bindings, skip=mine)
            if res.files_done:
                log.info("kiln: replayed %d spooled file(s) (%d records)", res.files_done, res.records_sent)
        except Exception as err:
            log.warning("kiln: replaying the spool failed: %s", err)


def sync(url: Optional[str] = None, api_key: Optional[str] = None) -> _spool.ReplayResult:
    """Replay every spool file meant for the configured server (or ``url``)
    now; returns what was done. Files of runs active in this process are left
    to its background thread."""
    client = get_client() if url is None and api_key is None else Client(url, api_key=api_key)
    with _lock:
        mine = tuple(s.spool_path for s in _stack)
    lg = _logger
    binds = lg.bindings if lg is not None else {}
    return _spool.replay_all(client, headers=_config.headers, bindings=binds, skip=mine)


def _at_exit() -> None:
    with _lock:
        states = list(_stack)
    try:
        if states:
            _end(states[0], "FINISHED")
        if not flush(_env_float("KILN_EXIT_FLUSH_TIMEOUT", 120.0)):
            log.warning("kiln: gave up waiting for the background logger at exit; unsent points are lost")
    except Exception as err:  # pragma: no cover
        log.warning("kiln: flushing at exit failed: %s", err)


atexit.register(_at_exit)

"""The local spool: tracking writes that could not reach the server, kept on
disk and replayed later, idempotently.

One append-only JSON Lines file per run in the spool directory
(``$KILN_SPOOL_DIR``, else ``$XDG_CACHE_HOME/kiln/spool``, else
``~/.cache/kiln/spool``): ``<run_id>.jsonl`` for a run the server knows, or
``local-<id>.jsonl`` for a run started while the server was unreachable.
Every line is one complete record, written with a single ``write`` under an
exclusive ``flock`` and ``fsync``'d before the caller goes on, so a crash
loses at most the line being written (a torn last line is skipped on
replay). ``kiln sync`` (C) reads the same format.

Records (``"v": 1`` on each; ``"url"`` is the server they are meant for):

- ``{"op": "create", "local_id", "experiment_id" | "experiment_name",
  "run_name", "start_time", "tags": [{"key", "value"}]}`` — a run to create.
  Its tags include ``kiln.spoolId = local_id``, so a replay that finds a run
  carrying that tag (``runs/search``) reuses it instead of creating a
  second one.
- ``{"op": "batch", "run_id" | "local_id", "metrics": [...], "params": [...],
  "tags": [...]}`` — one ``runs/log-batch`` body, already within MLflow's
  limits.
- ``{"op": "update", "run_id" | "local_id", "status", "end_time"}`` —
  ``runs/update``.

Replaying a file sends its records in order and deletes the file when all
went through. Replays are idempotent: the server stores a metric point
identical to one it has once, accepts a param logged again with the same
value, and a tag or status set twice ends the same. A record the server
refuses for good (a 4xx other than 401/403/429) is reported and skipped; a
connection failure, a 5xx, 429, 401 or 403 stops the replay and keeps the
file for next time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from .errors import ConnectionFailed, KilnError

__all__ = [
    "SPOOL_VERSION",
    "spool_dir",
    "append",
    "read_records",
    "replay_file",
    "replay_all",
    "ReplayResult",
    "is_transient",
    "pending_files",
]

SPOOL_VERSION = 1
SPOOL_TAG = "kiln.spoolId"
_NAME_RE = re.compile(r"^(local-)?[0-9a-f]{32}\.jsonl$")


def spool_dir() -> Path:
    """The spool directory (not created)."""
    d = os.environ.get("KILN_SPOOL_DIR")
    if d:
        return Path(d)
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache) if cache else Path.home() / ".cache"
    return base / "kiln" / "spool"


def file_for(run_id: Optional[str], local_id: Optional[str], directory: Optional[Path] = None) -> Path:
    d = directory or spool_dir()
    if run_id:
        return d / f"{run_id}.jsonl"
    assert local_id
    return d / f"local-{local_id}.jsonl"


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record as one line, fsync'd, under an exclusive lock.

    When ``kiln sync`` replayed and removed the file meanwhile, the record
    goes to a fresh file at the same path."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = (json.dumps(dict(record, v=SPOOL_VERSION), ensure_ascii=False, separators=(",", ":"),
                       allow_nan=True) + "\n").encode("utf-8")
    for _ in range(5):
        fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink == 0:
                continue  # removed by a replay while we waited: reopen
            os.write(fd, line)
            os.fsync(fd)
            return
        finally:
            os.close(fd)
    raise OSError(f"cannot append to spool file {path}")


def read_records(path: Path) -> List[Dict[str, Any]]:
    """The records of a spool file; a torn or unreadable line is skipped."""
    out: List[Dict[str, Any]] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("v") == SPOOL_VERSION:
            out.append(rec)
    return out


def pending_files(url: Optional[str] = None, directory: Optional[Path] = None) -> List[Path]:
    """Spool files (oldest first), only those for ``url`` when given."""
    d = directory or spool_dir()
    try:
        names = [p for p in d.iterdir() if _NAME_RE.match(p.name)]
    except FileNotFoundError:
        return []
    names.sort(key=lambda p: (p.stat().st_mtime if p.exists() else 0, p.name))
    if url is None:
        return names
    want = url.rstrip("/")
    return [p for p in names if _file_url(p) in (None, want)]


def _file_url(path: Path) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            first = f.readline()
        rec = json.loads(first.decode("utf-8"))
        u = rec.get("url")
        return u.rstrip("/") if isinstance(u, str) else None
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None


def is_transient(err: BaseException) -> bool:
    """Whether a failed write should be kept for later (vs refused for good)."""
    if isinstance(err, ConnectionFailed):
        return True
    if isinstance(err, KilnError):
        st = err.status or 0
        return st >= 500 or st in (401, 403, 408, 429) or st == 0
    return isinstance(err, OSError)


@dataclass
class ReplayResult:
    """What a replay did: files fully replayed (and removed), records sent,
    records skipped because the server refused them for good, files kept
    because of a transient failure (with the reason)."""

    files_done: int = 0
    records_sent: int = 0
    metrics_sent: int = 0
    records_skipped: int = 0
    files_kept: List[Tuple[str, str]] = field(default_factory=list)
    bindings: Dict[str, str] = field(default_factory=dict)

    def __iadd__(self, other: "ReplayResult") -> "ReplayResult":
        self.files_done += other.files_done
        self.records_sent += other.records_sent
        self.metrics_sent += other.metrics_sent
        self.records_skipped += other.records_skipped
        self.files_kept.extend(other.files_kept)
        self.bindings.update(other.bindings)
        return self


class _Keep(Exception):
    pass


def _experiment_id(client: Any, rec: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    if rec.get("experiment_id"):
        return str(rec["experiment_id"])
    name = rec.get("experiment_name")
    if not name:
        return "0"
    from .errors import NotFound, BadRequest
    try:
        got = client._request_dict("GET", "/api/2.0/mlflow/experiments/get-by-name",
                                   params={"experiment_name": name}, headers=headers)
        return str(got["experiment"]["experiment_id"])
    except NotFound:
        pass
    try:
        return str(client._request_dict("POST", "/api/2.0/mlflow/experiments/create", json={"name": name},
                                        headers=headers)["experiment_id"])
    except BadRequest as err:  # created meanwhile by someone else
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        got = client._request_dict("GET", "/api/2.0/mlflow/experiments/get-by-name",
                                   params={"experiment_name": name}, headers=headers)
        return str(got["experiment"]["experiment_id"])


def bind_run(client: Any, rec: Mapping[str, Any], headers: Optional[Mapping[str, str]] = None,
             bindings: Optional[Mapping[str, str]] = None) -> str:
    """Create the run of a ``create`` record, or find the one a previous
    replay created (by its ``kiln.spoolId`` tag); returns its run id. A
    ``parent_local_id`` becomes the ``mlflow.parentRunId`` tag through
    ``bindings``."""
    hdrs = dict(headers or {})
    exp = _experiment_id(client, rec, hdrs)
    local_id = str(rec["local_id"])
    found = client._request_dict(
        "POST", "/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [exp], "filter": f"tags.`{SPOOL_TAG}` = '{local_id}'",
              "run_view_type": "ALL", "max_results": 1},
        headers=hdrs)
    runs = found.get("runs") or []
    if runs:
        return str(runs[0]["info"]["run_id"])
    tags = [t for t in (rec.get("tags") or []) if t.get("key") != "mlflow.parentRunId"] \
        if rec.get("parent_local_id") else list(rec.get("tags") or [])
    parent = rec.get("parent_local_id")
    if parent and bindings and parent in bindings:
        tags.append({"key": "mlflow.parentRunId", "value": bindings[parent]})
    body: Dict[str, Any] = {"experiment_id": exp, "tags": tags}
    if rec.get("run_name"):
        body["run_name"] = rec["run_name"]
    if rec.get("start_time"):
        body["start_time"] = int(rec["start_time"])
    if rec.get("user_id"):
        body["user_id"] = rec["user_id"]
    made = client._request_dict("POST", "/api/2.0/mlflow/runs/create", json=body, headers=hdrs)
    return str(made["run"]["info"]["run_id"])


def send_record(client: Any, rec: Mapping[str, Any], run_id: str,
                headers: Optional[Mapping[str, str]] = None) -> None:
    """Send one batch or update record for ``run_id``."""
    op = rec.get("op")
    hdrs = dict(headers or {})
    if op == "batch":
        body = {"run_id": run_id, "metrics": rec.get("metrics") or [], "params": rec.get("params") or [],
                "tags": rec.get("tags") or []}
        client._request("POST", "/api/2.0/mlflow/runs/log-batch", json=_finite(body), headers=hdrs)
    elif op == "update":
        body = {"run_id": run_id}
        for k in ("status", "end_time", "run_name"):
            if rec.get(k) is not None:
                body[k] = rec[k]
        client._request("POST", "/api/2.0/mlflow/runs/update", json=body, headers=hdrs)


def _finite(body: Dict[str, Any]) -> Dict[str, Any]:
    """JSON has no NaN/Infinity: send those metric values as MLflow's strings."""
    ms = body.get("metrics")
    if ms:
        for m in ms:
            v = m.get("value")
            if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
                m["value"] = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return body


def replay_file(client: Any, path: Path, headers: Optional[Mapping[str, str]] = None,
                bindings: Optional[Dict[str, str]] = None) -> ReplayResult:
    """Replay one spool file to ``client``'s server and remove it when done.

    ``bindings`` maps local run ids to server run ids already known; it is
    updated with what this replay learns."""
    res = ReplayResult()
    binds = bindings if bindings is not None else {}
    try:
        fd = os.open(str(path), os.O_RDWR)
    except FileNotFoundError:
        return res
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:
            return res  # someone else replayed it meanwhile
        creates: Dict[str, Mapping[str, Any]] = {}
        try:
            for rec in read_records(path):
                op = rec.get("op")
                try:
                    if op == "create":
                        lid = str(rec.get("local_id"))
                        creates[lid] = rec
                        if lid not in binds:
                            binds[lid] = bind_run(client, rec, headers, binds)
                        res.bindings[lid] = binds[lid]
                        res.records_sent += 1
                        continue
                    if op not in ("batch", "update"):
                        continue
                    run_id = rec.get("run_id")
                    if not run_id:
                        lid = str(rec.get("local_id"))
                        run_id = binds.get(lid)
                        if run_id is None:
                            warnings.warn(f"kiln spool {path.name}: a record of unknown local run {lid} skipped")
                            res.records_skipped += 1
                            continue
                    send_record(client, rec, str(run_id), headers)
                    res.records_sent += 1
                    if op == "batch":
                        res.metrics_sent += len(rec.get("metrics") or [])
                except KilnError as err:
                    if is_transient(err):
                        raise _Keep(str(err)) from None
                    warnings.warn(f"kiln spool {path.name}: the server refused a record for good, skipped: {err}")
                    res.records_skipped += 1
        except _Keep as why:
            res.files_kept.append((str(path), str(why)))
            return res
        os.unlink(str(path))
        res.files_done += 1
        return res
    finally:
        os.close(fd)


def replay_all(client: Any, url: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
               directory: Optional[Path] = None, bindings: Optional[Dict[str, str]] = None,
               skip: Tuple[Path, ...] = ()) -> ReplayResult:
    """Replay every spool file meant for ``url`` (default: the client's)."""
    total = ReplayResult()
    binds = bindings if bindings is not None else {}
    for path in pending_files(url or client.url, directory):
        if path in skip:
            continue
        total += replay_file(client, path, headers, binds)
        if total.files_kept and isinstance(total.files_kept[-1], tuple) and "cannot reach" in total.files_kept[-1][1]:
            break  # the server is down: do not try every file
    return total


def now_ms() -> int:
    return int(time.time() * 1000)


def iter_metrics(records: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    for rec in records:
        if rec.get("op") == "batch":
            yield from rec.get("metrics") or []

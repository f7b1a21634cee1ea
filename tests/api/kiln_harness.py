"""The API suite's harness: real `kiln server` processes and a checking client.

(The fixtures and the coverage hooks that use this live in conftest.py; the
classes live here so test modules can import them under a unique name.)

Every suite under tests/api inherits three things from here:

- ``KilnServer`` starts the binary named by ``KILN_BIN`` (default build/kiln)
  with a fresh data directory and ``--listen 127.0.0.1:0``, reads the URL it
  prints, keeps its stderr (the JSON-lines log) in a file and stops it with a
  signal, returning the exit status. Fixtures: ``server`` (one per session),
  ``make_server`` (a factory for tests that need their own flags or kill it).
- ``client`` is a ``requests.Session`` that checks every response it sees
  against the server's own ``/api/openapi.json``: 2xx JSON bodies against the
  operation's response schema, every error under the API prefixes against
  ``#/components/schemas/Error``; each response must carry X-Request-Id.
- Route coverage: each (method, path template) a checking client exercised is
  recorded; when the whole suite ran, a route in openapi.json that no test
  touched fails the run. The report is written to build/api-coverage.json.
  ``KILN_API_COVERAGE=0`` turns enforcement off.

``KILN_ASAN=1`` says the binary is a sanitizer build: timeouts are scaled up
and a sanitizer report in a server's stderr fails the test that owned it.

Identity: every server is started with ``KILN_ADMIN_PASSWORD=ADMIN_PASSWORD``
(``server.admin_password``) unless a test asks for the generated-password
path (``admin_password=None``). ``server.login()``, ``server.admin_token()``,
``server.client(token=...)`` and ``create_user()`` sign in; every password,
token and key they see is remembered in ``SECRETS`` so a test can assert that
none of them ever shows up in a log or the audit trail.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

import jsonschema
import requests

ROOT = Path(__file__).resolve().parents[2]
API_DIR = Path(__file__).resolve().parent
ASAN = os.environ.get("KILN_ASAN", "") not in ("", "0")
SCALE = 6.0 if ASAN else 1.0
START_TIMEOUT_S = 15.0 * SCALE
REQUEST_TIMEOUT_S = 15.0 * SCALE
STOP_TIMEOUT_S = 15.0 * SCALE
COVERAGE_FILE = ROOT / "build" / "api-coverage.json"

# Paths whose every error must be the JSON Error shape (DESIGN §5).
API_PREFIXES = ("/api/", "/ajax-api/", "/v2/")
API_EXACT = ("/api", "/v2", "/healthz", "/readyz", "/metrics")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


# The admin password servers start with (KILN_ADMIN_PASSWORD) unless a test asks
# for the generated one. Strong enough for the policy: >= 10 characters, 4 classes.
ADMIN_PASSWORD = "Kiln-Suite-Admin-7q2X"
ADMIN_PASSWORD_FILE = "initial-admin-password"

# Every secret the harness (or a test, via register_secret) has seen: passwords,
# access and refresh tokens, API keys. Tests assert none of them leaks.
SECRETS: "set[str]" = set()
_SECRETS_LOCK = threading.Lock()
_NAMES = itertools.count(1)


def register_secret(*values: Optional[str]) -> None:
    with _SECRETS_LOCK:
        for v in values:
            if v:
                SECRETS.add(v)


def strong_password() -> str:
    """A fresh password that passes the policy (upper, lower, digit, other)."""
    return "Pw-" + secrets.token_hex(6) + "-Zq9"


def unique_name(prefix: str = "user") -> str:
    """A username no other test uses: [a-z0-9._-], starting with a letter."""
    return f"{prefix}{next(_NAMES)}-{secrets.token_hex(3)}"


def parallel(*calls: Callable[[], Any]) -> List[Any]:
    """Runs the calls on threads and returns their results in order (the first
    exception is re-raised). Password hashing (argon2, ~0.5 s each) runs on the
    server's I/O threads, so independent logins overlap instead of queueing."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as ex:
        futures = [ex.submit(c) for c in calls]
        return [f.result() for f in futures]


def scaled(seconds: float) -> float:
    """A timeout, longer under sanitizers."""
    return seconds * SCALE


def kiln_bin() -> str:
    b = os.environ.get("KILN_BIN", "build/kiln")
    p = Path(b)
    if not p.is_absolute():
        p = (Path.cwd() / b) if (Path.cwd() / b).exists() else (ROOT / b)
    return str(p)


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES) or path in API_EXACT


def media_type(content_type: Optional[str]) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json_type(content_type: Optional[str]) -> bool:
    mt = media_type(content_type)
    return mt == "application/json" or mt.endswith("+json")


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.01,
             what: str = "condition") -> Any:
    """Polls pred until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # keep polling; report the last error on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


# ---- the OpenAPI document: route matching and schema validation --------------------


class Spec:
    """One server's /api/openapi.json, compiled for matching and validation."""

    def __init__(self, doc: Dict[str, Any]) -> None:
        self.doc = doc
        self.ops: Dict[Tuple[str, str], Dict[str, Any]] = {}
        self._routes: List[Tuple[Tuple[int, ...], str, str, "re.Pattern[str]"]] = []
        for template, item in (doc.get("paths") or {}).items():
            for method, op in item.items():
                if method not in HTTP_METHODS or not isinstance(op, dict):
                    continue
                m = method.upper()
                self.ops[(m, template)] = op
                rank, rx = self._compile(template, op, item)
                self._routes.append((rank, m, template, rx))
        # literal segments win over parameters, parameters over a trailing
        # wildcard: the same order the server's router uses
        self._routes.sort(key=lambda r: r[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._resolver = jsonschema.RefResolver.from_schema(doc)
        self._validators: Dict[int, jsonschema.Draft202012Validator] = {}
        err = ((doc.get("components") or {}).get("schemas") or {}).get("Error")
        self.error_schema = err if err is not None else {
            "type": "object", "required": ["error_code", "message"],
            "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}}}

    @staticmethod
    def _is_wildcard(name: str, op: Dict[str, Any], item: Dict[str, Any]) -> bool:
        for p in list(op.get("parameters") or []) + list(item.get("parameters") or []):
            if p.get("name") == name and p.get("in") == "path":
                desc = str(p.get("description") or "")
                return bool(p.get("x-kiln-wildcard") or p.get("allowReserved")
                            or "rest of the path" in desc or "may contain /" in desc)
        return False

    def _compile(self, template: str, op: Dict[str, Any], item: Dict[str, Any]):
        segs = template.split("/")
        rank: List[int] = []
        parts: List[str] = []
        for i, seg in enumerate(segs):
            m = re.fullmatch(r"\{([^{}]+)\}", seg)
            if m and i == len(segs) - 1 and self._is_wildcard(m.group(1), op, item):
                rank.append(2)
                parts.append(".+")
            elif "{" in seg:
                rank.append(1)
                out, pos = "", 0
                for pm in re.finditer(r"\{[^{}]+\}", seg):
                    out += re.escape(seg[pos:pm.start()]) + "[^/]+"
                    pos = pm.end()
                parts.append(out + re.escape(seg[pos:]))
            else:
                rank.append(0)
                parts.append(re.escape(seg))
        return tuple(rank), re.compile("/".join(parts) + r"\Z")

    def match(self, method: str, path: str) -> Optional[str]:
        """The template of the operation serving method+path, or None."""
        for _, m, template, rx in self._routes:
            if m == method and rx.match(path):
                return template
        return None

    def validator(self, schema: Any) -> jsonschema.Draft202012Validator:
        key = id(schema)
        v = self._validators.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(schema, resolver=self._resolver)
            self._validators[key] = v
        return v

    def response_schema(self, method: str, template: str, status: int):
        """(declared media types, JSON schema or None) for a 2xx answer."""
        op = self.ops[(method, template)]
        responses = op.get("responses") or {}
        resp = (responses.get(str(status)) or responses.get("2XX") or responses.get("200")
                or {})
        return self._content(resp)

    def error_response_schema(self, method: Optional[str], template: Optional[str], status: int):
        """The schema an error answer must match: what the operation declares
        for the status (or its `default`), else #/components/schemas/Error;
        with a label saying which."""
        if method and template:
            responses = self.ops[(method, template)].get("responses") or {}
            for key in (str(status), f"{str(status)[0]}XX", "default"):
                if key in responses:
                    _, schema = self._content(responses[key])
                    if schema is not None:
                        label = schema.get("$ref") if isinstance(schema, dict) else None
                        return schema, f"{method} {template} responses[{key}] ({label or 'inline'})"
        return self.error_schema, "#/components/schemas/Error"

    def _content(self, resp: Dict[str, Any]):
        if "$ref" in resp:
            resp = self._resolver.resolve(resp["$ref"])[1]
        content = resp.get("content") or {}
        schema = None
        for mt, body in content.items():
            if is_json_type(mt):
                schema = (body or {}).get("schema")
        return [media_type(mt) for mt in content], schema


def validation_error_text(v: jsonschema.Draft202012Validator, body: Any) -> Optional[str]:
    errors = sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    lines = []
    for e in errors[:5]:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        lines.append(f"at {where}: {e.message}")
    return "; ".join(lines)


def error_body_problems(spec: Optional[Spec], path: str, status: int, headers, content: bytes,
                        method: str = "GET", template: Optional[str] = None) -> List[str]:
    """What is wrong with an error answer (status >= 400), [] when nothing.

    template: the matched route's path template, when the request matched one."""
    problems: List[str] = []
    ctype = headers.get("Content-Type")
    if method == "HEAD":
        if is_api_path(path) and not is_json_type(ctype):
            problems.append(f"error answer has Content-Type {ctype!r}, not JSON")
        return problems
    if not (is_api_path(path) or is_json_type(ctype)):
        return problems  # a non-API page may answer HTML errors
    if not is_json_type(ctype):
        problems.append(f"error answer has Content-Type {ctype!r}, not application/json")
    try:
        body = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        problems.append(f"error body is not JSON ({e})")
        return problems
    spec = spec or Spec({})
    op_method = "GET" if method == "HEAD" else method
    schema, label = spec.error_response_schema(op_method if template else None, template, status)
    msg = validation_error_text(spec.validator(schema), body)
    if msg:
        problems.append(f"error body does not match {label}: {msg}")
    if isinstance(body, dict):
        for k in ("error_code", "message"):
            if not isinstance(body.get(k), str) or not body.get(k):
                problems.append(f"error body needs a non-empty string {k!r}")
        # the Open Inference Protocol's own key, so standard clients read it (DESIGN §5)
        if (path.startswith("/v2/") or path == "/v2") and not isinstance(body.get("error"), str):
            problems.append("an error under /v2 must also carry the protocol's 'error' string")
    return problems


# ---- route coverage ---------------------------------------------------------------


class Coverage:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.operations: Dict[Tuple[str, str], str] = {}  # (method, template) -> operationId
        self.exercised: Dict[Tuple[str, str], collections.Counter] = {}

    def add_spec(self, spec: Spec) -> None:
        with self.lock:
            for (m, t), op in spec.ops.items():
                self.operations.setdefault((m, t), str(op.get("operationId", "")))

    def hit(self, method: str, template: str, status: int) -> None:
        with self.lock:
            self.exercised.setdefault((method, template), collections.Counter())[status] += 1

    def missing(self) -> List[Tuple[str, str]]:
        with self.lock:
            return sorted(k for k in self.operations if k not in self.exercised)


COVERAGE = Coverage()
_SPECS: Dict[str, Spec] = {}
_SPECS_LOCK = threading.Lock()


def load_spec(base_url: str, binary: str, verify: Any = True) -> Spec:
    """The spec of a binary (identical for every server it starts), cached."""
    with _SPECS_LOCK:
        spec = _SPECS.get(binary)
        if spec is None:
            r = requests.get(base_url + "/api/openapi.json", timeout=REQUEST_TIMEOUT_S, verify=verify)
            assert r.status_code == 200, f"/api/openapi.json answered {r.status_code}: {r.text[:300]}"
            spec = Spec(r.json())
            _SPECS[binary] = spec
            COVERAGE.add_spec(spec)  # the harness's own fetch does not count as coverage
        return spec


# ---- the checking client ------------------------------------------------------------


class ApiCheckError(AssertionError):
    pass


class CheckedSession(requests.Session):
    """requests.Session that checks each response against the OpenAPI document.

    Relative URLs ("/healthz") are joined to the server's base URL; a default
    timeout applies. ``stream=True`` responses (and event streams) are not
    read here: call ``check(resp)`` once the body has been consumed.
    """

    def __init__(self, base_url: str, spec: Spec, timeout: float = REQUEST_TIMEOUT_S,
                 coverage: Optional["Coverage"] = None) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.spec = spec
        self.coverage = coverage if coverage is not None else COVERAGE
        self.default_timeout = timeout
        self.checked = 0
        self.hooks["response"].append(self._hook)

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        __tracebackhide__ = True
        if isinstance(url, str) and url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", self.default_timeout)
        if self.verify is not True:
            # per request: REQUESTS_CA_BUNDLE in the environment would win over self.verify
            kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)

    def _hook(self, resp: requests.Response, *args, **kwargs) -> requests.Response:
        __tracebackhide__ = True
        stream = bool(kwargs.get("stream"))
        self.check(resp, read_body=not stream
                   and media_type(resp.headers.get("Content-Type")) != "text/event-stream")
        return resp

    def check(self, resp: requests.Response, read_body: bool = True) -> None:
        __tracebackhide__ = True
        req = resp.request
        method = (req.method or "GET").upper()
        path = unquote(urlsplit(req.url).path or "/")
        op_method = "GET" if method == "HEAD" else method
        template = self.spec.match(op_method, path)
        status = resp.status_code
        if template:
            self.coverage.hit(op_method, template, status)
        self.checked += 1
        problems: List[str] = []
        if not resp.headers.get("X-Request-Id"):
            problems.append("no X-Request-Id header")
        content = resp.content if read_body else b""
        ctype = resp.headers.get("Content-Type")
        if status >= 400:
            if read_body:
                problems += error_body_problems(self.spec, path, status, resp.headers, content,
                                                method, template)
        elif 200 <= status < 300 and template:
            types, schema = self.spec.response_schema(op_method, template, status)
            has_body = method != "HEAD" and status not in (204, 205) and (content or not read_body)
            if has_body and types and media_type(ctype) not in types:
                problems.append(f"Content-Type {ctype!r} is not one the route declares {types}")
            if has_body and read_body and is_json_type(ctype):
                try:
                    body = json.loads(content.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    problems.append(f"body is not JSON ({e})")
                else:
                    if schema is not None:
                        msg = validation_error_text(self.spec.validator(schema), body)
                        if msg:
                            problems.append(f"body does not match the response schema: {msg}")
        if problems:
            route = f"{op_method} {template}" if template else "no route"
            raise ApiCheckError(
                f"API response check failed for {method} {path} ({route}) -> {status} "
                f"{ctype!r}:\n  - " + "\n  - ".join(problems)
                + f"\n  body: {content[:600]!r}")


# ---- the server process ------------------------------------------------------------


class KilnServer:
    """One `kiln server` process with its own data directory and log file."""

    def __init__(self, workdir: Path, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                 data_dir: Optional[Path] = None, listen: str = "127.0.0.1:0",
                 binary: Optional[str] = None, name: str = "kiln",
                 admin_password: Optional[str] = ADMIN_PASSWORD) -> None:
        """admin_password: KILN_ADMIN_PASSWORD for the first start; None starts
        without it (the server generates one; see admin_password below). A
        KILN_ADMIN_PASSWORD in env wins over both."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or kiln_bin()
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="data-", dir=self.workdir))
        self.listen = listen
        self.name = name
        fd, log_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=self.workdir)
        os.close(fd)
        self.log_path = Path(log_path)
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""
        self.port = 0
        # requests' verify for an HTTPS server: the test's CA certificate file
        self.verify: Any = True
        self.stdout_lines: List[str] = []
        self.returncode: Optional[int] = None
        self.started_wall_s = 0.0  # just before the process was started
        self.ready_wall_s = 0.0    # once /healthz answered
        self._reader: Optional[threading.Thread] = None
        self._url_event = threading.Event()
        self._spec: Optional[Spec] = None
        self.expected_exit = False  # set once a test stops or waits for it
        self._clients: List[CheckedSession] = []
        if "KILN_ADMIN_PASSWORD" in self.extra_env:
            admin_password = self.extra_env["KILN_ADMIN_PASSWORD"]
        self._admin_password = admin_password
        self._admin_token: Optional[str] = None
        self._admin_lock = threading.Lock()
        register_secret(admin_password)

    # -- lifecycle
    def child_env(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        if self._admin_password is not None:
            env["KILN_ADMIN_PASSWORD"] = self._admin_password
        env.update(self.extra_env)
        return env

    def command(self) -> List[str]:
        cmd = [self.binary, "server"]
        if "--data" not in self.args:
            cmd += ["--data", str(self.data_dir)]
        if "--listen" not in self.args:
            cmd += ["--listen", self.listen]
        return cmd + self.args

    def start(self, wait_healthy: bool = True) -> "KilnServer":
        assert self.proc is None, "already started"
        self.started_wall_s = time.time()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=log, env=self.child_env(),
                                         cwd=str(self.workdir), start_new_session=True)
        finally:
            log.close()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._url_event.wait(0.02):
            if self.proc.poll() is not None:
                self._reader.join(1)
                if self._url_event.is_set():
                    break
                raise AssertionError(
                    f"kiln server exited with {self.proc.returncode} before listening\n"
                    f"command: {' '.join(self.command())}\nstderr:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"kiln server printed no URL within {START_TIMEOUT_S:.0f}s\n"
                                     f"stderr:\n{self.log_text()[-3000:]}")
        if wait_healthy:
            wait_for(self._healthy, START_TIMEOUT_S, what=f"{self.url}/healthz")
        self.ready_wall_s = time.time()
        return self

    def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            m = re.match(r"kiln: listening on (https?://\S+)", line)
            if m and not self.url:
                self.url = m.group(1).rstrip("/")
                self.port = int(urlsplit(self.url).port or 0)
                self._url_event.set()

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"kiln server exited with {self.proc.returncode}:\n"
                                 f"{self.log_text()[-3000:]}")
        try:
            return requests.get(self.url + "/healthz", timeout=2 * SCALE,
                                verify=self.verify).status_code == 200
        except requests.RequestException:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Waits for exit; returns the status, or fails (after SIGKILL) on timeout."""
        assert self.proc is not None
        self.expected_exit = True
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"kiln server did not exit within {timeout:.1f}s\n"
                                 f"stderr tail:\n{self.log_text()[-2000:]}")
        if self._reader:
            self._reader.join(2)
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Sends sig (SIGTERM by default) and returns the exit status."""
        for c in self._clients:
            c.close()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        self.expected_exit = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.returncode = self.proc.returncode

    # -- the log
    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> List[Dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_log(self, pred: Callable[[Dict[str, Any]], bool], timeout: float = scaled(5.0),
                 what: str = "a log record") -> Dict[str, Any]:
        """The first log record matching pred, polling until it appears."""
        def find():
            for rec in self.log_records():
                if pred(rec):
                    return rec
            return None
        return wait_for(find, timeout, what=what)

    def sanitizer_report(self) -> Optional[str]:
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 4000]
        return None

    # -- clients
    def spec(self) -> Spec:
        if self._spec is None:
            self._spec = load_spec(self.url, self.binary, self.verify)
        return self._spec

    def client(self, token: Optional[str] = None, **kwargs) -> CheckedSession:
        """A checking client; with token, every request sends
        `Authorization: Bearer <token>` (a JWT or an API key)."""
        c = CheckedSession(self.url, self.spec(), **kwargs)
        c.verify = self.verify
        if token:
            c.headers["Authorization"] = f"Bearer {token}"
        self._clients.append(c)
        return c

    # -- identity
    @property
    def admin_password(self) -> str:
        """The `admin` user's password: KILN_ADMIN_PASSWORD as started, or the
        generated one from DATA/initial-admin-password."""
        if self._admin_password is not None:
            return self._admin_password
        pw = (self.data_dir / ADMIN_PASSWORD_FILE).read_text("utf-8")
        register_secret(pw)
        return pw

    def login(self, username: str, password: str) -> Dict[str, Any]:
        """A password grant that must succeed; the token response."""
        c = self.client()
        try:
            r = c.post("/api/v1/auth/token", json={"username": username, "password": password})
        finally:
            c.close()
        assert r.status_code == 200, f"login as {username!r} answered {r.status_code}: {r.text[:300]}"
        body = r.json()
        register_secret(body.get("access_token"), body.get("refresh_token"))
        return body

    def admin_token(self) -> str:
        """A JWT for `admin` (one password grant per server, then cached)."""
        with self._admin_lock:
            if self._admin_token is None:
                self._admin_token = self.login("admin", self.admin_password)["access_token"]
            return self._admin_token

    def admin_client(self) -> CheckedSession:
        return self.client(token=self.admin_token())

    def __repr__(self) -> str:
        return f"<KilnServer {self.url or '(not started)'} pid={self.proc.pid if self.proc else None}>"


def run_kiln(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = scaled(20.0),
             cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Runs a kiln subcommand to completion (stdout/stderr as text)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    e.update(env or {})
    return subprocess.run([kiln_bin(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=e, cwd=str(cwd) if cwd else None)


def kiln_version():
    """(version, commit) as `kiln version` prints them."""
    out = run_kiln("version")
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"kiln (\S+) \(commit (\S+)\)\s*", out.stdout)
    assert m, f"unexpected `kiln version` output: {out.stdout!r}"
    return m.group(1), m.group(2)


def applied_migrations(data_dir):
    """Rows in schema_migrations, read straight from the SQLite file."""
    db = sqlite3.connect(f"file:{data_dir}/kiln.db?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    finally:
        db.close()


def check_alive(srv: KilnServer) -> None:
    """Fails when srv died without a test asking it to, or (sanitizer builds)
    when its log holds a sanitizer report."""
    if srv.proc is not None and srv.proc.poll() is not None and not srv.expected_exit:
        srv.expected_exit = True  # report it once
        raise AssertionError(f"kiln server {srv.url} died during this test with status "
                             f"{srv.proc.returncode}\nstderr tail:\n{srv.log_text()[-3000:]}")
    if ASAN:
        report = srv.sanitizer_report()
        assert report is None, f"sanitizer report in {srv.log_path}:\n{report}"


def finish_server(srv: KilnServer, expect_rc: Optional[int] = 0) -> None:
    """Teardown: stop if still running; a bad exit or a sanitizer report fails."""
    was_running = srv.running()
    died = srv.proc is not None and not was_running and not srv.expected_exit
    rc = srv.stop() if was_running else (srv.proc.returncode if srv.proc else 0)
    report = srv.sanitizer_report()
    assert report is None, f"sanitizer report in {srv.log_path}:\n{report}"
    assert not died, (f"kiln server died on its own with status {rc}\n"
                      f"stderr tail:\n{srv.log_text()[-3000:]}")
    if was_running and expect_rc is not None:
        assert rc == expect_rc, (f"kiln server exited with {rc} on SIGTERM (expected {expect_rc})\n"
                                 f"stderr tail:\n{srv.log_text()[-2000:]}")


class RawResponse:
    """What raw_http read back: status, headers (lower-cased names), body."""

    def __init__(self, status: int, reason: str, headers: Dict[str, str], body: bytes,
                 head: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.head = head

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def read_http_response(sock: socket.socket, timeout: float = REQUEST_TIMEOUT_S) -> RawResponse:
    """Reads one HTTP/1.1 response with a Content-Length body (or to EOF)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a full response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status, reason = int(parts[1]), (parts[2] if len(parts) > 2 else "")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:n]
    else:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest
    return RawResponse(status, reason, headers, body, head)


def raw_http(url: str, request: bytes, timeout: float = REQUEST_TIMEOUT_S) -> RawResponse:
    """Sends bytes as they are on a new connection and reads one response.

    For what requests cannot send (a lying Content-Length, Expect headers).
    The caller checks the answer; see check_raw_error for errors.
    """
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(request)
        return read_http_response(s, timeout)


def check_raw_error(spec: Optional[Spec], path: str, resp: RawResponse) -> None:
    """The checks the checking client applies to an error, for a raw response."""
    problems = error_body_problems(spec, path, resp.status, {"Content-Type": resp.headers.get("content-type")},
                                   resp.body)
    if not resp.headers.get("x-request-id"):
        problems.append("no X-Request-Id header")
    if problems:
        raise ApiCheckError(f"raw response to {path} -> {resp.status}:\n  - " + "\n  - ".join(problems)
                            + f"\n  body: {resp.body[:600]!r}")


# ---- users -------------------------------------------------------------------------


class KilnUser:
    """A user made through POST /api/v1/users, with its password and, when it
    signed in, its token response."""

    def __init__(self, server: KilnServer, user: Dict[str, Any], password: str,
                 tokens: Optional[Dict[str, Any]]) -> None:
        self.server = server
        self.user = user
        self.id: str = user["id"]
        self.username: str = user["username"]
        self.email: Optional[str] = user.get("email")
        self.password = password
        self.tokens = tokens

    @property
    def access_token(self) -> str:
        assert self.tokens, f"{self.username} has not signed in"
        return self.tokens["access_token"]

    @property
    def refresh_token(self) -> str:
        assert self.tokens, f"{self.username} has not signed in"
        return self.tokens["refresh_token"]

    def login(self, password: Optional[str] = None) -> Dict[str, Any]:
        self.tokens = self.server.login(self.username, password or self.password)
        return self.tokens

    def client(self) -> CheckedSession:
        """A checking client sending this user's access token."""
        return self.server.client(token=self.access_token)

    def __repr__(self) -> str:
        return f"<KilnUser {self.username} {self.id}>"


def create_user(admin: CheckedSession, server: KilnServer, username: Optional[str] = None,
                password: Optional[str] = None, email: Optional[str] = None,
                is_admin: bool = False, login: bool = True) -> KilnUser:
    """POST /api/v1/users as an administrator (admin: a client sending an admin
    credential), then, with login, a password grant as the new user."""
    username = username or unique_name()
    password = password or strong_password()
    register_secret(password)
    body: Dict[str, Any] = {"username": username, "password": password}
    if email is not None:
        body["email"] = email
    if is_admin:
        body["is_admin"] = True
    r = admin.post("/api/v1/users", json=body)
    assert r.status_code == 200, f"creating user {username!r} answered {r.status_code}: {r.text[:300]}"
    u = KilnUser(server, r.json()["user"], password, None)
    if login:
        u.login()
    return u

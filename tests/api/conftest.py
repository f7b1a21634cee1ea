"""Fixtures and session hooks of the API suite; see kiln_harness.py for the
harness itself (servers, the checking client, route coverage).

Fixtures: ``server`` (one `kiln server` for the session), ``client`` (a
checking requests.Session on it), ``make_server`` (a factory for servers with
their own flags, environment or data directory), ``openapi`` (the document).
Identity: ``admin_token`` (a JWT for `admin` on the shared server),
``admin_client`` (a checking client sending it), ``make_user`` (a factory: a
new user made through POST /api/v1/users, signed in).
When the whole suite ran, an operation in /api/openapi.json that no checking
client exercised fails the run; the report goes to build/api-coverage.json
(``KILN_API_COVERAGE=0`` turns the check off).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

from kiln_harness import (ADMIN_PASSWORD, API_DIR, COVERAGE, COVERAGE_FILE, CheckedSession,
                          KilnServer, KilnUser, check_alive, create_user, finish_server, kiln_bin)

# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kiln_binary() -> str:
    b = kiln_bin()
    if not os.access(b, os.X_OK):
        pytest.fail(f"KILN_BIN {b} is not an executable; build it with `make build/kiln`")
    return b


@pytest.fixture(scope="session")
def server(kiln_binary, tmp_path_factory) -> KilnServer:
    """One server shared by the session; tests must not change its state globally."""
    srv = KilnServer(tmp_path_factory.mktemp("kiln-session"), name="session").start()
    _SESSION["server"] = srv
    yield srv
    _SESSION["server"] = None
    finish_server(srv)


_SESSION: Dict[str, Optional[KilnServer]] = {"server": None}


@pytest.fixture(autouse=True)
def _session_server_survives():
    """Blames the test during which the shared server died (or, in sanitizer
    builds, reported an error), instead of every test after it."""
    yield
    srv = _SESSION["server"]
    if srv is not None:
        check_alive(srv)


@pytest.fixture
def client(server) -> CheckedSession:
    c = server.client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def admin_token(server) -> str:
    """A JWT for `admin` on the shared server (one password grant per session)."""
    return server.admin_token()


@pytest.fixture
def admin_client(server, admin_token) -> CheckedSession:
    """A checking client on the shared server sending `Authorization: Bearer`
    with the admin's JWT."""
    c = server.client(token=admin_token)
    yield c
    c.close()


@pytest.fixture
def make_user(server, admin_token):
    """Factory: make_user(username=None, password=None, email=None, is_admin=False,
    login=True) -> KilnUser, created on the shared server by the admin and (with
    login) signed in: .id, .username, .password, .tokens, .client()."""
    admin = server.client(token=admin_token)

    def factory(**kwargs) -> KilnUser:
        return create_user(admin, server, **kwargs)

    yield factory
    admin.close()


@pytest.fixture
def make_server(kiln_binary, tmp_path):
    """Factory: make_server(args=(), env=None, data_dir=None, start=True, wait_healthy=True,
    admin_password=ADMIN_PASSWORD).

    admin_password=None starts without KILN_ADMIN_PASSWORD (the generated path).
    Servers still running at teardown get SIGTERM and must exit 0.
    """
    servers: List[KilnServer] = []

    def factory(args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                data_dir: Optional[Path] = None, start: bool = True, wait_healthy: bool = True,
                name: str = "kiln", admin_password: Optional[str] = ADMIN_PASSWORD) -> KilnServer:
        srv = KilnServer(tmp_path / f"srv{len(servers)}", args=args, env=env, data_dir=data_dir,
                         name=name, admin_password=admin_password)
        servers.append(srv)
        if start:
            srv.start(wait_healthy=wait_healthy)
        return srv

    yield factory
    errors = []
    for srv in servers:
        try:
            finish_server(srv)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n\n".join(errors)


@pytest.fixture
def openapi(server) -> Dict[str, Any]:
    return server.spec().doc


# ---- coverage enforcement -------------------------------------------------------------

_STATE: Dict[str, Any] = {"deselected": 0, "full_reason": None}


def pytest_deselected(items) -> None:
    _STATE["deselected"] += len(items)


def _selection_covers_suite(config) -> Optional[str]:
    """None when the invocation selects all of tests/api, else why not."""
    for opt, why in (("keyword", "-k"), ("markexpr", "-m"), ("lf", "--lf"),
                     ("stepwise", "--sw"), ("deselect", "--deselect"), ("ignore", "--ignore"),
                     ("ignore_glob", "--ignore-glob")):
        try:
            v = config.getoption(opt)
        except (ValueError, AttributeError):
            continue
        if v:
            return f"{why} was given"
    base = Path(str(config.invocation_params.dir))
    args = list(config.args) or [str(base)]
    for a in args:
        if "::" in a:
            continue
        p = Path(a)
        p = (base / p) if not p.is_absolute() else p
        try:
            p = p.resolve()
        except OSError:
            continue
        if p == API_DIR or p in API_DIR.parents:
            return None
    return "only part of tests/api was selected"


def pytest_sessionfinish(session, exitstatus) -> None:
    config = session.config
    enforce_env = os.environ.get("KILN_API_COVERAGE", "1") not in ("0", "false", "no", "off")
    why_not = _selection_covers_suite(config)
    if why_not is None and _STATE["deselected"]:
        why_not = f"{_STATE['deselected']} tests were deselected"
    if why_not is None and (session.shouldstop or session.shouldfail):
        why_not = "the run stopped early"
    if why_not is None and exitstatus == pytest.ExitCode.INTERRUPTED:
        why_not = "the run was interrupted"
    if why_not is None and not enforce_env:
        why_not = "KILN_API_COVERAGE=0"
    if not COVERAGE.operations:
        if why_not is None:
            why_not = "no test loaded /api/openapi.json"
        _STATE["report"] = None
        return
    missing = COVERAGE.missing()
    enforced = why_not is None
    report = {
        "binary": kiln_bin(),
        "enforced": enforced,
        "not_enforced_because": why_not,
        "routes_total": len(COVERAGE.operations),
        "routes_exercised": len(COVERAGE.operations) - len(missing),
        "missing": [{"method": m, "path": p, "operationId": COVERAGE.operations[(m, p)]}
                    for m, p in missing],
        "routes": [
            {"method": m, "path": p, "operationId": COVERAGE.operations.get((m, p), ""),
             "exercised": (m, p) in COVERAGE.exercised,
             "statuses": {str(s): n for s, n in sorted(COVERAGE.exercised.get((m, p), {}).items())}}
            for m, p in sorted(set(COVERAGE.operations) | set(COVERAGE.exercised))
        ],
    }
    try:
        COVERAGE_FILE.parent.mkdir(parents=True, exist_ok=True)
        COVERAGE_FILE.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as e:
        report["write_error"] = str(e)
    _STATE["report"] = report
    if enforced and missing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if enforced and missing:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            # shows up in the final line ("N passed, 2 uncovered routes") and colours it
            tr.stats.setdefault("uncovered routes", []).extend(object() for _ in missing)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    report = _STATE.get("report")
    if not report:
        return
    tr = terminalreporter
    head = (f"API route coverage: {report['routes_exercised']}/{report['routes_total']} routes "
            f"exercised (report: {COVERAGE_FILE})")
    if report["missing"]:
        if report["enforced"]:
            tr.section("API route coverage FAILED", sep="=", red=True, bold=True)
            tr.write_line(head)
            tr.write_line("routes in /api/openapi.json that no test exercised:", red=True)
        else:
            tr.write_line(head + f"; not enforced: {report['not_enforced_because']}")
            tr.write_line("not exercised by this selection:")
        for m in report["missing"]:
            tr.write_line(f"  {m['method']} {m['path']}  ({m['operationId']})")
    elif config.getoption("verbose", 0) >= 0:
        tr.write_line(head)

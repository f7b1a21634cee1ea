"""System routes: health, readiness, server info, the API description and docs,
the command line (help, bad flags) and configuration precedence."""

from __future__ import annotations

import json
import re
import time

import jsonschema
import pytest

from kiln_harness import applied_migrations, kiln_version, run_kiln, scaled, wait_for

SYSTEM_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/server-info"),
    ("POST", "/api/v1/echo"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
}
PERMISSIONS = {"public", "read", "write", "predict", "admin"}


# ---- health --------------------------------------------------------------------------


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_healthz_head_has_no_body(client):
    r = client.head("/healthz")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Type"].startswith("application/json")


def test_readyz_counts_applied_migrations(server, client):
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"] == "ok"
    n = applied_migrations(server.data_dir)
    assert n >= 1
    assert body["checks"]["migrations"] == n
    # the session server started on an empty directory: it applied each one and said so
    migrated = [rec for rec in server.log_records() if rec.get("event") == "db.migrated"]
    assert len(migrated) == n, [rec.get("msg") for rec in migrated]


def test_readyz_after_restart_applies_nothing_twice(make_server, tmp_path):
    data = tmp_path / "data"
    first = make_server(data_dir=data)
    c1 = first.client()
    n = c1.get("/readyz").json()["checks"]["migrations"]
    assert n >= 1
    assert first.stop() == 0
    second = make_server(data_dir=data)
    r = second.client().get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["migrations"] == n
    assert not [rec for rec in second.log_records() if rec.get("event") == "db.migrated"]
    assert applied_migrations(data) == n


# ---- server info ------------------------------------------------------------------------


def test_server_info_matches_the_binary(server, client):
    version, commit = kiln_version()
    r = client.get("/api/v1/server-info")
    assert r.status_code == 200
    info = r.json()
    assert info["name"] == "kiln"
    assert info["version"] == version
    assert info["commit"] == commit
    assert info["store"]["driver"] == "sqlite"
    assert info["store"]["migrations"] == applied_migrations(server.data_dir)
    # started between our launching the process and it answering /healthz
    assert server.started_wall_s * 1000 - 1000 <= info["started_at_ms"] <= server.ready_wall_s * 1000 + 1000
    now_ms = time.time() * 1000
    assert abs((now_ms - info["started_at_ms"]) / 1000 - info["uptime_s"]) < scaled(2.0)


def test_server_info_uptime_increases(client):
    first = client.get("/api/v1/server-info").json()["uptime_s"]
    assert first >= 0

    def later():
        u = client.get("/api/v1/server-info").json()["uptime_s"]
        return u if u > first else None

    second = wait_for(later, scaled(3.0), what="uptime_s to increase")
    assert second > first
    assert second - first < scaled(5.0)


# ---- the API description ------------------------------------------------------------------


def iter_operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield method.upper(), path, op


def test_openapi_is_a_valid_openapi_31_document(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1."), doc["openapi"]
    version, _ = kiln_version()
    assert doc["info"]["title"]
    assert doc["info"]["version"] == version
    assert doc["paths"], "no paths"
    err = doc["components"]["schemas"]["Error"]
    assert set(err["required"]) >= {"error_code", "message"}
    jsonschema.Draft202012Validator.check_schema(err)

    ids = {}
    ops = set()
    for method, path, op in iter_operations(doc):
        where = f"{method} {path}"
        ops.add((method, path))
        assert path.startswith("/"), where
        assert op.get("x-kiln-permission") in PERMISSIONS, f"{where}: x-kiln-permission {op.get('x-kiln-permission')!r}"
        if op["x-kiln-permission"] != "public":
            assert op.get("security"), f"{where} needs credentials but declares no security"
        oid = op.get("operationId")
        assert oid and re.fullmatch(r"[A-Za-z0-9_.-]+", oid), f"{where}: operationId {oid!r}"
        assert oid not in ids, f"operationId {oid} used by {ids.get(oid)} and {where}"
        ids[oid] = where
        assert op.get("summary"), f"{where} has no summary"
        # path parameters: each {name} in the template is declared, and only those
        names = re.findall(r"\{([^{}]+)\}", path)
        declared = [p["name"] for p in op.get("parameters", []) if p.get("in") == "path"]
        assert sorted(names) == sorted(declared), f"{where}: template {names} vs declared {declared}"
        for p in op.get("parameters", []):
            if p.get("in") == "path":
                assert p.get("required") is True, f"{where}: path parameter {p['name']} not required"
        responses = op["responses"]
        assert "200" in responses, f"{where} has no 200 response"
        assert responses["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}, where
        for status, resp in responses.items():
            for mt, media in (resp.get("content") or {}).items():
                if "schema" in media:
                    jsonschema.Draft202012Validator.check_schema(media["schema"])
        if "requestBody" in op:
            for mt, media in op["requestBody"]["content"].items():
                jsonschema.Draft202012Validator.check_schema(media["schema"])
    missing = SYSTEM_ROUTES - ops
    assert not missing, f"system routes absent from openapi.json: {sorted(missing)}"
    # the docs page is listed, and it is HTML, not JSON
    assert "text/html" in doc["paths"]["/api/docs"]["get"]["responses"]["200"]["content"]
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_openapi_is_stable_between_calls(client):
    a = client.get("/api/openapi.json").content
    b = client.get("/api/openapi.json").content
    assert a == b


def test_docs_page_is_html(client):
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    text = r.text
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert "/api/openapi.json" in text
    assert r.headers.get("Cache-Control") == "no-cache"


# ---- command line -----------------------------------------------------------------------------


def test_help_server_lists_flags_and_environment():
    out = run_kiln("help", "server")
    assert out.returncode == 0, out.stderr
    for word in ("--listen", "KILN_LISTEN", "--data", "KILN_DATA", "--max-body", "KILN_MAX_BODY",
                 "--config"):
        assert word in out.stdout, f"{word} missing from `kiln help server`"
    # `kiln server --help` says the same
    again = run_kiln("server", "--help")
    assert again.returncode == 0
    assert again.stdout == out.stdout


def test_version_flag_matches_version_verb():
    a = run_kiln("version")
    b = run_kiln("--version")
    assert a.returncode == 0 and b.returncode == 0
    assert a.stdout == b.stdout


@pytest.mark.parametrize("args, word", [
    (["--no-such-flag"], "--no-such-flag"),
    (["--max-body", "lots"], "max-body"),
    (["--threads", "many"], "threads"),
    (["stray-argument"], "stray-argument"),
])
def test_bad_server_arguments_exit_2(tmp_path, args, word):
    out = run_kiln("server", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0", *args)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert word in out.stderr
    assert "listening" not in out.stdout


def test_unknown_key_in_config_file_exits_2(tmp_path):
    cfg = tmp_path / "kiln.conf"
    cfg.write_text("# a comment\nmax-body = 1k\nno-such-option = 3\n")
    out = run_kiln("server", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
                   "--config", str(cfg))
    assert out.returncode == 2
    assert "no-such-option" in out.stderr and ":3" in out.stderr


def test_listen_on_a_taken_port_fails_cleanly(server, tmp_path):
    out = run_kiln("server", "--data", str(tmp_path / "d"), "--listen", f"127.0.0.1:{server.port}")
    assert out.returncode != 0
    assert "listening on" not in out.stdout
    assert str(server.port) in out.stderr


# ---- configuration precedence: flag > KILN_* env > config file > default ------------------------------


def accepts(srv, n):
    """Whether srv accepts an echo body of exactly n bytes (200) or refuses it (413)."""
    body = json.dumps({"p": "x" * (n - 8)}, separators=(",", ":")).encode()
    assert len(body) == n
    r = srv.client().post("/api/v1/echo", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 413), r.text
    if r.status_code == 200:
        assert r.content == body
    else:
        assert r.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    return r.status_code == 200


def test_config_precedence_file_env_flag(make_server, tmp_path):
    cfg = tmp_path / "kiln.conf"
    cfg.write_text('max-body = "1k"\n')
    only_file = make_server(["--config", str(cfg)])
    assert accepts(only_file, 1024) and not accepts(only_file, 1025)

    env_over_file = make_server(["--config", str(cfg)], env={"KILN_MAX_BODY": "4k"})
    assert accepts(env_over_file, 4096) and not accepts(env_over_file, 4097)

    flag_over_all = make_server(["--config", str(cfg), "--max-body", "16k"],
                                env={"KILN_MAX_BODY": "4k"})
    assert accepts(flag_over_all, 16384) and not accepts(flag_over_all, 16385)

    # KILN_CONFIG names the file when --config does not
    env_file = make_server(env={"KILN_CONFIG": str(cfg)})
    assert accepts(env_file, 1024) and not accepts(env_file, 1025)


def test_openapi_one_area_at_a_time(client):
    """?tag=<a top-level tag> answers the document with only that area's
    operations (the docs page shows one area at a time); together they are
    the whole document, and an unknown tag is a 404 with the stable code."""
    full = client.get("/api/openapi.json").json()
    tags = [t["name"] for t in full["tags"]]
    assert len(tags) == len(set(tags)) >= 5
    ops = {(m, p): op["tags"][0] for p, item in full["paths"].items() for m, op in item.items()}
    assert set(ops.values()) == set(tags)
    seen = {}
    for tag in tags:
        r = client.get("/api/openapi.json", params={"tag": tag})
        assert r.status_code == 200, r.text
        part = r.json()
        assert part["openapi"] == full["openapi"] and "tags" not in part
        for p, item in part["paths"].items():
            for m, op in item.items():
                assert op["tags"][0] == tag and op == full["paths"][p][m]
                seen[(m, p)] = tag
    assert seen == ops
    r = client.get("/api/openapi.json", params={"tag": "no-such-area"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

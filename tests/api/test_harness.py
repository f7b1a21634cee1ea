"""The harness checks itself: route matching, schema checks that do fail,
crash detection. Later suites lean on these, so they must not pass vacuously."""

from __future__ import annotations

import json
import signal

import pytest
import requests

from kiln_harness import ApiCheckError, CheckedSession, Coverage, Spec, finish_server

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "0"},
    "paths": {
        "/api/v1/things": {"get": {"operationId": "list", "responses": {"200": {
            "description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["things"],
                "properties": {"things": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}}}}}}}}}},
        "/api/v1/things/{id}": {
            "get": {"operationId": "get", "parameters": [{"name": "id", "in": "path", "required": True}],
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Thing"}}}}}},
            "delete": {"operationId": "del", "responses": {"200": {"description": "OK"}}},
        },
        "/api/v1/things/special": {"get": {"operationId": "special", "responses": {"200": {
            "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/files/{path}": {"get": {"operationId": "file", "parameters": [
            {"name": "path", "in": "path", "required": True,
             "description": "the rest of the path, may contain /"}],
            "responses": {"200": {"description": "OK"}}}},
    },
    "components": {"schemas": {
        "Thing": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
        "Error": {"type": "object", "required": ["error_code", "message"], "properties": {
            "error_code": {"type": "string"}, "message": {"type": "string"}}},
    }},
}


@pytest.fixture
def spec():
    return Spec(DOC)


def fake(method, url, status, body, ctype="application/json", headers=None):
    req = requests.Request(method, url).prepare()
    r = requests.Response()
    r.request = req
    r.url = url
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r.headers.update({"Content-Type": ctype, "X-Request-Id": "0" * 32})
    r.headers.update(headers or {})
    return r


@pytest.fixture
def checker(spec):
    cov = Coverage()
    cov.add_spec(spec)
    s = CheckedSession("http://127.0.0.1:9", spec, coverage=cov)
    yield s, cov
    s.close()


def test_matching_prefers_literals_and_handles_wildcards(spec):
    assert spec.match("GET", "/api/v1/things") == "/api/v1/things"
    assert spec.match("GET", "/api/v1/things/42") == "/api/v1/things/{id}"
    assert spec.match("GET", "/api/v1/things/special") == "/api/v1/things/special"
    assert spec.match("DELETE", "/api/v1/things/special") == "/api/v1/things/{id}"
    assert spec.match("GET", "/api/v1/things/42/more") is None
    assert spec.match("POST", "/api/v1/things") is None
    assert spec.match("GET", "/files/a/b/c.txt") == "/files/{path}"
    assert spec.match("GET", "/files/") is None


def test_a_good_answer_passes_and_is_recorded(checker):
    s, cov = checker
    s.check(fake("GET", "http://h/api/v1/things/7", 200, {"id": 7}))
    s.check(fake("HEAD", "http://h/api/v1/things", 200, b""))
    s.check(fake("GET", "http://h/api/v1/things/special", 200, b"hi", "text/plain; charset=utf-8"))
    s.check(fake("GET", "http://h/api/v1/things/8", 404,
                 {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no thing 8"}))
    assert set(cov.exercised) == {("GET", "/api/v1/things/{id}"), ("GET", "/api/v1/things"),
                                  ("GET", "/api/v1/things/special")}
    assert cov.exercised[("GET", "/api/v1/things/{id}")] == {200: 1, 404: 1}
    assert cov.missing() == [("DELETE", "/api/v1/things/{id}"), ("GET", "/files/{path}")]


@pytest.mark.parametrize("resp, words", [
    (fake("GET", "http://h/api/v1/things/7", 200, {"id": "seven"}), ["response schema", "id"]),
    (fake("GET", "http://h/api/v1/things", 200, {"things": [{"id": 1}, {}]}), ["things/1", "'id' is a required"]),
    (fake("GET", "http://h/api/v1/things/7", 200, b"{not json"), ["not JSON"]),
    (fake("GET", "http://h/api/v1/things/7", 200, {"id": 1}, "text/html"), ["Content-Type"]),
    (fake("GET", "http://h/api/v1/nope", 404, b"<h1>404</h1>", "text/html"), ["not application/json"]),
    (fake("GET", "http://h/healthz", 500, {"error": "x"}), ["Error", "error_code"]),
    (fake("GET", "http://h/api/v1/x", 400, {"error_code": "", "message": "m"}), ["non-empty"]),
    (fake("GET", "http://h/v2/models/m", 404, {"error_code": "E", "message": "m"}), ["'error' string"]),
])
def test_bad_answers_fail(checker, resp, words):
    s, _ = checker
    with pytest.raises(ApiCheckError) as ei:
        s.check(resp)
    for w in words:
        assert w in str(ei.value), str(ei.value)


def test_missing_request_id_fails(checker):
    s, _ = checker
    r = fake("GET", "http://h/api/v1/things/7", 200, {"id": 7})
    del r.headers["X-Request-Id"]
    with pytest.raises(ApiCheckError, match="X-Request-Id"):
        s.check(r)


def test_html_error_outside_the_api_is_allowed(checker):
    s, _ = checker
    s.check(fake("GET", "http://h/some/page", 404, b"<h1>gone</h1>", "text/html"))


def test_a_server_that_dies_on_its_own_is_reported(make_server):
    srv = make_server()
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    with pytest.raises(AssertionError, match="died on its own"):
        finish_server(srv)
    srv.expected_exit = True  # reported; keep make_server's teardown quiet

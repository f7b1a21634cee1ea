"""Errors and the edges of the request pipeline: unknown endpoints, wrong
methods, body limits, malformed JSON with the fault's position, the echo
round trip, the dashboard fallback, request ids and the access log."""

from __future__ import annotations

import json
import re

import pytest

from kiln_harness import check_raw_error, raw_http, scaled

HEX32 = re.compile(r"[0-9a-f]{32}\Z")


# ---- unknown endpoints and methods ------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/no-such-thing"),
    ("GET", "/api"),
    ("POST", "/api/v1/no/such/thing"),
    ("DELETE", "/api/2.0/mlflow/no-such-call"),
    ("GET", "/ajax-api/2.0/mlflow/no-such-call"),
    ("PUT", "/metrics/extra"),
    ("GET", "/api/v1/server-info/extra"),
])
def test_unknown_api_path_is_404_json(client, method, path):
    r = client.request(method, path)
    assert r.status_code == 404
    body = r.json()
    assert body["error_code"] == "ENDPOINT_NOT_FOUND"
    assert path in body["message"] and method in body["message"]


def test_unknown_v2_path_carries_the_protocol_error_key(client):
    """KServe V2 clients read `error`; DESIGN §5 says /v2 errors carry it too
    (the checking client enforces it for every /v2 error)."""
    r = client.post("/v2/no-such-endpoint", json={"inputs": []})
    assert r.status_code == 404
    body = r.json()
    assert body["error_code"] == "ENDPOINT_NOT_FOUND"
    assert body["error"] == body["message"]
    # a real V2 route refusing an anonymous caller answers in the same shape
    r = client.post("/v2/models/no-such-model/infer", json={"inputs": []})
    assert r.status_code == 401
    body = r.json()
    assert body["error_code"] == "UNAUTHENTICATED" and body["error"] == body["message"]


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/healthz", {"GET", "HEAD"}),
    ("DELETE", "/readyz", {"GET", "HEAD"}),
    ("PUT", "/metrics", {"GET", "HEAD"}),
    ("GET", "/api/v1/echo", {"POST"}),
    ("PATCH", "/api/openapi.json", {"GET", "HEAD"}),
])
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.json()["error_code"] == "METHOD_NOT_ALLOWED"
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allow == allowed
    assert method not in allow


def test_head_on_a_post_only_route_is_405(client):
    r = client.head("/api/v1/echo")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} == {"POST"}


# ---- body limits ------------------------------------------------------------------------


@pytest.fixture
def small_server(make_server):
    return make_server(["--max-body", "1k"])


def test_413_with_content_length(small_server):
    c = small_server.client()
    body = b'{"k":"' + b"a" * (2048 - 8) + b'"}'
    assert len(body) == 2048
    r = c.post("/api/v1/echo", data=body)
    assert r.status_code == 413
    err = r.json()
    assert err["error_code"] == "PAYLOAD_TOO_LARGE"
    assert "1024" in err["message"]
    assert c.get("/healthz").status_code == 200
    ok = c.post("/api/v1/echo", data=b'{"k":"small"}')
    assert ok.status_code == 200 and ok.json() == {"k": "small"}


def test_413_with_chunked_body(small_server):
    c = small_server.client()
    body = b'{"k":"' + b"b" * (2048 - 8) + b'"}'

    def chunks():
        for i in range(0, len(body), 300):
            yield body[i:i + 300]

    r = c.post("/api/v1/echo", data=chunks())
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 413
    assert r.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    # the connection and the server are fine afterwards
    assert c.get("/healthz").status_code == 200
    small = b'{"k":[1,2,3]}'
    ok = c.post("/api/v1/echo", data=iter([small[:5], small[5:]]))
    assert ok.status_code == 200 and ok.json() == {"k": [1, 2, 3]}


def test_body_limit_is_exact(small_server):
    c = small_server.client()
    at = b'"' + b"x" * 1022 + b'"'
    assert len(at) == 1024
    r = c.post("/api/v1/echo", data=at)
    assert r.status_code == 200 and r.content == at
    over = b'"' + b"x" * 1023 + b'"'
    assert c.post("/api/v1/echo", data=over).status_code == 413
    assert c.post("/api/v1/echo", data=iter([over[:512], over[512:]])).status_code == 413
    assert c.post("/api/v1/echo", data=iter([at[:512], at[512:]])).status_code == 200


def test_413_before_reading_an_announced_body(small_server):
    """With Expect: 100-continue the client waits; the server refuses at once."""
    spec = small_server.spec()
    resp = raw_http(small_server.url,
                    b"POST /api/v1/echo HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n")
    assert resp.status == 413, resp.head
    assert b"100 Continue" not in resp.head
    check_raw_error(spec, "/api/v1/echo", resp)
    assert resp.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    assert small_server.client().get("/healthz").status_code == 200


def test_oversized_upload_without_expect_gets_413_not_a_reset(small_server):
    """Regression: answering 413 mid-upload made the kernel reset the
    connection (about 1 upload in 10 saw ECONNRESET instead of the 413).
    Bodies up to 64 MiB over the limit are now read and dropped first."""
    c = small_server.client()
    body = b"x" * (16 << 20)
    for _ in range(8):
        r = c.post("/api/v1/echo", data=body)
        assert r.status_code == 413
        assert r.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    assert c.get("/healthz").status_code == 200


def test_default_limit_is_32_mib(server):
    resp = raw_http(server.url,
                    b"POST /api/v1/echo HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 33554433\r\nExpect: 100-continue\r\n\r\n")
    assert resp.status == 413
    check_raw_error(server.spec(), "/api/v1/echo", resp)
    assert "33554432" in resp.json()["message"]


# ---- malformed JSON ---------------------------------------------------------------------------


def fault_position(text: str, fault: int):
    """(line, column, byte) of the character at index fault, as the server
    reports them: 1-based line, 1-based column in characters, 1-based byte."""
    line = text.count("\n", 0, fault) + 1
    col = fault - (text.rfind("\n", 0, fault) + 1) + 1
    byte = len(text[:fault].encode("utf-8")) + 1
    return line, col, byte


MALFORMED = [
    # (body, index of the character the parser stopped at: the fault itself,
    # or the last character of an offending multi-character token)
    ('{"a": [1, 2,]}', 12),
    ('{"a": [1,2,}', 11),
    ('{\n  "a": 1,\n  "b": x\n}', 19),
    ('{"é€": "ü", x}', 12),
    ('{"a": 1} trailing', 16),
    ('[1, 2', 4),
    ('{"a" 1}', 5),
    ('\n\n  [true, fals]', 14),
]


@pytest.mark.parametrize("body, fault", MALFORMED)
def test_malformed_json_names_the_position(client, body, fault):
    r = client.post("/api/v1/echo", data=body.encode("utf-8"),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    err = r.json()
    assert err["error_code"] == "MALFORMED_REQUEST"
    m = re.search(r"line (\d+), column (\d+) \(byte (\d+)\)", err["message"])
    assert m, err["message"]
    assert tuple(int(g) for g in m.groups()) == fault_position(body, fault), err["message"]


def test_empty_body_is_400(client):
    r = client.post("/api/v1/echo", data=b"")
    assert r.status_code == 400
    err = r.json()
    assert err["error_code"] == "MALFORMED_REQUEST"
    assert "empty" in err["message"]


def test_whitespace_body_is_400(client):
    r = client.post("/api/v1/echo", data=b" \n\t ")
    assert r.status_code == 400
    assert r.json()["error_code"] == "MALFORMED_REQUEST"


def test_invalid_utf8_is_400(client):
    r = client.post("/api/v1/echo", data=b'{"k": "\xff\xfe"}')
    assert r.status_code == 400
    assert r.json()["error_code"] == "MALFORMED_REQUEST"


def test_integer_beyond_64_bits_is_refused_not_mangled(client):
    r = client.post("/api/v1/echo", data=b'{"n": 18446744073709551616}')
    assert r.status_code == 400
    err = r.json()
    assert err["error_code"] == "MALFORMED_REQUEST"
    assert "18446744073709551616" in err["message"]


def test_nesting_limit(client):
    deep = "[" * 100 + "]" * 100
    r = client.post("/api/v1/echo", data=deep)
    assert r.status_code == 400
    err = r.json()
    assert err["error_code"] == "MALFORMED_REQUEST"
    assert "nested" in err["message"] and "64" in err["message"]
    # the 65th bracket is the fault: byte 65, counted from 1 like every other
    # position this error reports
    m = re.search(r"byte (\d+)", err["message"])
    assert m and int(m.group(1)) == 65, err["message"]


def test_nesting_limit_is_exact_and_ignores_strings(client):
    ok = "[" * 64 + "]" * 64
    r = client.post("/api/v1/echo", data=ok)
    assert r.status_code == 200 and r.text == ok
    assert client.post("/api/v1/echo", data="[" * 65 + "]" * 65).status_code == 400
    mixed = '{"a":' * 64 + "1" + "}" * 64
    assert client.post("/api/v1/echo", data=mixed).status_code == 200
    in_string = json.dumps({"s": "[" * 500 + "{" * 500, "t": "\\\"[[["})
    r = client.post("/api/v1/echo", data=in_string)
    assert r.status_code == 200 and r.json() == json.loads(in_string)


# ---- echo round trip ------------------------------------------------------------------------


DOC = {
    "ascii": "plain",
    "unicode": "héllo wörld ☃ 𝄞 😀 中文 עברית",
    "escapes": "quote \" backslash \\ slash / newline \n tab \t cr \r bell \u0007 del \u007f",
    "empty": "",
    "": "empty key",
    "ключ": "unicode key",
    "int_max": 2**63 - 1,
    "int_min": -(2**63),
    "zero": 0,
    "neg": -42,
    "float": 0.1,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "exp": -1.5e-10,
    "true": True,
    "false": False,
    "null": None,
    "list": [1, "two", 3.0, None, [], {}, [[[]]]],
    "nested": {"a": {"b": {"c": [{"d": "e"}]}}},
}


def test_echo_round_trips_a_document(client):
    raw = json.dumps(DOC, ensure_ascii=False).encode("utf-8")
    r = client.post("/api/v1/echo", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    back = json.loads(r.content.decode("utf-8"))
    assert back == DOC
    # exact types too: 3.0 stays a float, 2**63-1 an exact int
    assert isinstance(back["list"][2], float) and isinstance(back["int_max"], int)
    assert back["int_max"] == 9223372036854775807 and back["int_min"] == -9223372036854775808
    # key order is kept
    assert list(json.loads(r.content, object_pairs_hook=lambda kv: [k for k, _ in kv])) == list(DOC)


def test_echo_round_trips_ascii_escaped_input(client):
    raw = json.dumps(DOC, ensure_ascii=True)  # \\uXXXX escapes, surrogate pairs
    r = client.post("/api/v1/echo", data=raw)
    assert r.status_code == 200 and r.json() == DOC


@pytest.mark.parametrize("value", ["a string", 42, -7.25, True, False, None, [], {}])
def test_echo_round_trips_scalars(client, value):
    r = client.post("/api/v1/echo", data=json.dumps(value))
    assert r.status_code == 200
    assert r.json() == value and type(r.json()) is type(value)


# ---- the dashboard fallback -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/some/page", "/models/fraud/versions/3", "/runs"])
def test_non_api_paths_answer_the_dashboard(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<html" in r.text.lower()


@pytest.mark.parametrize("path", ["/assets/nope.js", "/assets/app-00000000.css", "/favicon-nope.png"])
def test_missing_asset_is_404_json(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error_code"] in ("RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND")


def test_post_to_a_dashboard_path_is_not_html(client):
    r = client.post("/some/page", data=b"{}")
    assert r.status_code in (404, 405)
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error_code"]


# ---- request ids and the access log -----------------------------------------------------------


def test_every_answer_has_a_fresh_request_id(client):
    ids = set()
    for path in ("/healthz", "/api/v1/no-such", "/some/page", "/api/v1/server-info"):
        rid = client.get(path).headers["X-Request-Id"]
        assert HEX32.match(rid), rid
        ids.add(rid)
    assert len(ids) == 4


@pytest.mark.parametrize("rid", ["abc-123_DEF.x", "7f" * 16, "a", "Z" * 64])
def test_well_formed_request_id_is_echoed(client, rid):
    assert client.get("/healthz", headers={"X-Request-Id": rid}).headers["X-Request-Id"] == rid
    # errors too
    r = client.get("/api/v1/no-such", headers={"X-Request-Id": rid})
    assert r.status_code == 404 and r.headers["X-Request-Id"] == rid


@pytest.mark.parametrize("rid", ["x" * 200, "Z" * 65, "has space", 'quo"te', "semi;colon",
                                 "slash/y", "<script>", "ü-umlaut"])
def test_malformed_request_id_is_replaced(client, rid):
    r = client.get("/healthz", headers={"X-Request-Id": rid.encode("utf-8")})
    got = r.headers["X-Request-Id"]
    assert got != rid
    assert HEX32.match(got), got


def test_access_log_line_matches_the_request(server, client):
    rid = "api-suite-access-log-1"
    r = client.get("/api/v1/server-info", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    rec = server.wait_log(lambda rec: rec.get("request_id") == rid, what=f"access log line {rid}")
    assert rec["event"] == "http.access"
    assert rec["level"] == "info"
    assert rec["method"] == "GET"
    assert rec["route"] == "/api/v1/server-info"
    assert rec["path"] == "/api/v1/server-info"
    assert rec["status"] == 200
    assert rec["bytes"] == len(r.content)
    assert isinstance(rec["us"], int) and 0 <= rec["us"] < scaled(5.0) * 1e6
    assert isinstance(rec["ts"], (int, float))
    assert "error_code" not in rec


def test_access_log_of_an_error_uses_the_route_pattern(server, client):
    rid = "api-suite-access-log-2"
    r = client.get("/api/v1/no/such/thing/42", headers={"X-Request-Id": rid})
    assert r.status_code == 404
    rec = server.wait_log(lambda rec: rec.get("request_id") == rid, what=f"access log line {rid}")
    assert rec["route"] == "unmatched"
    assert rec["status"] == 404
    assert rec["error_code"] == "ENDPOINT_NOT_FOUND"
    assert rec["bytes"] == len(r.content)

    rid = "api-suite-access-log-3"
    bad = client.post("/api/v1/echo", data=b"{", headers={"X-Request-Id": rid})
    assert bad.status_code == 400
    rec = server.wait_log(lambda rec: rec.get("request_id") == rid, what=f"access log line {rid}")
    assert (rec["route"], rec["status"], rec["error_code"]) == ("/api/v1/echo", 400, "MALFORMED_REQUEST")


def test_access_log_uses_the_replacement_id(server, client):
    r = client.get("/api/docs", headers={"X-Request-Id": "bad id with spaces"})
    rid = r.headers["X-Request-Id"]
    assert HEX32.match(rid)
    rec = server.wait_log(lambda rec: rec.get("request_id") == rid, what="access log line")
    assert rec["route"] == "/api/docs" and rec["status"] == 200


def test_probes_are_not_access_logged(server):
    """/healthz and /readyz would flood the log; on one connection, the
    probe's line would be written before the next request's."""
    c = server.client()
    c.get("/healthz", headers={"X-Request-Id": "probe-not-logged-1"})
    c.get("/readyz", headers={"X-Request-Id": "probe-not-logged-2"})
    c.get("/api/v1/server-info", headers={"X-Request-Id": "probe-not-logged-3"})
    server.wait_log(lambda rec: rec.get("request_id") == "probe-not-logged-3", what="the marker line")
    ids = {rec.get("request_id") for rec in server.log_records()}
    assert "probe-not-logged-1" not in ids and "probe-not-logged-2" not in ids


def test_access_log_lines_are_each_valid_json(server, client):
    client.get("/api/v1/server-info", headers={"X-Request-Id": "json-lines-check"})
    server.wait_log(lambda rec: rec.get("request_id") == "json-lines-check")
    for line in server.log_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            assert {"ts", "level", "event"} <= set(rec), line

"""Unit tests of the Kiln Python SDK against an in-process stub HTTP server."""

from __future__ import annotations

import email.utils
import json
import os
import pickle
import re
import socket
import time
import urllib.parse
from typing import Iterator, Type

import pytest

import kiln
from kiln.errors import error_from_response, parse_retry_after

PYPROJECT = os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python", "pyproject.toml")


# ---------------------------------------------------------------- package


def test_version_matches_pyproject() -> None:
    assert kiln.__version__ == "0.1.0"
    with open(PYPROJECT, encoding="utf-8") as fh:
        text = fh.read()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    assert match and match.group(1) == kiln.__version__
    assert re.search(r'^name\s*=\s*"kiln-sdk"', text, re.MULTILINE)
    assert re.search(r"^dependencies\s*=\s*\[\]", text, re.MULTILINE)


def test_public_names_exported() -> None:
    for name in kiln.__all__:
        assert hasattr(kiln, name), name
    for cls in (
        kiln.BadRequest,
        kiln.Unauthenticated,
        kiln.PermissionDenied,
        kiln.NotFound,
        kiln.Conflict,
        kiln.PayloadTooLarge,
        kiln.RateLimited,
        kiln.ServerError,
        kiln.ConnectionFailed,
    ):
        assert issubclass(cls, kiln.KilnError)
    assert issubclass(kiln.KilnError, Exception)


# ------------------------------------------------------------ configuration


def test_defaults_without_environment() -> None:
    client = kiln.Client()
    assert client.url == "http://127.0.0.1:8080"
    assert client.token is None
    assert client.timeout == 30.0


def test_environment_supplies_url_and_token(stub, monkeypatch) -> None:
    monkeypatch.setenv("KILN_URL", stub.url)
    monkeypatch.setenv("KILN_TOKEN", "env-token-1")
    stub.reply("GET", "/healthz", body={"status": "ok"})
    client = kiln.Client()
    assert client.url == stub.url
    assert client.health() == {"status": "ok"}
    assert stub.last.headers["authorization"] == "Bearer env-token-1"


def test_explicit_arguments_override_environment(stub, monkeypatch) -> None:
    monkeypatch.setenv("KILN_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("KILN_TOKEN", "env-token")
    stub.reply("GET", "/healthz", body={"status": "ok"})
    kiln.Client(stub.url, token="arg-token").health()
    assert stub.last.headers["authorization"] == "Bearer arg-token"


def test_empty_token_sends_no_authorization_even_with_env(stub, monkeypatch) -> None:
    monkeypatch.setenv("KILN_TOKEN", "env-token")
    stub.reply("GET", "/healthz", body={"status": "ok"})
    kiln.Client(stub.url, token="").health()
    assert "authorization" not in stub.last.headers


def test_no_token_sends_no_authorization(stub) -> None:
    stub.reply("GET", "/healthz", body={"status": "ok"})
    kiln.Client(stub.url).health()
    assert "authorization" not in stub.last.headers


def test_url_trailing_slash_and_path_prefix(stub) -> None:
    stub.reply("GET", "/prefix/healthz", body={"status": "ok"})
    client = kiln.Client(stub.url + "/prefix/")
    assert client.url == stub.url + "/prefix"
    assert client.health() == {"status": "ok"}
    assert stub.last.target == "/prefix/healthz"


@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "ftp://host", "http://", ""])
def test_invalid_url_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        kiln.Client(bad)


def test_invalid_timeout_rejected() -> None:
    with pytest.raises(ValueError):
        kiln.Client("http://127.0.0.1:8080", timeout=0)


def test_repr_hides_token() -> None:
    text = repr(kiln.Client("http://h:1", token="s3cret"))
    assert "s3cret" not in text
    assert "http://h:1" in text


# ----------------------------------------------------------- status calls


def test_health(stub) -> None:
    stub.reply("GET", "/healthz", body={"status": "ok"})
    assert kiln.Client(stub.url, token="t0k").health() == {"status": "ok"}
    rec = stub.last
    assert rec.method == "GET"
    assert rec.target == "/healthz"
    assert rec.body == b""
    assert rec.headers["accept"] == "application/json"
    assert rec.headers["user-agent"].startswith("kiln-sdk/0.1.0 python/")
    assert rec.headers["authorization"] == "Bearer t0k"
    assert "content-type" not in rec.headers
    assert len(stub.requests) == 1


def test_ready_ok(stub) -> None:
    stub.reply("GET", "/readyz", body={"status": "ready", "store": "ok"})
    assert kiln.Client(stub.url).ready() == {"status": "ready", "store": "ok"}
    assert stub.last.target == "/readyz"


def test_ready_not_ready_raises_server_error(stub) -> None:
    stub.reply(
        "GET",
        "/readyz",
        503,
        {"error_code": "NOT_READY", "message": "migrations running"},
        {"X-Request-Id": "rq-503"},
    )
    with pytest.raises(kiln.ServerError) as info:
        kiln.Client(stub.url).ready()
    err = info.value
    assert err.status == 503
    assert err.error_code == "NOT_READY"
    assert err.message == "migrations running"
    assert err.request_id == "rq-503"
    assert str(err) == "NOT_READY (503): migrations running [request id rq-503]"


def test_server_info(stub) -> None:
    info = {
        "name": "kiln",
        "version": "0.1.0",
        "commit": "abc1234",
        "started_at_ms": 1700000000123,
        "uptime_s": 12.5,
        "store": {"db": "sqlite", "blobs": "file"},
    }
    stub.reply("GET", "/api/v1/server-info", body=info)
    got = kiln.Client(stub.url).server_info()
    assert got == info
    assert isinstance(got["started_at_ms"], int)
    assert isinstance(got["uptime_s"], float)
    assert stub.last.target == "/api/v1/server-info"


def test_status_call_with_non_object_answer_raises(stub) -> None:
    stub.reply("GET", "/healthz", body=["ok"])
    with pytest.raises(kiln.KilnError) as info:
        kiln.Client(stub.url).health()
    assert info.value.error_code == "INVALID_RESPONSE"


# ------------------------------------------------------- request encoding


def test_json_body_encoding(stub) -> None:
    stub.reply("POST", "/api/v1/things", 201, {"id": "t1", "ok": True})
    payload = {"name": "modèle ✓", "values": [1, 2.5, None], "nested": {"flag": False}}
    got = kiln.Client(stub.url)._request("POST", "/api/v1/things", json=payload)
    assert got == {"id": "t1", "ok": True}
    rec = stub.last
    assert rec.method == "POST"
    assert rec.headers["content-type"] == "application/json"
    expected = '{"name":"modèle ✓","values":[1,2.5,null],"nested":{"flag":false}}'.encode("utf-8")
    assert rec.body == expected
    assert int(rec.headers["content-length"]) == len(expected)
    assert json.loads(rec.body.decode("utf-8")) == payload


def test_json_body_may_be_a_list_or_falsy_value(stub) -> None:
    stub.reply("PUT", "/x", body={})
    client = kiln.Client(stub.url)
    client._request("PUT", "/x", json=[])
    assert stub.last.body == b"[]"
    client._request("PUT", "/x", json=0)
    assert stub.last.body == b"0"
    client._request("PUT", "/x", json={})
    assert stub.last.body == b"{}"


def test_post_without_body_sends_zero_length(stub) -> None:
    stub.reply("POST", "/api/v1/ping", body={"pong": 1})
    assert kiln.Client(stub.url)._request("POST", "/api/v1/ping") == {"pong": 1}
    assert stub.last.body == b""
    assert stub.last.headers.get("content-length") == "0"
    assert "content-type" not in stub.last.headers


def test_nan_is_refused_before_sending(stub) -> None:
    with pytest.raises(ValueError):
        kiln.Client(stub.url)._request("POST", "/x", json={"v": float("nan")})
    assert stub.requests == []


def test_json_and_data_are_exclusive(stub) -> None:
    with pytest.raises(ValueError):
        kiln.Client(stub.url)._request("POST", "/x", json={}, data=b"1")
    assert stub.requests == []


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_methods(stub, method: str) -> None:
    stub.reply(method, "/api/v1/thing", body={"method": method})
    assert kiln.Client(stub.url)._request(method.lower(), "/api/v1/thing") == {"method": method}
    assert stub.last.method == method


def test_query_params_encoding(stub) -> None:
    stub.reply("GET", "/api/v1/search", body={"items": []})
    kiln.Client(stub.url)._request(
        "GET",
        "/api/v1/search",
        params={
            "max_results": 50,
            "tag": ["a", "b c"],
            "deep": True,
            "shallow": False,
            "skipped": None,
            "filter": "metrics.acc > 0.9 & name='x/y'",
            "ratio": 0.25,
        },
    )
    rec = stub.last
    assert rec.path == "/api/v1/search"
    assert rec.query == (
        "max_results=50&tag=a&tag=b%20c&deep=true&shallow=false"
        "&filter=metrics.acc%20%3E%200.9%20%26%20name%3D%27x%2Fy%27&ratio=0.25"
    )
    assert urllib.parse.parse_qs(rec.query) == {
        "max_results": ["50"],
        "tag": ["a", "b c"],
        "deep": ["true"],
        "shallow": ["false"],
        "filter": ["metrics.acc > 0.9 & name='x/y'"],
        "ratio": ["0.25"],
    }


def test_query_params_as_pairs_keep_order_and_unicode(stub) -> None:
    stub.reply("GET", "/q", body={})
    kiln.Client(stub.url)._request("GET", "/q", params=[("z", 1), ("a", "é"), ("z", 2)])
    assert stub.last.query == "z=1&a=%C3%A9&z=2"


def test_empty_params_add_no_question_mark(stub) -> None:
    stub.reply("GET", "/q", body={})
    client = kiln.Client(stub.url)
    client._request("GET", "/q", params={})
    assert stub.last.target == "/q"
    client._request("GET", "/q", params={"only": None})
    assert stub.last.target == "/q"


def test_params_appended_to_existing_query(stub) -> None:
    stub.reply("GET", "/q", body={})
    kiln.Client(stub.url)._request("GET", "/q?fixed=1", params={"more": 2})
    assert stub.last.target == "/q?fixed=1&more=2"


def test_path_without_leading_slash(stub) -> None:
    stub.reply("GET", "/healthz", body={"status": "ok"})
    assert kiln.Client(stub.url)._request("GET", "healthz") == {"status": "ok"}
    assert stub.last.target == "/healthz"


def test_raw_body_and_extra_headers(stub) -> None:
    stub.reply("PUT", "/blob", 200, b"\x00\x01binary", {"Content-Type": "application/octet-stream"})
    got = kiln.Client(stub.url)._request(
        "PUT",
        "/blob",
        data=b"\xffpayload",
        headers={"Content-Type": "application/octet-stream", "X-Extra": "1"},
        raw=True,
    )
    assert got == b"\x00\x01binary"
    rec = stub.last
    assert rec.body == b"\xffpayload"
    assert rec.headers["content-type"] == "application/octet-stream"
    assert rec.headers["x-extra"] == "1"


# ------------------------------------------------------- response decoding


def test_empty_success_body_is_none(stub) -> None:
    stub.reply("DELETE", "/api/v1/thing", 204)
    assert kiln.Client(stub.url)._request("DELETE", "/api/v1/thing") is None
    stub.reply("POST", "/api/v1/thing", 200, b"")
    assert kiln.Client(stub.url)._request("POST", "/api/v1/thing") is None


def test_non_json_success_body_raises_invalid_response(stub) -> None:
    stub.reply("GET", "/metrics", 200, "kiln_up 1\n", {"Content-Type": "text/plain", "X-Request-Id": "r-m"})
    client = kiln.Client(stub.url)
    with pytest.raises(kiln.KilnError) as info:
        client._request("GET", "/metrics")
    assert type(info.value) is kiln.KilnError
    assert info.value.error_code == "INVALID_RESPONSE"
    assert info.value.status == 200
    assert info.value.request_id == "r-m"
    assert "kiln_up 1" in info.value.message
    assert client._request("GET", "/metrics", raw=True) == b"kiln_up 1\n"


# ---------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    "status,cls,code",
    [
        (400, kiln.BadRequest, "INVALID_PARAMETER_VALUE"),
        (401, kiln.Unauthenticated, "UNAUTHENTICATED"),
        (403, kiln.PermissionDenied, "PERMISSION_DENIED"),
        (404, kiln.NotFound, "RESOURCE_DOES_NOT_EXIST"),
        (409, kiln.Conflict, "RESOURCE_ALREADY_EXISTS"),
        (413, kiln.PayloadTooLarge, "PAYLOAD_TOO_LARGE"),
        (429, kiln.RateLimited, "RATE_LIMITED"),
        (500, kiln.ServerError, "INTERNAL_ERROR"),
        (502, kiln.ServerError, "BAD_GATEWAY"),
        (503, kiln.ServerError, "UNAVAILABLE"),
        (504, kiln.ServerError, "TIMEOUT"),
        (405, kiln.KilnError, "METHOD_NOT_ALLOWED"),
        (418, kiln.KilnError, "TEAPOT"),
    ],
)
def test_error_class_by_status(stub, status: int, cls: Type[kiln.KilnError], code: str) -> None:
    stub.reply(
        "POST",
        "/api/v1/fail",
        status,
        {"error_code": code, "message": f"failed with {status}"},
        {"X-Request-Id": f"req-{status}"},
    )
    with pytest.raises(kiln.KilnError) as info:
        kiln.Client(stub.url)._request("POST", "/api/v1/fail", json={"a": 1})
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.error_code == code
    assert err.message == f"failed with {status}"
    assert err.request_id == f"req-{status}"
    assert err.details == {"error_code": code, "message": f"failed with {status}"}
    assert str(err) == f"{code} ({status}): failed with {status} [request id req-{status}]"
    assert err.args[0] == code


def test_str_without_request_id(stub) -> None:
    stub.reply("GET", "/api/v1/models/m", 404, {"error_code": "NOT_FOUND", "message": "no such model"})
    with pytest.raises(kiln.NotFound) as info:
        kiln.Client(stub.url)._request("GET", "/api/v1/models/m")
    assert info.value.request_id is None
    assert str(info.value) == "NOT_FOUND (404): no such model"


def test_str_with_request_id_format() -> None:
    err = kiln.NotFound("NOT_FOUND", "message", 404, "abc")
    assert str(err) == "NOT_FOUND (404): message [request id abc]"
    assert repr(err) == "NotFound(error_code='NOT_FOUND', message='message', status=404, request_id='abc')"


@pytest.mark.parametrize(
    "header,expected",
    [("7", 7.0), ("1.5", 1.5), ("0", 0.0), (None, None), ("soon", None), ("-3", 0.0)],
)
def test_rate_limited_retry_after(stub, header, expected) -> None:
    headers = {"X-Request-Id": "rl"}
    if header is not None:
        headers["Retry-After"] = header
    stub.reply("GET", "/api/v1/busy", 429, {"error_code": "RATE_LIMITED", "message": "slow down"}, headers)
    with pytest.raises(kiln.RateLimited) as info:
        kiln.Client(stub.url)._request("GET", "/api/v1/busy")
    assert info.value.retry_after == expected
    assert info.value.status == 429
    assert info.value.request_id == "rl"


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 120, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(120.0)
    past = email.utils.formatdate(now - 120, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_non_json_error_body(stub) -> None:
    stub.reply("GET", "/api/v1/x", 502, "<html>Bad gateway from proxy</html>", {"Content-Type": "text/html"})
    with pytest.raises(kiln.ServerError) as info:
        kiln.Client(stub.url)._request("GET", "/api/v1/x")
    err = info.value
    assert err.error_code == "HTTP_502"
    assert err.status == 502
    assert err.message == "<html>Bad gateway from proxy</html>"
    assert err.details == {}
    assert str(err) == "HTTP_502 (502): <html>Bad gateway from proxy</html>"


def test_empty_error_body_uses_reason_phrase(stub) -> None:
    stub.reply("GET", "/api/v1/x", 404, b"")
    with pytest.raises(kiln.NotFound) as info:
        kiln.Client(stub.url)._request("GET", "/api/v1/x")
    assert info.value.error_code == "HTTP_404"
    assert info.value.message == "Not Found"


def test_json_error_without_error_code(stub) -> None:
    stub.reply("GET", "/api/v1/x", 409, {"message": "taken"})
    with pytest.raises(kiln.Conflict) as info:
        kiln.Client(stub.url)._request("GET", "/api/v1/x")
    assert info.value.error_code == "HTTP_409"
    assert info.value.message == "taken"


def test_v2_protocol_error_shape(stub) -> None:
    stub.reply("POST", "/v2/models/m/infer", 400, {"error": "bad tensor shape", "error_code": "INVALID_INPUT"})
    with pytest.raises(kiln.BadRequest) as info:
        kiln.Client(stub.url)._request("POST", "/v2/models/m/infer", json={"inputs": []})
    assert info.value.error_code == "INVALID_INPUT"
    assert info.value.message == "bad tensor shape"


def test_long_non_json_error_is_truncated() -> None:
    err = error_from_response(500, b"x" * 5000, None)
    assert type(err) is kiln.ServerError
    assert err.message == "x" * 500 + "..."


def test_redirect_is_not_followed(stub) -> None:
    stub.reply("GET", "/old", 302, b"", {"Location": stub.url + "/healthz"})
    stub.reply("GET", "/healthz", body={"status": "ok"})
    with pytest.raises(kiln.KilnError) as info:
        kiln.Client(stub.url, token="secret")._request("GET", "/old")
    assert info.value.error_code == "HTTP_302"
    assert info.value.status == 302
    assert [r.target for r in stub.requests] == ["/old"]


def test_errors_survive_pickling() -> None:
    err = kiln.RateLimited("RATE_LIMITED", "slow", 429, "r1", {"error_code": "RATE_LIMITED"}, 3.0)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is kiln.RateLimited
    assert (back.error_code, back.message, back.status, back.request_id, back.retry_after) == (
        "RATE_LIMITED",
        "slow",
        429,
        "r1",
        3.0,
    )
    assert back.details == {"error_code": "RATE_LIMITED"}
    assert str(back) == str(err)
    conn = pickle.loads(pickle.dumps(kiln.ConnectionFailed("refused")))
    assert type(conn) is kiln.ConnectionFailed
    assert conn.error_code == "CONNECTION_FAILED"


# ------------------------------------------------------- network failures


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port that is bound but not listening: connecting is refused, no race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_connection_refused(refusing_port: int) -> None:
    client = kiln.Client(f"http://127.0.0.1:{refusing_port}", timeout=5)
    with pytest.raises(kiln.ConnectionFailed) as info:
        client.health()
    err = info.value
    assert isinstance(err, kiln.KilnError)
    assert err.error_code == "CONNECTION_FAILED"
    assert err.status is None
    assert err.request_id is None
    assert f"127.0.0.1:{refusing_port}" in err.message
    assert "refused" in err.message.lower()
    assert str(err).startswith("CONNECTION_FAILED: cannot reach http://127.0.0.1:")


def test_timeout_is_connection_failed(stub) -> None:
    stub.reply("GET", "/healthz", body={"status": "ok"})
    stub.delay_s = 1.5
    start = time.monotonic()
    with pytest.raises(kiln.ConnectionFailed) as info:
        kiln.Client(stub.url, timeout=0.2).health()
    assert time.monotonic() - start < 1.2
    assert info.value.error_code == "CONNECTION_FAILED"
    assert "timed out" in info.value.message


def test_server_hangs_up_is_connection_failed(stub) -> None:
    stub.hang_up = True
    with pytest.raises(kiln.ConnectionFailed) as info:
        kiln.Client(stub.url).health()
    assert info.value.error_code == "CONNECTION_FAILED"
    assert info.value.status is None
    assert len(stub.requests) == 1


def test_unresolvable_host_is_connection_failed() -> None:
    with pytest.raises(kiln.ConnectionFailed) as info:
        kiln.Client("http://kiln-host.invalid:8080", timeout=5).health()
    assert info.value.error_code == "CONNECTION_FAILED"

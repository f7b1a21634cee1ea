"""Graceful shutdown: requests in flight when SIGTERM arrives finish with
correct answers, new connections are refused while draining, the process
exits 0 and says so in its log; SIGINT likewise; the grace period bounds the
wait; idle keep-alive connections do not hold the process up."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from kiln_harness import scaled, wait_for

N_SLOW = 4
CHUNKS = 16


def in_flight(c) -> float:
    r = c.get("/metrics")
    assert r.status_code == 200
    for fam in text_string_to_metric_families(r.text):
        if fam.name == "kiln_http_requests_in_flight":
            return fam.samples[0].value
    raise AssertionError("no kiln_http_requests_in_flight in /metrics")


def refused(host: str, port: int) -> bool:
    try:
        s = socket.create_connection((host, port), timeout=1)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


class SlowEcho(threading.Thread):
    """POSTs a JSON document to /api/v1/echo in chunks: the first at once, the
    rest only after `go` is set, so the request is in flight meanwhile."""

    def __init__(self, srv, doc, go: threading.Event, delay_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.client = srv.client()
        self.doc = doc
        self.body = json.dumps(doc).encode()
        self.go = go
        self.delay_s = delay_s
        self.first_sent = threading.Event()
        self.result = None  # (status, parsed body, body length) or the exception

    def chunks(self):
        step = -(-len(self.body) // CHUNKS)
        parts = [self.body[i:i + step] for i in range(0, len(self.body), step)]
        yield parts[0]
        self.first_sent.set()
        self.go.wait(scaled(30.0))
        for p in parts[1:]:
            time.sleep(self.delay_s)
            yield p

    def run(self) -> None:
        try:
            r = self.client.post("/api/v1/echo", data=self.chunks(),
                                 headers={"Content-Type": "application/json"}, timeout=scaled(30.0))
            self.result = (r.status_code, r.json(), len(r.content))
        except Exception as e:  # the test inspects it
            self.result = e


def test_sigterm_drains_in_flight_requests(make_server):
    srv = make_server()
    probe = srv.client()
    go = threading.Event()
    docs = [{"worker": i, "payload": [f"{i}-{k}-" + "x" * 200 for k in range(1000)]}
            for i in range(N_SLOW)]
    workers = [SlowEcho(srv, d, go) for d in docs]
    try:
        for w in workers:
            w.start()
        for w in workers:
            assert w.first_sent.wait(scaled(10.0)), "a worker never started sending"
        # every slow request is being handled (the scrape itself is one more)
        wait_for(lambda: in_flight(probe) == N_SLOW + 1, scaled(5.0),
                 what=f"{N_SLOW} requests in flight")
        probe.close()

        srv.send_signal(signal.SIGTERM)
        host, port = "127.0.0.1", srv.port
        wait_for(lambda: refused(host, port), scaled(5.0), what="new connections to be refused")
        assert srv.running(), "the server exited with requests still in flight"
    finally:
        go.set()
    for w in workers:
        w.join(scaled(30.0))
        assert not w.is_alive(), "an in-flight request never completed"
    for w in workers:
        assert not isinstance(w.result, Exception), f"in-flight request failed: {w.result!r}"
        status, body, _ = w.result
        assert status == 200
        assert body == w.doc
    assert srv.wait(scaled(5.0)) == 0
    assert refused(host, port)
    events = [rec.get("event") for rec in srv.log_records()]
    assert "server.stopping" in events
    assert events[-1] == "server.stopped", events[-5:]
    assert "http.shutdown" not in events, "requests were cut off instead of drained"
    # each drained request was logged as answered
    echoes = [rec for rec in srv.log_records()
              if rec.get("event") == "http.access" and rec.get("route") == "/api/v1/echo"]
    assert sorted(rec["status"] for rec in echoes) == [200] * N_SLOW
    assert sorted(rec["bytes"] for rec in echoes) == sorted(w.result[2] for w in workers)


def test_sigint_exits_0(make_server):
    srv = make_server()
    c = srv.client()
    assert c.get("/healthz").status_code == 200
    c.close()
    t0 = time.monotonic()
    assert srv.stop(signal.SIGINT, timeout=scaled(5.0)) == 0
    assert time.monotonic() - t0 < scaled(3.0)
    events = [rec.get("event") for rec in srv.log_records()]
    assert "server.stopping" in events and events[-1] == "server.stopped"
    stopping = next(rec for rec in srv.log_records() if rec.get("event") == "server.stopping")
    assert f"signal {int(signal.SIGINT)}" in stopping.get("msg", "")


def test_idle_keepalive_connections_do_not_delay_shutdown(make_server):
    srv = make_server()
    clients = [srv.client() for _ in range(3)]
    for c in clients:
        assert c.get("/api/v1/server-info").status_code == 200  # connection stays open, idle
    t0 = time.monotonic()
    assert srv.stop(signal.SIGTERM, timeout=scaled(5.0)) == 0
    assert time.monotonic() - t0 < scaled(2.0), "shutdown waited on idle connections"
    assert "http.shutdown" not in [rec.get("event") for rec in srv.log_records()]


def test_grace_period_bounds_the_wait(make_server):
    grace_ms = 400
    srv = make_server(["--shutdown-grace-ms", str(grace_ms)])
    probe = srv.client()
    go = threading.Event()
    stuck = SlowEcho(srv, {"stuck": True}, go)
    stuck.start()
    try:
        assert stuck.first_sent.wait(scaled(10.0))
        wait_for(lambda: in_flight(probe) == 2, scaled(5.0), what="the stuck request in flight")
        probe.close()
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(scaled(10.0))
        took = time.monotonic() - t0
    finally:
        go.set()
    assert rc == 0
    assert grace_ms / 1000 * 0.9 <= took < grace_ms / 1000 + scaled(3.0), took
    stuck.join(scaled(10.0))
    assert isinstance(stuck.result, Exception), f"the stuck request got an answer: {stuck.result!r}"
    warn = [rec for rec in srv.log_records() if rec.get("event") == "http.shutdown"]
    assert len(warn) == 1 and warn[0]["level"] == "warn"
    assert "1 requests still in flight" in warn[0]["msg"]
    assert srv.log_records()[-1]["event"] == "server.stopped"

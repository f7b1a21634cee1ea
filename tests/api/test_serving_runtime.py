"""The serving runtime's behaviour under load, against real servers: many
concurrent requests answered correctly in one batch (the batch-size histogram
and each answer's X-Kiln-Batch-Rows prove it), deadlines (504), a full queue
(503 + Retry-After), priorities, a worker killed mid-request (its request
fails cleanly, the next ones succeed), a model that keeps crashing marked
DEGRADED, and memory-budget eviction with reload."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import serving_models as sm
from kiln_harness import scaled, unique_name, wait_for
from test_serving import infer, upload, v2_decode, v2_json


def metric(c, name, **labels):
    """Sum of the samples called `name` whose labels include `labels`."""
    text = c.get("/metrics").text
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def loaded(c, name):
    for m in c.get("/api/v1/serving/models").json()["models"]:
        if m["name"] == name:
            return m
    return None


@pytest.fixture
def srv(make_server):
    return make_server(args=["--python-workers", "1", "--worker-timeout-ms", "20000"])


def test_concurrent_requests_are_answered_in_one_batch(srv):
    c = srv.admin_client()
    data, ref = sm.onnx_mlp()
    name = unique_name("batch")
    upload(c, name, data)
    # a batch that is not full waits up to 2 s for company: 16 requests sent at once all make it
    r = c.post(f"/api/v1/models/{name}/versions/1/load", json={"max_batch_size": 16, "max_queue_delay_us": 2000000})
    assert r.status_code == 200, r.text
    before = metric(c, "kiln_serve_batch_size_count", model=name)
    X = [sm.RNG.normal(size=(1, 4)).astype(np.float32) for _ in range(16)]
    barrier = threading.Barrier(16)

    def one(i):
        cl = srv.admin_client()
        barrier.wait()
        r = infer(cl, name, v2_json("x", X[i]))
        return r.headers["X-Kiln-Batch-Rows"], v2_decode(r)[1]["y"]

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(16)))
    for i, (rows, y) in enumerate(results):
        assert rows == "16"  # every answer came out of the one 16-row batch
        assert sm.close(y, ref(X[i]))  # ... and got its own row back
    assert metric(c, "kiln_serve_batch_size_count", model=name) == before + 1
    assert metric(c, "kiln_serve_batch_size_sum", model=name) >= 16
    assert metric(c, "kiln_serve_batch_size_bucket", model=name, le="8.0") == 0


def slow_model(c):
    name = unique_name("slow")
    upload(c, name, sm.torchscript_slow())
    r = c.post(f"/api/v1/models/{name}/versions/1/load", json={"max_batch_size": 1, "queue_capacity": 2})
    assert r.status_code == 200, r.text
    return name


def slow_request(c, name, rounds, expect=200, **params):
    """expect=None: any status."""
    X = np.array([[rounds, 1, 2, 3]], dtype=np.float32)
    body = v2_json("input", X)
    if params:
        body["parameters"] = params
    return infer(c, name, body, expect=expect)


def rounds_for(c, name, seconds):
    """How many rounds of the slow model take about `seconds` here."""
    t = time.monotonic()
    slow_request(c, name, 200)
    per = max((time.monotonic() - t) / 200, 1e-5)
    return int(seconds / per) + 1


def test_deadline_and_overflow(srv):
    c = srv.admin_client()
    name = slow_model(c)  # one executor, batches of one, room for 2 waiting
    n = rounds_for(c, name, scaled(3))
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        busy = ex.submit(slow_request, srv.admin_client(), name, n)  # holds the one executor
        wait_for(lambda: loaded(c, name)["running"] == 1, timeout=scaled(5))
        # waits with a 100 ms deadline: it passes while the executor is busy
        late = ex.submit(slow_request, srv.admin_client(), name, 1, 504, timeout=100000)
        wait_for(lambda: loaded(c, name)["queue_depth"] == 1, timeout=scaled(5))
        q1 = ex.submit(slow_request, srv.admin_client(), name, 1)
        wait_for(lambda: loaded(c, name)["queue_depth"] == 2, timeout=scaled(5))
        # the queue is full: refused at once with 503 + Retry-After
        r = slow_request(c, name, 1, expect=503)
        assert r.headers["Retry-After"] == "1" and "full" in r.json()["message"]
        assert busy.result(timeout=scaled(60)).status_code == 200
        r = late.result(timeout=scaled(60))
        assert r.json()["error_code"] == "DEADLINE_EXCEEDED" and "deadline" in r.json()["message"]
        assert q1.result(timeout=scaled(60)).status_code == 200
    assert metric(c, "kiln_serve_requests_total", model=name, code="DEADLINE_EXCEEDED") == 1
    assert metric(c, "kiln_serve_requests_total", model=name, code="TEMPORARILY_UNAVAILABLE") == 1


def worker_pids(c, name):
    """The live workers' pids (a worker being restarted shows pid 0: never
    hand that to os.kill, which would signal this process group)."""
    info = loaded(c, name)["backend_info"]
    return [w["pid"] for w in info["workers"] if w["pid"] > 0]


def live_worker(c, name):
    wait_for(lambda: worker_pids(c, name), timeout=scaled(20))
    pid = worker_pids(c, name)[0]
    assert pid > 1
    return pid


def test_a_worker_killed_mid_request_is_replaced(srv):
    c = srv.admin_client()
    name = slow_model(c)
    n = rounds_for(c, name, scaled(3))
    pid = live_worker(c, name)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        pending = ex.submit(slow_request, srv.admin_client(), name, n, 503)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        r = pending.result(timeout=scaled(30))
    msg = r.json()["message"]
    assert "worker" in msg and ("signal" in msg or "exited" in msg), msg
    # the next requests are answered by a new worker
    X = np.array([[1, 1, 2, 3]], dtype=np.float32)
    doc, out = v2_decode(infer(c, name, v2_json("input", X)))
    assert sm.close(next(iter(out.values())), X * 2)
    assert live_worker(c, name) != pid
    assert metric(c, "kiln_serve_worker_restarts_total", model=name) >= 1
    # reaped: no zombie left behind by the killed worker
    def gone():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return True
    wait_for(gone, timeout=scaled(10))


def test_a_model_that_keeps_crashing_is_degraded(srv):
    c = srv.admin_client()
    name = slow_model(c)
    for _ in range(3):
        slow_request(c, name, 1)  # a crashed worker is started again by the next request
        pid = live_worker(c, name)
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            pending = ex.submit(slow_request, srv.admin_client(), name, rounds_for(c, name, scaled(2)), None)
            time.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
            pending.result(timeout=scaled(30))
        if loaded(c, name)["state"] == "DEGRADED":
            break
    m = loaded(c, name)
    assert m["state"] == "DEGRADED" and m["reason"], m
    r = slow_request(c, name, 1, expect=503)
    assert "degraded" in r.json()["message"]
    # an explicit load starts it afresh
    assert c.post(f"/api/v1/models/{name}/versions/1/unload").status_code == 200
    assert slow_request(c, name, 1).status_code == 200


def test_memory_budget_evicts_the_least_recently_used_and_reloads(make_server):
    srv = make_server(args=["--serve-memory", "1k"])
    c = srv.admin_client()
    names = []
    for i in range(2):
        data, ref = sm.onnx_mlp()
        names.append(unique_name(f"ev{i}"))
        upload(c, names[-1], data)
    X = np.ones((1, 4), dtype=np.float32)
    v2_decode(infer(c, names[0], v2_json("x", X)))
    assert loaded(c, names[0])["state"] == "READY"
    v2_decode(infer(c, names[1], v2_json("x", X)))
    # the budget holds one model: the idle first one went
    wait_for(lambda: loaded(c, names[0]) is None, timeout=scaled(10))
    assert loaded(c, names[1])["state"] == "READY"
    assert metric(c, "kiln_serve_evictions_total") >= 1
    assert metric(c, "kiln_serve_cache_misses_total") == 2
    # asking for it again loads it again, and the answer is still right
    doc, out = v2_decode(infer(c, names[0], v2_json("x", X)))
    assert sm.close(out["y"], ref(X))
    assert metric(c, "kiln_serve_cache_misses_total") == 3
    wait_for(lambda: loaded(c, names[1]) is None, timeout=scaled(10))


def test_shutdown_answers_parked_requests(make_server):
    srv = make_server()
    c = srv.admin_client()
    name = slow_model(c)
    n = rounds_for(c, name, scaled(1))
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        pending = ex.submit(slow_request, srv.admin_client(), name, n, None)
        wait_for(lambda: loaded(c, name)["running"] == 1, timeout=scaled(5))
        srv.send_signal(signal.SIGTERM)
        r = pending.result(timeout=scaled(30))
    # the parked request finished within the grace period and was answered
    assert r.status_code == 200, r.text
    assert sm.close(next(iter(v2_decode(r)[1].values())), np.array([[n, 1, 2, 3]], dtype=np.float32) * 2)
    assert srv.wait(timeout=scaled(30)) == 0

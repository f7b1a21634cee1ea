"""/metrics: Prometheus text exposition parsed by the reference parser; request
counters and histograms counted exactly on a fresh server, labels by route
pattern, build info and process metrics."""

from __future__ import annotations

import math
import re
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kiln_harness import kiln_version, scaled, wait_for


def scrape(c):
    r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "version=0.0.4" in r.headers["Content-Type"]
    return r.text


def in_flight(text):
    for fam in text_string_to_metric_families(text):
        if fam.name == "kiln_http_requests_in_flight":
            return fam.samples[0].value
    raise AssertionError("no kiln_http_requests_in_flight")


def quiet_scrape(c):
    """A scrape taken when nothing but itself was in flight, so every earlier
    request's bookkeeping (counters, histogram) is done: a reply reaches the
    client a moment before the server records it."""
    return wait_for(lambda: (lambda t: t if in_flight(t) == 1 else None)(scrape(c)), scaled(3.0),
                    what="a quiet server (in-flight gauge at 1)")


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text, name):
    """{frozenset(labels.items()): value} of one sample name."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                key = frozenset(s.labels.items())
                assert key not in out, f"duplicate series {name}{dict(s.labels)}"
                out[key] = s.value
    return out


def requests_total(text):
    """{(method, route, status): count}"""
    out = {}
    for labels, v in samples(text, "kiln_http_requests_total").items():
        d = dict(labels)
        assert set(d) == {"method", "route", "status"}, d
        out[(d["method"], d["route"], d["status"])] = v
    return out


def delta(before, after):
    keys = set(before) | set(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)}


@pytest.fixture
def fresh(make_server):
    srv = make_server()
    return srv, srv.client()


def test_request_counters_are_exact(fresh):
    srv, c = fresh
    before = requests_total(quiet_scrape(c))
    for _ in range(7):
        assert c.get("/healthz").status_code == 200
    for p in ("/api/v1/no/such/1", "/api/v1/no/such/2", "/api/v1/no/such/3"):
        assert c.get(p).status_code == 404
    for i in range(2):
        assert c.post("/api/v1/echo", json={"i": i}).json() == {"i": i}
    assert c.post("/api/v1/echo", data=b"{oops").status_code == 400
    assert c.post("/healthz").status_code == 405

    expected = {
        ("GET", "/healthz", "200"): 7,
        ("GET", "unmatched", "404"): 3,
        ("POST", "/api/v1/echo", "200"): 2,
        ("POST", "/api/v1/echo", "400"): 1,
        ("POST", "unmatched", "405"): 1,
        ("GET", "/metrics", "200"): 1,  # the first scrape, counted once answered
    }

    def settled():
        d = delta(before, requests_total(quiet_scrape(c)))
        # later scrapes count themselves; leave them out of the comparison
        d.pop(("GET", "/metrics", "200"), None)
        want = {k: v for k, v in expected.items() if k != ("GET", "/metrics", "200")}
        return d if d == want else None

    wait_for(settled, scaled(3.0), what="the request counters to settle")
    after = requests_total(quiet_scrape(c))
    d = delta(before, after)
    assert d.pop(("GET", "/metrics", "200")) >= 2  # the settle scrape(s) and the first
    assert d == {k: v for k, v in expected.items() if k != ("GET", "/metrics", "200")}


def test_route_label_is_the_pattern_never_the_raw_path(fresh):
    srv, c = fresh
    for p in ("/api/v1/no/such/1", "/api/v1/no/such/2", "/api/v1/models/x%2Fy/versions?a=b"):
        assert c.get(p).status_code == 404
    assert c.get("/some/dashboard/page").status_code == 200
    assert c.get("/assets/nope-123.js").status_code == 404

    def seen():
        t = quiet_scrape(c)
        tot = requests_total(t)
        return t if (tot.get(("GET", "unmatched", "404")), tot.get(("GET", "static", "200")),
                     tot.get(("GET", "static", "404"))) == (3, 1, 1) else None

    text = wait_for(seen, scaled(3.0), what="the 404s to be counted")
    totals = requests_total(text)
    assert totals[("GET", "unmatched", "404")] == 3
    assert totals[("GET", "static", "200")] == 1
    assert totals[("GET", "static", "404")] == 1
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            for k, v in s.labels.items():
                for raw in ("no/such", "/models/", "dashboard", "nope-123", "?a="):
                    assert raw not in v, f"{s.name} label {k}={v!r} holds a raw path"
    routes = {k[1] for k in totals}
    patterns = {"unmatched", "static"} | {t for (_, t) in srv.spec().ops}
    assert routes <= patterns, routes - patterns


def test_duration_histogram_matches_the_counter(fresh):
    srv, c = fresh
    for _ in range(5):
        c.get("/api/v1/server-info")
    for _ in range(3):
        c.post("/api/v1/echo", json=[1, 2, 3])
    c.post("/api/v1/echo", data=b"")

    def settled():
        t = quiet_scrape(c)
        tot = requests_total(t)
        cnt = samples(t, "kiln_http_request_duration_seconds_count")
        ok = tot.get(("GET", "/api/v1/server-info", "200")) == 5 and \
            tot.get(("POST", "/api/v1/echo", "400")) == 1 and \
            cnt.get(frozenset({"method": "GET", "route": "/api/v1/server-info"}.items())) == 5 and \
            cnt.get(frozenset({"method": "POST", "route": "/api/v1/echo"}.items())) == 4
        return t if ok else None

    text = wait_for(settled, scaled(3.0), what="the counters")
    fams = families(text)
    hist = fams["kiln_http_request_duration_seconds"]
    assert hist.type == "histogram"
    counts = samples(text, "kiln_http_request_duration_seconds_count")
    sums = samples(text, "kiln_http_request_duration_seconds_sum")
    buckets = {}
    for labels, v in samples(text, "kiln_http_request_duration_seconds_bucket").items():
        d = dict(labels)
        le = d.pop("le")
        buckets.setdefault(frozenset(d.items()), []).append((math.inf if le == "+Inf" else float(le), v))
    totals = requests_total(text)
    by_route = {}
    for (m, route, _), v in totals.items():
        by_route[(m, route)] = by_route.get((m, route), 0) + v
    checked = 0
    for key, count in counts.items():
        d = dict(key)
        assert set(d) == {"method", "route"}
        mr = (d["method"], d["route"])
        if mr == ("GET", "/metrics"):
            continue  # this scrape is being observed while it renders
        assert count == by_route[mr], f"{mr}: histogram count {count} vs counter {by_route[mr]}"
        bs = sorted(buckets[key])
        assert bs[-1][0] == math.inf, "no +Inf bucket"
        assert bs[-1][1] == count, f"{mr}: +Inf bucket {bs[-1][1]} != count {count}"
        values = [v for _, v in bs]
        assert values == sorted(values), f"{mr}: buckets not cumulative {bs}"
        assert len({le for le, _ in bs}) == len(bs)
        assert 0 <= sums[key] < count * scaled(5.0)
        checked += 1
    assert by_route[("GET", "/api/v1/server-info")] == 5
    assert by_route[("POST", "/api/v1/echo")] == 4
    assert checked >= 3


def test_in_flight_gauge_counts_the_scrape_itself(fresh):
    _, c = fresh

    def gauge():
        fam = families(scrape(c))["kiln_http_requests_in_flight"]
        assert fam.type == "gauge"
        assert len(fam.samples) == 1 and fam.samples[0].value >= 1
        return fam.samples[0].value

    # a request answered just before may finish its bookkeeping a moment
    # later; on a quiet server the gauge settles at 1: the scrape itself
    wait_for(lambda: gauge() == 1, scaled(3.0), what="the in-flight gauge to settle at 1")


def test_build_info(fresh):
    version, commit = kiln_version()
    _, c = fresh
    info = samples(scrape(c), "kiln_build_info")
    assert len(info) == 1
    (labels, value), = info.items()
    assert value == 1
    assert dict(labels) == {"version": version, "commit": commit}


def test_process_metrics_are_plausible(make_server):
    t0 = time.time()
    srv = make_server()
    c = srv.client()
    text = scrape(c)
    fams = families(text)
    rss = samples(text, "process_resident_memory_bytes")[frozenset()]
    assert 1e6 < rss < 1e9, rss
    fds = samples(text, "process_open_fds")[frozenset()]
    assert fds > 3
    start = samples(text, "process_start_time_seconds")[frozenset()]
    assert t0 - 60 <= start <= time.time() + 1, (t0, start)
    assert abs(start - srv.started_wall_s) < 60
    cpu = samples(text, "process_cpu_seconds_total")[frozenset()]
    assert cpu >= 0
    assert fams["process_cpu_seconds"].type == "counter"  # the parser drops _total
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
        assert fams[name].type == "gauge", name

    # CPU time never goes backwards, and work makes it move
    for _ in range(200):
        c.post("/api/v1/echo", json={"k": list(range(200))})
    cpu2 = samples(scrape(c), "process_cpu_seconds_total")[frozenset()]
    assert cpu2 >= cpu


def test_every_family_has_help_and_type(client):
    text = scrape(client)
    helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    assert helps == set(types), helps ^ set(types)
    assert set(types.values()) <= {"counter", "gauge", "histogram", "summary", "untyped"}
    for name in ("kiln_http_requests_total", "kiln_http_request_duration_seconds", "kiln_build_info",
                 "process_cpu_seconds_total"):
        assert name in types, name
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$", line), line


def test_head_metrics(client):
    r = client.head("/metrics")
    assert r.status_code == 200
    assert r.content == b""


def test_method_label_is_bounded(fresh):
    """The method label must not take whatever a client sends: each made-up
    method would otherwise add a counter and a whole histogram (unbounded
    series, memory and scrape size at an attacker's choice)."""
    _, c = fresh
    made_up = [f"ZZMETHOD{i}" for i in range(12)]
    for m in made_up:
        assert c.request(m, "/api/v1/no-such").status_code in (404, 405, 501)
    assert c.request("ZZMETHODX", "/healthz").status_code in (405, 501)

    def counted():
        t = quiet_scrape(c)
        n = sum(v for (m, route, status), v in requests_total(t).items()
                if m not in ("GET", "HEAD") and route == "unmatched")
        return t if n >= len(made_up) + 1 else None

    text = wait_for(counted, scaled(3.0), what="the made-up methods to be counted")
    methods = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if "method" in s.labels:
                methods.add(s.labels["method"])
    leaked = {m for m in methods if "ZZMETHOD" in m}
    assert not leaked, f"raw client methods became label values: {sorted(leaked)}"
    assert len(methods) <= 10, methods

"""bench/serving's report: reads the lines run.sh collected (`case ...` wrk
measurements, `probe ...` Server-Timing figures, `raw ...` the in-process
limit), prints the tables and the verdicts on the issue's bars, writes the
JSON. Exit status 3 when a bar is missed (run.sh turns it into 0 unless
BENCH_STRICT=1).

usage: report.py RESULTS OUT_JSON META_JSON"""

import json
import sys
import time

# issue 6's Benchmark section; judged on the XGBoost model, each endpoint
RATIO_BAR = 20.0  # kiln req/s over the peer's, 1 and 32 rows at 64 connections
P99_BAR_US = 5000.0  # kiln p99, 1 row at 64 connections
P50_BAR_US = 100.0  # kiln p50, 1 row at 1 connection
OVERHEAD_BAR_US = 50.0  # median of Server-Timing total - compute, 1 row at 1 connection
BAR_MODEL = "xgb"
ENDPOINT_NAMES = {"predict": "POST /api/v1/models/{name}/versions/latest/predict",
                  "v2": "POST /v2/models/{name}/infer"}
MODEL_NAMES = {"xgb": "XGBoost (JSON)", "rf": "RandomForest (joblib)"}


def us(v):
    if v is None:
        return "-"
    if v < 1000:
        return "%.0f µs" % v
    if v < 1e6:
        return "%.2f ms" % (v / 1e3)
    return "%.2f s" % (v / 1e6)


def main():
    results, out_json, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    cases, probes, raw = {}, {}, {}
    for line in open(results):
        f = line.split()
        if not f:
            continue
        if f[0] == "case":
            server, model, ep, rows, c = f[1], f[2], f[3], int(f[4]), int(f[5])
            cases[(server, model, ep, rows, c)] = {
                "req_per_s": float(f[6]), "p50_us": float(f[7]), "p99_us": float(f[8]),
                "errors": int(f[9]), "requests": int(f[10]), "cpu_us_per_request": float(f[11]),
                "rows_per_batch": float(f[12]) if len(f) > 12 else 0.0}
        elif f[0] == "probe":
            probes.setdefault((f[1], f[2], f[3], int(f[4])), {})[f[5]] = float(f[6])
        elif f[0] == "raw":
            try:
                raw[f[1]] = float(f[2])
            except ValueError:
                raw[f[1]] = f[2]

    keys = sorted({k[1:] for k in cases}, key=lambda k: (k[0] != "xgb", k[1] != "predict", k[2], k[3]))
    print()
    print("bench/serving: kiln %s against %s on %d CPUs shared by both servers and wrk (nothing pinned); %s per"
          " case after a %s warm-up; load average %s at start, %s at end"
          % (meta["kiln_bin"], meta["peer"], meta["cpus"], meta["duration"], meta["warmup"], meta["load_start"],
             meta["load_end"]))
    print()
    print("| model | endpoint | rows | c | kiln req/s | peer req/s | kiln/peer | kiln p50 | kiln p99 | peer p50 |"
          " peer p99 | kiln CPU/req | peer CPU/req | kiln/peer by CPU | kiln rows/batch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    table = []
    for model, ep, rows, c in keys:
        k, p = cases.get(("kiln", model, ep, rows, c)), cases.get(("peer", model, ep, rows, c))
        if not k or not p:
            continue
        ratio = k["req_per_s"] / p["req_per_s"] if p["req_per_s"] > 0 else 0.0
        # the peer's server CPU per request over kiln's: the req/s ratio each
        # would reach with cores of its own, wrk's share left out
        cpu_ratio = p["cpu_us_per_request"] / k["cpu_us_per_request"] if k["cpu_us_per_request"] > 0 else 0.0
        errs = "" if not (k["errors"] or p["errors"]) else " (errors: kiln %d, peer %d)" % (k["errors"], p["errors"])
        print("| %s | %s | %d | %d | %.0f | %.0f | %.1fx%s | %s | %s | %s | %s | %.1f µs | %.1f µs | %.1fx | %s |"
              % (model, ep, rows, c, k["req_per_s"], p["req_per_s"], ratio, errs, us(k["p50_us"]), us(k["p99_us"]),
                 us(p["p50_us"]), us(p["p99_us"]), k["cpu_us_per_request"], p["cpu_us_per_request"], cpu_ratio,
                 "%.1f" % k["rows_per_batch"] if k["rows_per_batch"] > 0 else "-"))
        table.append({"model": model, "endpoint": ENDPOINT_NAMES[ep], "rows": rows, "connections": c,
                      "threads": min(c, 2), "kiln": k, "peer": p, "ratio": ratio, "cpu_ratio": cpu_ratio})

    if probes:
        print()
        print("One connection, %d requests each (bench/serving/stclient.c); kiln's server-side figures from its"
              " Server-Timing header:" % meta["probe_calls"])
        print()
        print("| endpoint | rows | kiln client p50 | kiln client p99 | peer client p50 | kiln queue p50 |"
              " kiln compute p50 | kiln total p50 | total - compute p50 | total - compute p99 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (server, model, ep, rows), v in sorted(probes.items(), key=lambda kv: (kv[0][2] != "predict", kv[0][3])):
            if server != "kiln":
                continue
            pv = probes.get(("peer", model, ep, rows), {})
            timed = v.get("timed", 0) > 0
            print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |"
                  % (ep, rows, us(v.get("client_p50_us")), us(v.get("client_p99_us")), us(pv.get("client_p50_us")),
                     us(v.get("queue_p50_us")) if timed else "-", us(v.get("compute_p50_us")) if timed else "-",
                     us(v.get("total_p50_us")) if timed else "-", us(v.get("overhead_p50_us")) if timed else "-",
                     us(v.get("overhead_p99_us")) if timed else "-"))

    if raw:
        print()
        print("The limit: kiln's %s backend called in-process, no HTTP, no queue, then the request path in-process"
              " (bench/serving/raw.c, %d calls per figure, one at a time, servers stopped)%s:"
              % (raw.get("backend", "?"), meta["raw_calls"], "" if raw.get("protocol_path") == "yes" else
                 "; this build has no in-process request path yet"))
        print()
        print("| figure | p50 | p99 |")
        print("|---|---:|---:|")
        for name, label in (("backend_1", "backend predict, 1 row"), ("backend_32", "backend predict, 32 rows"),
                            ("inline_mlflow_1", "MLflow JSON parse + validate + predict + encode, 1 row"),
                            ("inline_mlflow_32", "the same, 32 rows"),
                            ("inline_v2_1", "V2 JSON parse + validate + predict + encode, 1 row"),
                            ("inline_v2_32", "the same, 32 rows"),
                            ("batcher_mlflow_1", "MLflow JSON, predict through the batcher (the whole path but HTTP), 1 row"),
                            ("batcher_mlflow_32", "the same, 32 rows"),
                            ("batcher_v2_1", "V2 JSON, predict through the batcher, 1 row"),
                            ("batcher_v2_32", "the same, 32 rows")):
            if name + "_p50_us" in raw:
                print("| %s | %.1f µs | %.1f µs |" % (label, raw[name + "_p50_us"], raw[name + "_p99_us"]))

    # ---- the bars ----
    bars = []

    def bar(name, value, threshold, op, text, measured=True, extra="", errors=0):
        # an error answer in the measured case is a miss whatever the figure
        ok = measured and errors == 0 and (value >= threshold if op == ">=" else value <= threshold if op == "<="
                                           else value < threshold)
        bars.append({"bar": name, "value": value if measured else None, "threshold": threshold, "op": op,
                     "errors": errors, "pass": ok, "measured": measured})
        verdict = "PASS" if ok else ("not measured" if not measured else "MISS")
        bar_txt = ("%gx" % threshold) if "req/s" in name else us(threshold)
        print("%s: %s (bar: %s %s)%s %s" % (name, text if measured else "-", op, bar_txt, extra, verdict))

    def cpu_x(k, p):
        return p["cpu_us_per_request"] / k["cpu_us_per_request"] if k["cpu_us_per_request"] > 0 else 0.0

    print()
    for ep in ("predict", "v2"):
        k1, p1 = cases.get(("kiln", BAR_MODEL, ep, 1, 64)), cases.get(("peer", BAR_MODEL, ep, 1, 64))
        if k1 or p1:
            ok = bool(k1 and p1)
            r = k1["req_per_s"] / p1["req_per_s"] if ok and p1["req_per_s"] > 0 else 0.0
            errors = (k1["errors"] if k1 else 0) + (p1["errors"] if p1 else 0)
            bar("%s 1-row %s c=64 kiln/peer req/s" % (BAR_MODEL, ep), round(r, 2), RATIO_BAR, ">=",
                "%.1fx (%.0f vs %.0f req/s; by CPU per request %.1fx)"
                % (r, k1["req_per_s"], p1["req_per_s"], cpu_x(k1, p1)) if ok else "", ok,
                "" if errors == 0 else " [%d errors: counts as a miss]" % errors, errors)
            if k1:
                bar("%s 1-row %s c=64 kiln p99" % (BAR_MODEL, ep), k1["p99_us"], P99_BAR_US, "<=", us(k1["p99_us"]),
                    errors=k1["errors"])
        k = cases.get(("kiln", BAR_MODEL, ep, 1, 1))
        if k:
            pv = probes.get(("kiln", BAR_MODEL, ep, 1), {})
            bar("%s 1-row %s c=1 kiln p50" % (BAR_MODEL, ep), k["p50_us"], P50_BAR_US, "<=", us(k["p50_us"]),
                extra=" [probe's client p50: %s]" % us(pv.get("client_p50_us")) if pv else "", errors=k["errors"])
        k32, p32 = cases.get(("kiln", BAR_MODEL, ep, 32, 64)), cases.get(("peer", BAR_MODEL, ep, 32, 64))
        if k32 and p32:
            r = k32["req_per_s"] / p32["req_per_s"] if p32["req_per_s"] > 0 else 0.0
            errors = k32["errors"] + p32["errors"]
            bar("%s 32-row %s c=64 kiln/peer req/s" % (BAR_MODEL, ep), round(r, 2), RATIO_BAR, ">=",
                "%.1fx (%.0f vs %.0f req/s; by CPU per request %.1fx)"
                % (r, k32["req_per_s"], p32["req_per_s"], cpu_x(k32, p32)), True,
                "" if errors == 0 else " [%d errors: counts as a miss]" % errors, errors)
        pv = probes.get(("kiln", BAR_MODEL, ep, 1))
        if pv is not None:
            timed = pv.get("timed", 0) > 0
            over = pv.get("overhead_p50_us", 0.0)
            extra = ""
            if timed and "backend_1_p50_us" in raw:
                extra = " [kiln's total p50 over the raw backend call's p50: %s]" % us(
                    pv["total_p50_us"] - raw["backend_1_p50_us"])
            bar("%s 1-row %s server overhead (median of total - compute)" % (BAR_MODEL, ep), over,
                OVERHEAD_BAR_US, "<", us(over), timed, extra, int(pv.get("errors", 0)))
    missed = [b["bar"] for b in bars if not b["pass"]]
    print("bars: %s" % ("all met" if bars and not missed else "missed or not measured: " + "; ".join(missed)))

    doc = {
        "bench": "serving",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
        "models": MODEL_NAMES,
        "results": table,
        "probe": [{"server": s, "model": m, "endpoint": ENDPOINT_NAMES[ep], "rows": r, **v}
                  for (s, m, ep, r), v in sorted(probes.items())],
        "raw": raw,
        "bars": bars,
        "bars_missed": missed,
    }
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("bench/serving: wrote %s" % out_json, file=sys.stderr)
    return 3 if missed or not bars else 0


if __name__ == "__main__":
    sys.exit(main())

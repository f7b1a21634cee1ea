"""bench/tracking's report: reads the `name value` lines run.sh collected
(a name given several times is a set of rounds; the median is reported),
prints the table and the verdicts, writes the JSON. Exit status 3 when a bar
is missed (run.sh turns it into 0 unless BENCH_STRICT=1).

usage: report.py RESULTS OUT_JSON META_JSON"""

import json
import statistics
import sys
import time

# MLflow 2.12.2 on this kind of machine (SQLite, 4 gunicorn workers, 2 cores):
# ../shared/mlflow/README.md
MLFLOW = {
    "ingest": 11940.0,  # metrics/s, log-batch 1000 x 100
    "history_ms": 5870.0,  # 100,000-point get-history
    "search_ms": 234.0,  # over only 5,000 runs
    "single_p50_ms": 6.99,
    "single_p99_ms": 11.3,
    "setup_5000_runs_s": 123.5,
    "cpu_us_per_metric": 78.0,
}
BARS = {  # issue 4's Benchmark section
    "ingest_seq": (">=", 500000.0),
    "history_ms": ("<", 50.0),
    "search_ms": ("<", 100.0),
    "single_p50_ms": ("<", 1.0),
}


def main():
    results, out_json, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    rounds = {}
    for line in open(results):
        k, _, v = line.strip().partition(" ")
        if not k:
            continue
        try:
            rounds.setdefault(k, []).append(float(v))
        except ValueError:
            rounds.setdefault(k, []).append(v.strip('"'))
    med = {k: (statistics.median(v) if isinstance(v[0], float) else v[0]) for k, v in rounds.items()}

    def passed(name):
        op, bar = BARS[name]
        return med[name] >= bar if op == ">=" else med[name] < bar

    def ratio(a, b):
        return a / b if b else 0.0

    rows = [
        # figure, kiln, limit, unit, bar key, mlflow
        ("(a) log-batch ingest, 1000 metrics x %d calls, 1 connection" % meta["ingest_calls"],
         med["ingest_seq"], med["limit_ingest_txn_per_call"], "metrics/s", "ingest_seq", MLFLOW["ingest"]),
        ("(a) log-batch ingest, %d connections x 50 calls" % meta["connections"],
         med["ingest_conc"], med["limit_ingest_txn_per_call"], "metrics/s", None, None),
        ("(a) log-batch ingest, one key (the history of (b))", med["ingest_one_key"], None, "metrics/s", None, None),
        ("(b) get-history, one key, %d points" % (meta["ingest_calls"] * meta["metrics_per_call"]),
         med["history_ms"], med["limit_history_ms"], "ms", "history_ms", MLFLOW["history_ms"]),
        ("(c) runs/search over %d runs, filter + order_by, 100 results" % meta["runs"],
         med["search_ms"], med["limit_search_ms"], "ms", "search_ms", MLFLOW["search_ms"]),
        ("(c) setup: %d runs (create + log-batch each, %d connections)" % (meta["runs"], meta["connections"]),
         med["runs_setup_s"], med["limit_runs_setup_s"], "s", None, MLFLOW["setup_5000_runs_s"]),
        ("(d) log-metric p50, %d sequential calls" % meta["latency_calls"],
         med["single_p50_ms"], med["limit_single_p50_ms"], "ms", "single_p50_ms", MLFLOW["single_p50_ms"]),
        ("(d) log-metric p99", med["single_p99_ms"], med["limit_single_p99_ms"], "ms", None, MLFLOW["single_p99_ms"]),
    ]

    def fmt(v, unit):
        if v is None:
            return "-"
        if unit == "metrics/s":
            return "{:,.0f}".format(v)
        if unit == "s":
            return "%.1f s" % v
        return ("%.3f ms" if v < 1 else "%.1f ms") % v

    print()
    print("bench/tracking: kiln %s on %d CPUs, SQLite %s; load average %s at start, %s at end"
          % (meta["kiln_bin"], meta["cpus"], med.get("sqlite_version", "?"), med["load_start"], med["load_end"]))
    print()
    print("| figure | kiln | SQLite limit | kiln vs limit | bar | MLflow 2.12.2 | verdict |")
    print("|---|---:|---:|---:|---|---:|---|")
    table = []
    for name, kv, lim, unit, bar, ml in rows:
        if lim is None:
            vs = "-"
        elif unit == "metrics/s":
            vs = "%.0f%%" % (100 * ratio(kv, lim))
        else:
            vs = "%.1fx" % ratio(kv, lim)
        bar_txt = "-" if not bar else "%s %s" % (BARS[bar][0], fmt(BARS[bar][1], unit))
        ml_txt = "-" if ml is None else fmt(ml, unit) + (" (5,000 runs)" if "setup" in name or "search" in name else "")
        verdict = "" if not bar else ("PASS" if passed(bar) else "MISS")
        print("| %s | %s | %s | %s | %s | %s | %s |" % (name, fmt(kv, unit), fmt(lim, unit), vs, bar_txt, ml_txt, verdict))
        table.append({"figure": name, "kiln": kv, "limit": lim, "unit": unit, "mlflow": ml,
                      "bar": None if not bar else {"op": BARS[bar][0], "value": BARS[bar][1], "pass": passed(bar)}})
    print()
    print("server CPU per ingested metric (1 connection): %.2f µs (MLflow: about %.0f µs)"
          % (med["ingest_cpu_us_per_metric"], MLFLOW["cpu_us_per_metric"]))
    print("SQLite limit for (a) is the chunk layout kiln writes, committing once per call as 100 durable calls must;"
          " in one transaction for every point it did %s metrics/s"
          % fmt(med["limit_ingest_one_txn"], "metrics/s"))
    print("the same points as a row each (MLflow's layout, and kiln's before migration 0008): %s metrics/s in one"
          " transaction, %s committing per call"
          % (fmt(med["limit_rows_ingest_one_txn"], "metrics/s"), fmt(med["limit_rows_ingest_txn_per_call"], "metrics/s")))
    print("kiln vs MLflow: ingest %.0fx, history %.0fx, log-metric p50 %.0fx"
          % (ratio(med["ingest_seq"], MLFLOW["ingest"]), ratio(MLFLOW["history_ms"], med["history_ms"]),
             ratio(MLFLOW["single_p50_ms"], med["single_p50_ms"])))
    missed = [b for b in BARS if not passed(b)]
    print("bars: %s" % ("all met" if not missed else "missed: " + ", ".join(missed)))

    doc = {
        "bench": "tracking",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
        "statistic": "median over rounds",
        "medians": med,
        "rounds": {k: v for k, v in rounds.items()},
        "table": table,
        "mlflow": MLFLOW,
        "bars_missed": missed,
    }
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("bench/tracking: wrote %s" % out_json, file=sys.stderr)
    return 3 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

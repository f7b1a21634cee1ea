"""bench/serving's answer check: a server's answer (MLflow {"predictions"}
or KServe V2 {"outputs"}) holds the predictions the framework itself
computed (train.py's expected.json), within float32 rounding.

usage: check.py EXPECTED_JSON KEY ANSWER_JSON   (exit 1 with the reason)"""

import json
import math
import sys


def flat(v):
    if isinstance(v, list):
        return [x for item in v for x in flat(item)]
    if isinstance(v, dict) and len(v) == 1:  # {output_name: value} per row
        return flat(next(iter(v.values())))
    return [v]


def main():
    want = json.load(open(sys.argv[1]))[sys.argv[2]]
    ans = json.load(open(sys.argv[3]))
    if "predictions" in ans:
        got = flat(ans["predictions"])
    elif "outputs" in ans and ans["outputs"]:
        got = flat(ans["outputs"][0].get("data"))
    else:
        sys.exit("check: no predictions or outputs in %.200s" % json.dumps(ans))
    if len(got) != len(want):
        sys.exit("check: %d predictions, expected %d" % (len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if not isinstance(g, (int, float)) or not math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-5):
            sys.exit("check: prediction %d is %r, the framework says %r" % (i, g, w))


if __name__ == "__main__":
    main()

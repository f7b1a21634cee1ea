"""``python3 -m kiln sync [--url URL] [--dir DIR] [--json]``: replay the spool
(the same work as ``kiln sync``, for machines without the kiln binary).

Credentials: ``KILN_URL`` / ``KILN_API_KEY`` / ``KILN_TOKEN`` (or MLflow's
``MLFLOW_TRACKING_URI`` / ``MLFLOW_TRACKING_TOKEN``). Exit status 0 when
every file was replayed, 1 when some were kept (server unreachable or
erroring), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from . import spool as _spool
from . import tracking as _t


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kiln", description="Kiln SDK commands")
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("sync", help="replay spooled tracking writes to the server")
    s.add_argument("--url", help="server URL (default KILN_URL)")
    s.add_argument("--dir", help="spool directory (default KILN_SPOOL_DIR or ~/.cache/kiln/spool)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if args.cmd != "sync":
        ap.print_help(sys.stderr)
        return 2
    if args.dir:
        os.environ["KILN_SPOOL_DIR"] = args.dir
    client = _t.init(args.url) if args.url else _t.get_client()
    res = _spool.replay_all(client, headers=_t._config.headers, directory=Path(args.dir) if args.dir else None)
    out = {"files_replayed": res.files_done, "records_sent": res.records_sent, "metrics_sent": res.metrics_sent,
           "records_skipped": res.records_skipped,
           "files_kept": [{"file": f, "reason": r} for f, r in res.files_kept]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"replayed {res.files_done} file(s): {res.records_sent} records, {res.metrics_sent} metric points"
              + (f", {res.records_skipped} refused records skipped" if res.records_skipped else ""))
        for f, r in res.files_kept:
            print(f"kept {f}: {r}", file=sys.stderr)
    return 1 if res.files_kept else 0


if __name__ == "__main__":
    sys.exit(main())

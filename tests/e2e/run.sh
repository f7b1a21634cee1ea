#!/bin/sh
# Runs the dashboard browser tests against a kiln binary.
#   KILN_BIN=build/kiln tests/e2e/run.sh     (default KILN_BIN: build/kiln)
# Needs node >= 20, npm, and Debian's chromium at /usr/bin/chromium.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

if [ ! -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ]; then
  echo "tests/e2e: ${CHROMIUM_BIN:-/usr/bin/chromium} not found (apt-get install chromium)" >&2
  exit 1
fi
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  (cd tests/e2e && npm ci --silent --no-audit --no-fund)
fi
# A glob rather than a directory: newer node versions read --test arguments as patterns.
exec node --test tests/e2e/*.test.mjs

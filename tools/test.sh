#!/usr/bin/env bash
# The test command of the README: install (tools/setup.sh), lint, then the default test run.
# Extra arguments go to pytest, e.g. `bash tools/test.sh -m slow` for the slow job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
python3 -m ruff check .
python3 -m pytest "$@"

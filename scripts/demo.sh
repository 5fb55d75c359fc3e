#!/usr/bin/env bash
# Run the lab demo end to end on the embedded store and serve the console on 127.0.0.1:5000.
#   ./scripts/demo.sh              # demo, then console (Ctrl-C to stop)
#   ./scripts/demo.sh --no-serve   # demo only; prints a one-line JSON summary
source "$(dirname "$0")/_setup.sh"
ensure_venv
export CITYSOC_HOME="${CITYSOC_HOME:-$REPO/.citysoc}"
exec .venv/bin/citysoc demo "$@"

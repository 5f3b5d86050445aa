#!/usr/bin/env bash
# The test suite: unit tests, then the integration tests (real Ray, redis-server, vLLM CPU engine, MiniLM).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=8 tests "$@"

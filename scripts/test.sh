#!/usr/bin/env bash
# The whole test suite: ruff, mypy, import-linter contracts, pytest. Installs what it needs.
source "$(dirname "$0")/_setup.sh"
ensure_venv test
apt_install redis-server mosquitto openssl chromium poppler-utils fonts-dejavu-core || log "some Debian packages are unavailable: the tests that need them will be skipped"
export PATH="$REPO/.venv/bin:$PATH"
PACKAGES=(store collectors enrichment detections playbooks compliance console lab)

log "ruff"
ruff check --no-cache .
log "mypy"
mypy "${PACKAGES[@]}"
log "import-linter"
lint-imports
log "pytest"
pytest -q "$@"

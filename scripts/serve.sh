#!/usr/bin/env bash
# Install dialtone into ./.venv and start the server on its embedded defaults:
# SQLite file ./dialtone.db, SIP on 127.0.0.1:5060 (UDP+TCP), HTTP API on 127.0.0.1:8080.
# Extra arguments go to `dialtone serve` (see `dialtone serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "dialtone: python3 -m venv is not available; install python3-venv" >&2
    exit 1
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q '.[fast]'
exec .venv/bin/dialtone serve "$@"

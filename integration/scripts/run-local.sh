#!/usr/bin/env bash
# The README's first command: installs what a fresh machine lacks, builds, and runs EdgeCert
# locally (API, workers, edge terminator, Pebble + challtestsrv on an embedded SQLite store in
# .edgecert/) until Ctrl-C.
# Extra arguments go to edgecert-local (see --help), e.g. --api-addr 127.0.0.1:9090.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bash integration/scripts/setup.sh
export EDGECERT_TOOLS_VENV="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
cargo build --locked -p edgecert-local --bin edgecert-local
exec "${CARGO_TARGET_DIR:-$repo/target}/debug/edgecert-local" "$@"

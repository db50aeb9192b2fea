#!/usr/bin/env bash
# Installs what EdgeCert's tests and local stack need on a fresh Debian machine, and nothing
# that is already there: Pebble + pebble-challtestsrv (apt) and a Python venv with moto_server
# and cfn-lint. Safe to run again.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
  echo "setup: installing pebble (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null
fi

if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/cfn-lint" ]; then
  echo "setup: creating tool venv at $venv (moto[server], cfn-lint)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]' cfn-lint
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust (rustup) first" >&2
  exit 1
fi
echo "setup: ready (pebble $(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '?'), venv $venv)"

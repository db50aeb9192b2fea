#!/usr/bin/env bash
# Installs what EdgeCert's tests and local stack need on a fresh Debian machine, and nothing
# that is already there: Pebble + pebble-challtestsrv (apt), a Python venv with moto_server,
# cfn-lint and cargo-lambda (which brings zig), and the SAM CLI in a venv of its own (large).
# --browser adds chromium + chromium-driver (the dashboard's browser tests), --deploy what
# building for AWS needs (arm64 Rust targets, umoci, skopeo), --image-check what the test
# command's image check needs (docker-registry, qemu-user), --peers the benchmarks' peers.
# Safe to run again.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
sam_venv="${EDGECERT_SAM_VENV:-$repo/.venv-sam}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
pip_install() { "$1/bin/pip" install -q --disable-pip-version-check "${@:2}"; }

if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
  echo "setup: installing pebble (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null
fi

if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/cfn-lint" ]; then
  echo "setup: creating tool venv at $venv (moto[server], cfn-lint)"
  python3 -m venv "$venv"
  pip_install "$venv" 'moto[server]' cfn-lint
fi

# `cargo lambda build` of the Lambda functions (zig cross-links them for Lambda's glibc).
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  echo "setup: installing cargo-lambda into $venv"
  pip_install "$venv" cargo-lambda
fi

# `sam validate --lint` of template.yaml. Its own venv: the SAM CLI pins its own versions of
# libraries the other tools use.
if [ ! -x "$sam_venv/bin/sam" ]; then
  echo "setup: creating SAM CLI venv at $sam_venv (aws-sam-cli)"
  python3 -m venv "$sam_venv"
  pip_install "$sam_venv" aws-sam-cli
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust (rustup) first" >&2
  exit 1
fi

# Packages that would start system services on install get a policy-rc.d that forbids it for
# the install, when the machine has none.
apt_install_without_services() {
  local policy=/usr/sbin/policy-rc.d placed=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    placed=yes
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  if [ -n "$placed" ]; then as_root rm -f "$policy"; fi
}

for option in "$@"; do
  case "$option" in
    # The benchmarks' peers and load tools (bench.sh passes --peers).
    --peers)
      missing=()
      command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
      command -v caddy >/dev/null || missing+=(caddy)
      command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
      if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing benchmark peers (apt): ${missing[*]}"
        apt_install_without_services "${missing[@]}"
      fi
      ;;
    # What building for AWS needs (test.sh and deploy.sh pass --deploy): the arm64 Rust
    # targets (Lambda on Graviton through cargo-lambda's zig, glibc; the terminator image's
    # static musl binary), umoci and skopeo to assemble and push the image without a Docker
    # daemon, and the CA bundle the image ships.
    --deploy)
      missing=()
      command -v umoci >/dev/null || missing+=(umoci)
      command -v skopeo >/dev/null || missing+=(skopeo)
      [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
      if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing image tools (apt): ${missing[*]}"
        apt_install_without_services "${missing[@]}"
      fi
      for rust_target in aarch64-unknown-linux-gnu aarch64-unknown-linux-musl; do
        if ! rustup target list --installed 2>/dev/null | grep -qx "$rust_target"; then
          echo "setup: adding the Rust target $rust_target (rustup)"
          rustup target add "$rust_target" >/dev/null
        fi
      done
      ;;
    # The dashboard's browser tests (test.sh passes --browser; run-local.sh does not need
    # them): Debian's Chromium and its WebDriver, driven headless by
    # integration/local/tests/dashboard_browser.rs.
    --browser)
      if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        echo "setup: installing chromium and chromium-driver (apt) for the dashboard's browser tests"
        apt_install_without_services chromium chromium-driver
      fi
      ;;
    # The test command's image check (test.sh passes --image-check): a registry to push to on
    # loopback, and qemu to start the image's aarch64 binary on this machine.
    --image-check)
      missing=()
      command -v docker-registry >/dev/null || missing+=(docker-registry)
      command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
      if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing the image check's tools (apt): ${missing[*]}"
        apt_install_without_services "${missing[@]}"
      fi
      ;;
    *) echo "setup: unknown option $option (known: --peers, --browser, --deploy, --image-check)" >&2; exit 2 ;;
  esac
done

echo "setup: ready (pebble $(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '?'), venv $venv, SAM venv $sam_venv)"

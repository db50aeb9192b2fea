#!/usr/bin/env bash
# EdgeCert's benchmarks against peers (BENCHMARKS.md); not part of the test suite's pass/fail.
#   bash integration/scripts/bench.sh                 # every scenario, release build (~25 min)
#   bash integration/scripts/bench.sh handshakes      # one or more scenarios by name
#   bash integration/scripts/bench.sh --quick         # smoke: each scenario runs, tiny sizes
# Scenarios: handshakes proxy many-certs on-demand lambda-init renewal-drain.
# Each prints a Markdown section and writes it to <target>/<profile>/bench-results/<name>.md.
# Servers are pinned to core 0 and load generators to core 1 (taskset); run on a quiet machine.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

quick=""
scenarios=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick="--quick" ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) scenarios+=("$arg") ;;
  esac
done
all=(handshakes proxy many-certs on-demand lambda-init renewal-drain)
if [ "${#scenarios[@]}" -eq 0 ]; then scenarios=("${all[@]}"); fi
for scenario in "${scenarios[@]}"; do
  case " ${all[*]} " in
    *" $scenario "*) ;;
    *) echo "bench: unknown scenario '$scenario' (known: ${all[*]})" >&2; exit 2 ;;
  esac
done

bash integration/scripts/setup.sh --peers
export EDGECERT_TOOLS_VENV="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

# Quick runs reuse the test build (dev profile); measurements need release. The function
# binary and the local runner are built alongside: lambda-init and on-demand run them.
if [ -n "$quick" ]; then profile=debug; build=(); else profile=release; build=(--release); fi
cargo build "${build[@]}" --locked --bins \
  -p edgecert-bench -p edgecert-lambda -p edgecert-local
bin_dir="${CARGO_TARGET_DIR:-$repo/target}/$profile"
export EDGECERT_BENCH_OUT="$bin_dir/bench-results"
mkdir -p "$EDGECERT_BENCH_OUT"

failed=()
for scenario in "${scenarios[@]}"; do
  echo "== bench $scenario $quick"
  if ! "$bin_dir/bench-$scenario" $quick; then
    failed+=("$scenario")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
echo "bench: results in $EDGECERT_BENCH_OUT"

#!/usr/bin/env bash
# The README's test command: format, lints, template checks (cfn-lint, sam validate), every test
# (unit, the adapter conformance suite on SQLite and on DynamoDB + Secrets Manager in moto, the
# Lambda binary through a Runtime API emulator, the SAM-transformed template, local services),
# a smoke run of every benchmark scenario, then what a deploy builds: `sam build` (every
# function, arm64, cargo-lambda's deployment profile) and the terminator image, pushed to a
# registry on loopback.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bash integration/scripts/setup.sh --deploy
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
sam_venv="${EDGECERT_SAM_VENV:-$repo/.venv-sam}"
export EDGECERT_TOOLS_VENV="$venv" EDGECERT_SAM_VENV="$sam_venv"
# The AWS SDK must never look for real credentials or the instance-metadata address.
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

echo "== cargo fmt";    cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cfn-lint";     "$venv/bin/cfn-lint" template.yaml
echo "== sam validate"
# Offline: the region only names the partition; no telemetry.
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" validate --lint --template template.yaml
echo "== cargo test";   cargo test --workspace --locked --no-fail-fast
echo "== benchmarks, quick (each scenario runs; numbers are not checked)"
bash integration/scripts/bench.sh --quick
echo "== sam build + terminator image (in parallel: no shared ports or target directory)"
# The image builds the terminator for aarch64-unknown-linux-musl in a target directory of its
# own (<target>/image-build), so its compilation runs while `sam build` links with one thread
# (thin LTO, one codegen unit). The registry it pushes to listens on a free loopback port.
started=$SECONDS
image_log="$(mktemp)"
bash integration/scripts/terminator-image.sh check >"$image_log" 2>&1 &
image_pid=$!
sam_status=0
# One build for every function (they share CodeUri and Metadata); SAM sets CARGO_TARGET_DIR
# only when it is unset, so the build cache above is used.
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 PATH="$venv/bin:$PATH" \
  timeout 1800 "$sam_venv/bin/sam" build --template template.yaml || sam_status=$?
echo "sam build: $((SECONDS - started)) s"
"$sam_venv/bin/python" integration/scripts/check-sam-build.py .aws-sam/build || sam_status=1
image_status=0
wait "$image_pid" || image_status=$?
sed 's/^/  image: /' "$image_log"
rm -f "$image_log"
echo "sam build + image: $((SECONDS - started)) s"
if [ "$sam_status" -ne 0 ] || [ "$image_status" -ne 0 ]; then
  echo "test: sam build (status $sam_status) or the terminator image (status $image_status) failed" >&2
  exit 1
fi

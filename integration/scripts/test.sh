#!/usr/bin/env bash
# The README's test command: format, lints, template checks (cfn-lint, sam validate), every test
# (unit, the adapter conformance suite on SQLite and on DynamoDB + Secrets Manager in moto, the
# Lambda binary through a Runtime API emulator, the SAM-transformed template, local services,
# the dashboard in headless Chromium), a smoke run of every benchmark scenario, then what a
# deploy builds: `sam build` (every function, arm64, cargo-lambda's deployment profile) and the
# terminator image, pushed to a registry on loopback.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bash integration/scripts/setup.sh --browser --deploy --image-check
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
sam_venv="${EDGECERT_SAM_VENV:-$repo/.venv-sam}"
export EDGECERT_TOOLS_VENV="$venv" EDGECERT_SAM_VENV="$sam_venv"
# The dashboard's browser tests fail, rather than skip, without Chromium.
export EDGECERT_REQUIRE_BROWSER=1
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
echo "== sam build"
# What a deploy builds (cold: 6.1 minutes on 2 idle cores; README, "How the AWS build is
# made"): one binary for every function
# (they share CodeUri and Metadata, so SAM builds once and copies it to each), arm64,
# cargo-lambda's deployment profile. SAM sets CARGO_TARGET_DIR only when it is unset, so the
# build cache above is used.
started=$SECONDS
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 PATH="$venv/bin:$PATH" \
  timeout 1800 "$sam_venv/bin/sam" build --template template.yaml
"$sam_venv/bin/python" integration/scripts/check-sam-build.py .aws-sam/build
echo "sam build: $((SECONDS - started)) s"
echo "== terminator image (built, pushed to a registry on loopback, pulled back)"
# After sam build rather than beside it: both are CPU-bound compilations of the whole
# dependency tree (for different targets), and sam build keeps its 10 minutes to itself.
started=$SECONDS
bash integration/scripts/terminator-image.sh check
echo "terminator image: $((SECONDS - started)) s"

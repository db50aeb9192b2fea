#!/usr/bin/env bash
# The README's test command: format, lints, template checks (cfn-lint, sam validate), every test
# (unit, the adapter conformance suite on SQLite and on DynamoDB + Secrets Manager in moto, the
# Lambda binaries through a Runtime API emulator, local services, the dashboard in headless
# Chromium), a smoke run of every benchmark scenario, and the release build of every Lambda
# function with cargo-lambda.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bash integration/scripts/setup.sh --browser
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
sam_venv="${EDGECERT_SAM_VENV:-$repo/.venv-sam}"
export EDGECERT_TOOLS_VENV="$venv"
# The dashboard function's test transforms template.yaml with the SAM venv's samtranslator.
export EDGECERT_SAM_VENV="$sam_venv"
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
echo "== cargo lambda build"
# x86_64 here (the template deploys arm64, which this machine cannot link); Lambda's glibc via
# zig. Output in target/lambda/<function>/bootstrap (under $CARGO_TARGET_DIR when set).
# `--disable-optimizations` keeps the release profile (opt-level 3) but skips what cargo-lambda
# adds for deployment (LTO, one codegen unit per binary): 9 minutes cold here instead of
# 34 for 26 binaries. `sam build` and deploys keep cargo-lambda's full optimisation.
PATH="$venv/bin:$PATH" cargo lambda build --release --disable-optimizations --x86-64 --locked \
  --package edgecert-api --package edgecert-workers

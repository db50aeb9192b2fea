#!/usr/bin/env bash
# The README's test command: format, lints, template lint, and every test (unit, the adapter
# conformance suite on SQLite and on DynamoDB + Secrets Manager in moto, local services).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bash integration/scripts/setup.sh
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
export EDGECERT_TOOLS_VENV="$venv"
# The AWS SDK must never look for real credentials or the instance-metadata address.
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

echo "== cargo fmt";    cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cfn-lint";     "$venv/bin/cfn-lint" template.yaml
echo "== cargo test";   cargo test --workspace --locked --no-fail-fast

#!/usr/bin/env bash
# Deploys EdgeCert to AWS in one command (README, "Deploy to AWS"):
#
#   bash integration/scripts/deploy.sh --stack-name NAME --edge-hostname edge.example.net [options]
#
#   --production                Let's Encrypt production (trusted certificates); default: staging
#   --acme-directory URL        another ACME CA's directory, with --caa-identities
#   --caa-identities LIST       the CA's identities in CAA records (comma-separated)
#   --contact-email ADDRESS     the ACME account's contact
#   --alarm-topic ARN           an SNS topic for the alarms (default: the stack creates one)
#   --vpc-id ID --subnet-ids A,B [--ipv6-addresses X,Y]
#                               put the edge in an existing VPC (two public subnets in two AZs);
#                               default: the stack creates a dual-stack VPC of its own
#   --region REGION             default: the AWS SDK's (AWS_REGION, the profile)
#   --s3-bucket NAME            where sam uploads the functions (default: SAM's managed bucket)
#   --parameter KEY=VALUE       any other template.yaml parameter (repeatable)
#   --build-only                build the functions and the image, then stop before any AWS call
#
# It runs `sam build` (every function, arm64), builds the terminator image (FROM scratch,
# aarch64), creates the stack's ECR repository on the first run (a first `sam deploy` without
# the terminator), pushes the image there, runs `sam deploy` with the image pinned by digest,
# and prints what the operator needs: the API URL, the admin key's secret (never the key), the
# edge's static addresses and the CNAME target customers use.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
sam_venv="${EDGECERT_SAM_VENV:-$repo/.venv-sam}"
export EDGECERT_TOOLS_VENV="$venv" EDGECERT_SAM_VENV="$sam_venv" SAM_CLI_TELEMETRY=0
target="${CARGO_TARGET_DIR:-$repo/target}"

die() { echo "deploy: $*" >&2; exit 1; }
usage() { sed -n '2,22p' "$0"; exit "${1:-2}"; }

stack="" edge_hostname="" acme="staging" caa="" contact="" alarm_topic="" vpc="" subnets=""
ipv6="" region="" bucket="" build_only="" extra=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --stack-name) stack="${2:-}"; shift 2 ;;
    --edge-hostname) edge_hostname="${2:-}"; shift 2 ;;
    --production) acme="production"; shift ;;
    --acme-directory) acme="${2:-}"; shift 2 ;;
    --caa-identities) caa="${2:-}"; shift 2 ;;
    --contact-email) contact="${2:-}"; shift 2 ;;
    --alarm-topic) alarm_topic="${2:-}"; shift 2 ;;
    --vpc-id) vpc="${2:-}"; shift 2 ;;
    --subnet-ids) subnets="${2:-}"; shift 2 ;;
    --ipv6-addresses) ipv6="${2:-}"; shift 2 ;;
    --region) region="${2:-}"; shift 2 ;;
    --s3-bucket) bucket="${2:-}"; shift 2 ;;
    --parameter) extra+=("${2:-}"); shift 2 ;;
    --build-only) build_only=yes; shift ;;
    -h|--help) usage 0 ;;
    *) echo "deploy: unknown option $1" >&2; usage ;;
  esac
done
[ -n "$stack" ] || die "--stack-name is required"
[ -n "$edge_hostname" ] || die "--edge-hostname is required"
# CloudFormation's rule for stack names; the stack's log group and alarm names derive from it.
[[ "$stack" =~ ^[A-Za-z][A-Za-z0-9-]{0,99}$ ]] \
  || die "--stack-name: letters, digits and hyphens, starting with a letter, at most 100"
if [ -n "$vpc" ] || [ -n "$subnets" ]; then
  [ -n "$vpc" ] && [[ "$subnets" == *,* ]] \
    || die "--vpc-id and --subnet-ids A,B go together (the template's NetworkIsGivenWhole rule)"
fi
[ -z "$ipv6" ] || [[ "$ipv6" == *,* && -n "$vpc" ]] \
  || die "--ipv6-addresses X,Y needs --vpc-id and --subnet-ids"
case "$acme" in
  staging|production) ;;
  https://*) [ -n "$caa" ] || die "--acme-directory needs --caa-identities (the CA's CAA identity)" ;;
  *) die "--acme-directory must be an https:// URL" ;;
esac

parameters=("EdgeHostname=$edge_hostname" "AcmeEnvironment=$acme")
[ -z "$caa" ] || parameters+=("CaaIdentities=$caa")
[ -z "$contact" ] || parameters+=("AcmeContactEmail=$contact")
[ -z "$alarm_topic" ] || parameters+=("AlarmTopicArn=$alarm_topic")
if [ -n "$vpc" ]; then
  parameters+=("VpcId=$vpc" "SubnetIdA=${subnets%%,*}" "SubnetIdB=${subnets#*,}")
fi
if [ -n "$ipv6" ]; then
  parameters+=("EdgeIpv6AddressA=${ipv6%%,*}" "EdgeIpv6AddressB=${ipv6#*,}")
fi
parameters+=("${extra[@]}")
region_args=()
[ -z "$region" ] || region_args=(--region "$region")
bucket_args=(--resolve-s3)
[ -z "$bucket" ] || bucket_args=(--s3-bucket "$bucket")

sam="$sam_venv/bin/sam"
# boto3 from the SAM CLI's venv: the few AWS calls sam has no command for.
aws_python() { "$sam_venv/bin/python" - "$region" "$@"; }

bash integration/scripts/setup.sh --deploy

if [ -z "$build_only" ]; then
  echo "deploy: checking AWS credentials"
  aws_python <<'EOF' || die "AWS is not reachable as said above; every step from here needs an AWS account (credentials from the SDK's chain: AWS_PROFILE, AWS_ACCESS_KEY_ID..., SSO)"
import sys, boto3
session = boto3.session.Session(region_name=sys.argv[1] or None)
if not session.region_name:
    sys.exit("deploy: no region: pass --region or set AWS_REGION")
try:
    identity = session.client("sts").get_caller_identity()
except Exception as error:  # one line for the operator, not a traceback
    sys.exit(f"deploy: {type(error).__name__}: {error}")
print(f"deploy: account {identity['Account']}, region {session.region_name}, as {identity['Arn']}")
EOF
fi

echo "deploy: sam build (every function: one arm64 binary, cargo-lambda deployment profile)"
timeout 3600 env PATH="$venv/bin:$PATH" "$sam" build --template template.yaml
echo "deploy: building the terminator image"
digest="$(bash integration/scripts/terminator-image.sh build "$target/terminator-image" | tail -n 1)"
[[ "$digest" == sha256:* ]] || die "the image build printed no digest"
echo "deploy: terminator image $digest"
if [ -n "$build_only" ]; then
  echo "deploy: --build-only: built .aws-sam/build and $target/terminator-image; nothing deployed"
  exit 0
fi

deploy_stack() {
  timeout 3600 "$sam" deploy --stack-name "$stack" "${region_args[@]}" "${bucket_args[@]}" \
    --capabilities CAPABILITY_IAM --no-confirm-changeset --no-fail-on-empty-changeset \
    --parameter-overrides "$@"
}
output() {
  aws_python "$stack" "$1" <<'EOF'
import sys, boto3
region, stack, key = sys.argv[1:4]
cloudformation = boto3.client("cloudformation", region_name=region or None)
try:
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
except cloudformation.exceptions.ClientError:
    sys.exit(0)  # no stack yet
for item in stacks[0].get("Outputs", []):
    if item["OutputKey"] == key:
        print(item["OutputValue"])
EOF
}

repository="$(output TerminatorRepositoryUri)"
if [ -z "$repository" ]; then
  # First deploy: everything but the terminator, which needs its image in the stack's
  # repository first. The edge's addresses are allocated here already.
  echo "deploy: first deploy of $stack (creates the image repository)"
  deploy_stack "${parameters[@]}"
  repository="$(output TerminatorRepositoryUri)"
  [ -n "$repository" ] || die "the stack has no TerminatorRepositoryUri output"
fi

echo "deploy: pushing the image to $repository"
authfile="$(mktemp)"
trap 'rm -f "$authfile"' EXIT
chmod 600 "$authfile"
aws_python >"$authfile" <<'EOF'
import json, sys, boto3
data = boto3.client("ecr", region_name=sys.argv[1] or None).get_authorization_token()["authorizationData"][0]
registry = data["proxyEndpoint"].removeprefix("https://")
print(json.dumps({"auths": {registry: {"auth": data["authorizationToken"]}}}))
EOF
# The repository's tags are immutable: one tag per image content.
image_tag="sha256-${digest#sha256:}"
bash integration/scripts/terminator-image.sh push "$target/terminator-image" \
  "docker://$repository:$image_tag" --dest-authfile "$authfile"
pushed="$(timeout 300 skopeo inspect --authfile "$authfile" --format '{{.Digest}}' "docker://$repository:$image_tag")"
rm -f "$authfile"

echo "deploy: sam deploy of $stack with the terminator $repository@$pushed"
deploy_stack "${parameters[@]}" "TerminatorImage=$repository@$pushed"

echo
echo "EdgeCert is deployed (stack $stack)."
echo "  API URL              $(output ApiUrl)"
echo "  admin key secret     $(output AdminKeySecretArn)"
echo "                       (the key: aws secretsmanager get-secret-value --secret-id <that ARN> --query SecretString --output text)"
echo "  edge IPv4 addresses  $(output EdgeIpv4Addresses)"
ipv6_addresses="$(output EdgeIpv6Addresses)"
[ -z "$ipv6_addresses" ] || echo "  edge IPv6 addresses  $ipv6_addresses"
echo "  CNAME target         $(output EdgeHostname)   (customers point subdomains here; give it A/AAAA records for the addresses above)"
echo "  edge load balancer   $(output TerminatorDnsName)"
echo "  alarm topic          $(output AlarmTopic)   (subscribe to get the alarms)"
echo "  CA                   $acme"

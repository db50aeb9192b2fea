#!/usr/bin/env bash
# The edge terminator's container image, built without Docker: FROM scratch, holding a static
# aarch64 binary (musl, linked by cargo-lambda's zig) and a CA bundle, assembled as an OCI
# image layout with umoci and pushed with skopeo. aarch64 because template.yaml runs the task on
# Graviton (RuntimePlatform.CpuArchitecture ARM64); this script builds nothing else.
#
#   terminator-image.sh build [LAYOUT]                      # default LAYOUT: <target>/terminator-image
#   terminator-image.sh push LAYOUT DESTINATION [skopeo copy options...]
#   terminator-image.sh check                               # CI: build, push to a docker-registry
#                                                           # on loopback, pull back, compare, and
#                                                           # start the binary under qemu-aarch64
#
# DESTINATION is a skopeo reference, e.g. docker://<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>.
# `build` prints the image's manifest digest last. The binary is built with the plain release
# profile (panic=unwind: a panicking connection task must not take the process down, so not
# cargo-lambda's deployment profile, which aborts) in a target directory of its own
# (<target>/image-build): its target and profile share nothing with the Lambda build.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
venv="${EDGECERT_TOOLS_VENV:-$repo/.venv-tools}"
target="${CARGO_TARGET_DIR:-$repo/target}"
rust_target=aarch64-unknown-linux-musl
tag=latest

die() { echo "terminator-image: $*" >&2; exit 1; }

for tool in umoci skopeo python3; do
  command -v "$tool" >/dev/null || die "$tool is missing: run integration/scripts/setup.sh --deploy"
done

# Fails unless $1 is an aarch64 ELF executable without a program interpreter (static).
check_static_aarch64() {
  python3 - "$1" <<'EOF'
import struct, sys
path = sys.argv[1]
with open(path, "rb") as f:
    header = f.read(64)
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        sys.exit(f"{path}: not a 64-bit little-endian ELF file")
    (machine,) = struct.unpack_from("<H", header, 18)
    if machine != 183:
        sys.exit(f"{path}: ELF machine {machine}, not aarch64 (183)")
    (phoff,) = struct.unpack_from("<Q", header, 32)
    phentsize, phnum = struct.unpack_from("<HH", header, 54)
    for i in range(phnum):
        f.seek(phoff + i * phentsize)
        (kind,) = struct.unpack("<I", f.read(4))
        if kind == 3:  # PT_INTERP: a dynamic loader would be needed in the image
            sys.exit(f"{path}: dynamically linked; the image has no loader")
EOF
}

build() {
  local layout="${1:-$target/terminator-image}"
  local build_dir="$target/image-build"
  local ca_bundle=/etc/ssl/certs/ca-certificates.crt
  [ -f "$ca_bundle" ] || die "$ca_bundle is missing (Debian package ca-certificates)"
  echo "terminator-image: building edgecert-terminator for $rust_target"
  PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$build_dir" timeout 3600 \
    cargo lambda build --release --disable-optimizations --locked \
    --target "$rust_target" -p edgecert-terminator --bin edgecert-terminator
  # cargo-lambda moves the binary it built to <target>/lambda/<name>/bootstrap.
  local binary="$build_dir/lambda/edgecert-terminator/bootstrap"
  check_static_aarch64 "$binary"

  rm -rf "$layout"
  mkdir -p "$(dirname "$layout")"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  # The image's file tree, as one layer: unpacked (empty), filled, repacked. (Not `umoci
  # insert`: umoci 0.4.7 writes inserted layers without the last entry's padding and tar's
  # end-of-archive blocks, which Go's archive/tar in containerd reads as a truncated layer.)
  local bundle="$build_dir/image-bundle"
  rm -rf "$bundle"
  umoci unpack --rootless --image "$layout:$tag" "$bundle" >/dev/null
  install -D -m 0755 "$binary" "$bundle/rootfs/usr/local/bin/edgecert-terminator"
  install -D -m 0644 "$ca_bundle" "$bundle/rootfs/etc/ssl/certs/ca-certificates.crt"
  umoci repack --image "$layout:$tag" "$bundle"
  rm -rf "$bundle"
  # What the Dockerfile's runtime stage said: an unprivileged user (nothing listens below
  # 1024), the listeners template.yaml's NLB forwards to, SIGTERM for a graceful stop.
  umoci config --image "$layout:$tag" --os linux --architecture arm64 \
    --author "EdgeCert" \
    --config.user 65532:65532 \
    --config.entrypoint /usr/local/bin/edgecert-terminator \
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --config.env EDGECERT_TERMINATOR_HTTPS_ADDR=0.0.0.0:8443 \
    --config.env EDGECERT_TERMINATOR_HTTP_ADDR=0.0.0.0:8080 \
    --config.env EDGECERT_TERMINATOR_ADMIN_ADDR=0.0.0.0:9090 \
    --config.env RUST_LOG=info \
    --config.exposedports 8443/tcp --config.exposedports 8080/tcp \
    --config.exposedports 9090/tcp \
    --config.stopsignal SIGTERM \
    --history.created_by "integration/scripts/terminator-image.sh"
  umoci gc --layout "$layout"
  echo "terminator-image: OCI layout $layout ($tag)"
  skopeo inspect --format '{{.Digest}}' "oci:$layout:$tag"
}

push() {
  local layout="$1" destination="$2"
  shift 2
  [ -d "$layout" ] || die "no image layout at $layout: run '$0 build $layout' first"
  timeout 1800 skopeo copy --retry-times 3 "$@" "oci:$layout:$tag" "$destination"
}

# CI's check: the image builds, a registry takes it, and what comes back is the image built
# (aarch64, the entrypoint and user above, the very binary). The registry listens on a free
# loopback port and is stopped by its process id.
check() {
  local layout port
  # Globals: the EXIT trap reads them after this function has returned.
  registry_pid=""
  work="$(mktemp -d)"
  trap 'if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
  layout="$work/layout"
  build "$layout"

  for tool in docker-registry qemu-aarch64; do
    command -v "$tool" >/dev/null || die "$tool is missing: run integration/scripts/setup.sh --image-check"
  done
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  local waited=0
  until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=2)" 2>/dev/null; do
    kill -0 "$registry_pid" 2>/dev/null || die "docker-registry exited: $(cat "$work/registry.log")"
    waited=$((waited + 1))
    [ "$waited" -le 60 ] || die "docker-registry did not answer on 127.0.0.1:$port within 30 s"
    sleep 0.5
  done

  local reference="docker://127.0.0.1:$port/edgecert-terminator:ci"
  push "$layout" "$reference" --dest-tls-verify=false
  local config
  config="$(timeout 120 skopeo inspect --tls-verify=false --config "$reference")"
  python3 - "$config" <<'EOF'
import json, sys
config = json.loads(sys.argv[1])
problems = []
expect = {
    "architecture": "arm64",
    "os": "linux",
}
for key, value in expect.items():
    if config.get(key) != value:
        problems.append(f"{key} is {config.get(key)!r}, expected {value!r}")
inner = config.get("config", {})
if inner.get("Entrypoint") != ["/usr/local/bin/edgecert-terminator"]:
    problems.append(f"Entrypoint is {inner.get('Entrypoint')!r}")
if inner.get("User") != "65532:65532":
    problems.append(f"User is {inner.get('User')!r}")
for port in ("8443/tcp", "8080/tcp", "9090/tcp"):
    if port not in inner.get("ExposedPorts", {}):
        problems.append(f"{port} is not exposed")
if problems:
    sys.exit("the pushed image's config: " + "; ".join(problems))
EOF
  # Pulled back: the layers hold exactly the binary that was built (GNU tar: umoci's layers
  # end without tar's end-of-archive blocks, which Python's tarfile insists on).
  timeout 300 skopeo copy --src-tls-verify=false "$reference" "dir:$work/pulled" >/dev/null
  mkdir -p "$work/rootfs"
  local layer
  for layer in $(python3 -c 'import json, sys; print(" ".join(l["digest"].split(":", 1)[1] for l in json.load(open(sys.argv[1]))["layers"]))' "$work/pulled/manifest.json"); do
    tar -xzf "$work/pulled/$layer" -C "$work/rootfs"
  done
  local built="$target/image-build/lambda/edgecert-terminator/bootstrap"
  cmp "$built" "$work/rootfs/usr/local/bin/edgecert-terminator" \
    || die "the pulled image's binary differs from the one built"
  [ -s "$work/rootfs/etc/ssl/certs/ca-certificates.crt" ] || die "the pulled image has no CA bundle"
  check_static_aarch64 "$work/rootfs/usr/local/bin/edgecert-terminator"
  # And it runs on aarch64 (emulated): with no configuration it stops at the first variable.
  local started_output status=0
  started_output="$(env -i timeout 60 qemu-aarch64 "$work/rootfs/usr/local/bin/edgecert-terminator" 2>&1)" || status=$?
  [ "$status" -ne 0 ] && [[ "$started_output" == *"configuration: EDGECERT_"*"is required"* ]] \
    || die "the image's binary did not start and refuse its missing configuration (status $status): $started_output"
  echo "terminator-image: check passed (built, pushed to 127.0.0.1:$port, pulled back identical, starts on aarch64)"
}

case "${1:-}" in
  build) shift; build "$@" ;;
  push)
    [ "$#" -ge 3 ] || die "usage: $0 push LAYOUT DESTINATION [skopeo copy options...]"
    shift; layout="$1" destination="$2"; shift 2; push "$layout" "$destination" "$@" ;;
  check) check ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac

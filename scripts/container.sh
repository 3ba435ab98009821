#!/usr/bin/env bash
# The container image on a machine with podman and no registry.
#
#   bash scripts/container.sh build [BINARY]   builds localhost/canarykeys:local
#   bash scripts/container.sh smoke [BINARY]   builds it, then runs it: /healthz answers, the
#                                              server runs as a non-root user, and a token
#                                              survives a restart on the same volume
#
# Nothing can be pulled here, so the runtime base is assembled from this machine: `FROM scratch`
# plus the shared libraries the binary needs (ldd) and a passwd entry for the service user, and
# the Containerfile's `prebuilt` stage takes a binary built on the host (default: a debug build).
# Users build the same Containerfile with its defaults (a Rust image and distroless cc).
set -euo pipefail
cd "$(dirname "$0")/.."

cmd="${1:-smoke}"
bin="${2:-}"
image=localhost/canarykeys:local
base=localhost/canarykeys-base:local
# podman in this sandbox: runc, cgroupfs, no default ulimits (see the ops notes).
podman=(podman --runtime runc --cgroup-manager cgroupfs)

if ! command -v podman >/dev/null; then
  echo "container: SKIPPED (podman is not installed)"
  exit 0
fi
if [ ! -f /etc/containers/containers.conf ] && [ "$(id -u)" -eq 0 ]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' > /etc/containers/containers.conf
fi

if [ -z "$bin" ]; then
  cargo build -p canarykeys-server --bin canarykeys
  bin=target/debug/canarykeys
fi

work="$(mktemp -d)"
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then "${podman[@]}" rm -f "$ctr" >/dev/null 2>&1 || true; fi
  "${podman[@]}" volume rm -f canarykeys-smoke >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

build() {
  # The base: the binary's libraries, a passwd/group with the service user, /tmp.
  local root="$work/root"
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  ldd "$bin" | grep -oE '/[^ ]+' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  tar -C "$root" -c . | "${podman[@]}" import - "$base" >/dev/null
  # The build context: the binary and an empty data directory, nothing else.
  local ctx="$work/ctx"
  mkdir -p "$ctx/data-skel"
  cp "$bin" "$ctx/canarykeys"
  "${podman[@]}" build --format docker -q -f deploy/container/Containerfile \
    --build-arg BASE="$base" --build-arg BINARY_FROM=prebuilt \
    --build-arg CANARYKEYS_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
    -t "$image" "$ctx" >/dev/null
  echo "container: built $image"
}

wait_healthy() {
  local url="$1" i
  for i in $(seq 1 100); do
    if curl -fsS "$url/healthz" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "container: FAILED: $url/healthz never answered"
  "${podman[@]}" logs "$ctr" || true
  return 1
}

run() {
  # No systemd here to run health-check timers; the smoke test runs the check itself.
  ctr="$("${podman[@]}" run -d --network=host --health-interval=disable -v canarykeys-smoke:/data \
    -e CANARYKEYS_LISTEN="127.0.0.1:$port" -e CANARYKEYS_ACCESS__CREATE=open "$image")"
}

smoke() {
  build
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  local url="http://127.0.0.1:$port"
  run
  wait_healthy "$url"
  # The image kept its HEALTHCHECK (podman needs --format docker for that), and it passes.
  "${podman[@]}" healthcheck run "$ctr" || {
    echo "container: FAILED: the image's HEALTHCHECK is missing or failing"; exit 1; }
  local uid
  uid="$("${podman[@]}" top "$ctr" huser | tail -n +2 | head -n1 | tr -d ' ')"
  if [ "$uid" = "0" ] || [ "$uid" = "root" ]; then
    echo "container: FAILED: the server runs as root"; exit 1
  fi
  # A token made now is still there after a restart on the same volume.
  local created id secret
  created="$(curl -fsS -X POST "$url/api/v1/tokens" -H 'content-type: application/json' \
    -d '{"kind":"aws_keys","memo":"container smoke","email":"soc@example.com"}')"
  id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$created")"
  secret="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["manage_secret"])' <<<"$created")"
  "${podman[@]}" stop -t 10 "$ctr" >/dev/null
  "${podman[@]}" rm "$ctr" >/dev/null
  run
  wait_healthy "$url"
  curl -fsS -H "authorization: Bearer $secret" "$url/api/v1/tokens/$id" | grep -q "container smoke" || {
    echo "container: FAILED: the token did not survive a restart"; exit 1; }
  echo "container: OK (healthz, user $uid, state kept across a restart)"
}

case "$cmd" in
  build) build ;;
  smoke) smoke ;;
  *) echo "usage: $0 build|smoke [BINARY]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Builds and tests gst-triton against GStreamer 1.26 (Debian 13 "trixie") on a Debian 12 host:
#   1. a minimal Debian 13 root made with debootstrap in target/gst126/root (reused when present;
#      --fresh makes a new one), with GStreamer 1.26 development packages and plugins inside;
#   2. the host's Rust toolchain (~/.cargo, ~/.rustup; crates fetched on the host, the root builds
#      offline) and this checkout bind-mounted at the same paths inside it;
#   3. the workspace built there with the `v1_24` feature (GstAnalyticsRelationMeta) into
#      target/gst126/target, clippy on the plugin with the feature, the plugin's tests, and the
#      interop test with upstream objectdetectionoverlay against a real Triton on the host's
#      loopback (TRITON_TEST_URL when set, else one started here on free ports).
# Everything mounted is unmounted on exit, failure included. Needs root (debootstrap, chroot).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BASE="$ROOT/target/gst126"
CHROOT="$BASE/root"
SUITE=trixie
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CARGO_DIR="${CARGO_HOME:-$HOME/.cargo}"
RUSTUP_DIR="${RUSTUP_HOME:-$HOME/.rustup}"
PACKAGES=(
  build-essential pkg-config protobuf-compiler ca-certificates fonts-dejavu-core
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
)
READY="$CHROOT/.gst-triton-ready"

fail() { echo "test-gst126: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap and chroot); run it with sudo"
[ -d "$CARGO_DIR/bin" ] && [ -d "$RUSTUP_DIR" ] || fail "no Rust toolchain at $CARGO_DIR / $RUSTUP_DIR"

# Mount points under the root, deepest first (umount order). Never delete the root while any of
# them is mounted: rm -rf through a live bind mount deletes the host's files.
mounts_under_root() { findmnt -rn -o TARGET | awk -v r="$CHROOT" 'index($0, r "/") == 1' | sort -r; }
unmount_all() {
  local m
  for m in $(mounts_under_root); do
    umount "$m" 2>/dev/null || umount -l "$m" || echo "test-gst126: could not unmount $m" >&2
  done
  if [ -n "$(mounts_under_root)" ]; then
    echo "test-gst126: still mounted under $CHROOT:" >&2
    mounts_under_root >&2
    return 1
  fi
}

STAGE="" STAGE_START=$SECONDS
stage() {
  [ -n "$STAGE" ] && echo "-- gst126: $STAGE: $((SECONDS - STAGE_START)) s"
  STAGE="$1" STAGE_START=$SECONDS
  [ -n "$1" ] && echo "== gst126: $1"
  return 0
}

TRITON_GRPC=""
cleanup() {
  local rc=$?
  set +e
  unmount_all || rc=1
  if [ -n "$TRITON_GRPC" ]; then
    TRITON_STATE_DIR="$BASE/triton" bash "$ROOT/scripts/triton.sh" stop --grpc-port "$TRITON_GRPC" >/dev/null 2>&1 \
      || echo "test-gst126: could not stop the Triton on port $TRITON_GRPC" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
unmount_all # leftovers of a killed run

if [ "${1:-}" = "--fresh" ] && [ -d "$CHROOT" ]; then
  stage "removing the old root"
  rm -rf --one-file-system "$CHROOT"
fi

want="$SUITE ${PACKAGES[*]}"
if [ ! -f "$READY" ] || [ "$(cat "$READY")" != "$want" ]; then
  command -v debootstrap >/dev/null || {
    stage "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
    stage "debootstrap $SUITE (minbase) into $CHROOT"
    rm -rf --one-file-system "$CHROOT"
    mkdir -p "$BASE"
    debootstrap --variant=minbase "$SUITE" "$CHROOT" "$MIRROR" >"$BASE/debootstrap.log" 2>&1 \
      || { tail -20 "$BASE/debootstrap.log" >&2; fail "debootstrap failed (log: $BASE/debootstrap.log)"; }
  fi
  stage "GStreamer 1.26 packages inside the root"
  cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
  mount -t proc proc "$CHROOT/proc"
  chroot "$CHROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PACKAGES[*]}" \
    >"$BASE/apt.log" 2>&1 || { tail -20 "$BASE/apt.log" >&2; fail "apt-get in the root failed (log: $BASE/apt.log)"; }
  umount "$CHROOT/proc"
  echo "$want" >"$READY"
fi

stage "cargo fetch on the host (the root builds offline: the registry may need the host's CA)"
cargo fetch --locked --quiet

stage "mounting /proc, /dev, the toolchain and the checkout"
mkdir -p "$CHROOT$ROOT" "$CHROOT$CARGO_DIR" "$CHROOT$RUSTUP_DIR"
mount -t proc proc "$CHROOT/proc"
mount --bind /dev "$CHROOT/dev"
mount -t tmpfs tmpfs "$CHROOT/dev/shm"
mount --bind "$ROOT" "$CHROOT$ROOT"
mount --bind "$CARGO_DIR" "$CHROOT$CARGO_DIR"
mount --bind "$RUSTUP_DIR" "$CHROOT$RUSTUP_DIR"
echo "gst126: $(chroot "$CHROOT" gst-inspect-1.0 --version | sed -n 2p) in the root"

if [ -z "${TRITON_TEST_URL:-}" ]; then
  stage "triton: start a server on the host's loopback"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  TRITON_GRPC=$(free_port)
  TRITON_STATE_DIR="$BASE/triton" bash scripts/triton.sh start --grpc-port "$TRITON_GRPC" --metrics-port "$(free_port)"
  TRITON_TEST_URL="http://127.0.0.1:$TRITON_GRPC"
fi

# Runs a command in the root, in the checkout, with the host's toolchain and our own target dir.
in_root() {
  chroot "$CHROOT" /usr/bin/env -i HOME="$HOME" PATH="$CARGO_DIR/bin:/usr/local/bin:/usr/bin:/bin" \
    CARGO_HOME="$CARGO_DIR" RUSTUP_HOME="$RUSTUP_DIR" CARGO_TARGET_DIR="$BASE/target" CARGO_NET_OFFLINE=true \
    TRITON_TEST_URL="$TRITON_TEST_URL" GST_DEBUG="${GST_DEBUG:-}" TERM=dumb \
    bash -c "cd '$ROOT' && $1"
}
FEATURES="--features=gst-triton-tests/v1_24"

stage "build the workspace with the v1_24 feature (GStreamer $(chroot "$CHROOT" pkg-config --modversion gstreamer-1.0))"
in_root "cargo build --workspace --all-targets --locked $FEATURES"

stage "clippy: the plugin with the feature"
in_root "cargo clippy -p gst-plugin-triton --all-targets --locked --features v1_24 -- -D warnings"

# The same feature selection as the build, so nothing is rebuilt: the plugin's unit and element
# tests (the 1.22 suite, now on 1.26), its analytics-meta tests, and the interop test.
stage "tests: plugin (elements, metas, analytics meta) + tritoninfer -> objectdetectionoverlay (Triton at $TRITON_TEST_URL)"
in_root "cargo test --workspace --locked $FEATURES --lib --test letterbox_element --test letterbox_kernel \
  --test overlay_jsonsink --test docs --test analytics_meta --test analytics_interop --test dettrack --test detcount --test detjsonreplay -- --test-threads=2"

stage ""
echo "== gst126: all passed in $SECONDS s"

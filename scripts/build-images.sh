#!/usr/bin/env bash
# Builds the images of deploy/ with buildah, from base images made here from Debian packages
# (no image registry is needed):
#   localhost/gst-triton-base/debian:bookworm-slim   debootstrap --variant=minbase bookworm
#   localhost/gst-triton-base/rust:1.95-bookworm     that + gcc/pkg-config + this machine's Rust 1.95
# then, with those as the Dockerfiles' BUILD_IMAGE / RUNTIME_IMAGE / BASE_IMAGE build args:
#   localhost/gst-triton/proxy:dev      deploy/Dockerfile.proxy
#   localhost/gst-triton/pipeline:dev   deploy/Dockerfile.pipeline
#   localhost/gst-triton/triton-cpu:dev deploy/Dockerfile.triton-cpu
# and prints each image's size. `--binaries DIR` builds the proxy and pipeline images from binaries
# built already (see below). The debootstrap root is cached as a tarball under
# target/images/; base images already in local storage are reused (--fresh makes them anew).
#
# The Dockerfiles are unchanged for a user with Docker and the public images: the build args
# default to rust:1.95-bookworm and debian:bookworm-slim.
#
# Podman/buildah here: the runc runtime (crun refuses hybrid cgroup hosts) and ulimits no higher
# than this shell's (raising them is refused in containers of this workplace).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE="$ROOT/target/images"
mkdir -p "$CACHE"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/gst-triton-base/debian:bookworm-slim
RUST=localhost/gst-triton-base/rust:1.95-bookworm
TAG=${IMAGE_TAG:-dev}
FRESH=0 BINARIES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --fresh) FRESH=1 ;;
    # --binaries DIR: the proxy and pipeline images from binaries built already (DIR holds
    # triton-proxy, triton-video, make-demo-clip and libgsttriton.so, e.g. target/release or
    # target/debug): the Dockerfiles' runtime stages as they are, their build stage replaced by
    # a copy of DIR. CI uses it so as not to build the workspace a second time inside the
    # containers; what it leaves untested is the Dockerfiles' `cargo build` stage.
    --binaries) BINARIES=$(cd "$2" && pwd); shift ;;
    *) echo "build-images: unknown argument $1 (expected --fresh, --binaries DIR)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=scripts/containers.sh
source "$ROOT/scripts/containers.sh"
containers_setup

start=$SECONDS
step() { echo "== build-images: $* ($((SECONDS - start)) s)"; }

need debootstrap

if [ $FRESH = 1 ]; then
  podman rmi -f "$BASE" "$RUST" >/dev/null 2>&1 || true
  rm -f "$CACHE/bookworm-minbase.tar"
fi

# 1. Debian base: debootstrap minbase, apt lists and caches removed, imported as an image.
if ! podman image exists "$BASE"; then
  if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
    step "debootstrap bookworm (minbase) from $MIRROR"
    root="$CACHE/bookworm-root"
    unmount_under "$root"
    rm -rf "$root"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 20 "$CACHE/debootstrap.log" >&2; unmount_under "$root"; exit 1; }
    unmount_under "$root"
    cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
SRC
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -cf "$CACHE/bookworm-minbase.tar.part" .
    mv "$CACHE/bookworm-minbase.tar.part" "$CACHE/bookworm-minbase.tar"
    rm -rf "$root"
  fi
  step "importing $BASE"
  podman import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$CACHE/bookworm-minbase.tar" "$BASE" >/dev/null
fi

# 2. Rust builder: the base, a C toolchain, and this machine's Rust 1.95 (the only toolchain
#    that can be had here) at /usr/local/rust, without its documentation.
if [ -z "$BINARIES" ] && ! podman image exists "$RUST"; then
  step "making $RUST"
  sysroot=$(rustc +1.95 --print sysroot 2>/dev/null || rustc --print sysroot)
  "$sysroot/bin/rustc" --version | grep -q '^rustc 1\.95\.' || { echo "build-images: need Rust 1.95 at $sysroot" >&2; exit 1; }
  ctr=$(buildah from --pull=never "${FROM_FLAGS[@]}" "$BASE")
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  buildah run "${RUN_FLAGS[@]}" "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev make pkg-config git >/dev/null && rm -rf /var/lib/apt/lists/*'
  mnt=$(buildah mount "$ctr")
  mkdir -p "$mnt/usr/local/rust" "$mnt/usr/local/cargo"
  tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$mnt/usr/local/rust" -xf -
  buildah umount "$ctr" >/dev/null
  buildah config --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --quiet "$ctr" "$RUST" >/dev/null
  buildah rm "$ctr" >/dev/null
  trap - EXIT
fi

# 3. The project's images. The cargo registry of this machine is lent to the builds (crates
#    already downloaded are not fetched again); target/ stays out of the context (.dockerignore).
build() {
  local file=$1 image=$2
  shift 2
  step "buildah bud -f $file -t $image"
  buildah bud "${BUD_FLAGS[@]}" --layers -f "$file" -t "$image" "$@" . >"$CACHE/$(basename "$file").log" 2>&1 \
    || { tail -n 40 "$CACHE/$(basename "$file").log" >&2; echo "build-images: $file failed (log: $CACHE/$(basename "$file").log)" >&2; exit 1; }
}
REG="${CARGO_HOME:-$HOME/.cargo}/registry"
mkdir -p "$REG"
# prebuilt FILE IMAGE BINARY...: FILE's runtime stage, its build stage a copy of the binaries.
prebuilt() {
  local file=$1 image=$2 ctx="$CACHE/prebuilt-$(basename "$1")"
  shift 2
  rm -rf "$ctx" && mkdir -p "$ctx"
  for b in "$@"; do
    [ -f "$BINARIES/$b" ] || { echo "build-images: --binaries $BINARIES has no $b" >&2; exit 1; }
    cp "$BINARIES/$b" "$ctx/"
  done
  mkdir -p "$ctx/deploy" && cp deploy/NOTICE "$ctx/deploy/"
  awk '/^FROM .* AS build$/ { print "FROM scratch AS build"; print "COPY . /src/target/release/"; skip = 1; next }
       /^FROM / { skip = 0 }
       !skip' "$file" >"$ctx/Dockerfile"
  step "buildah bud -f $file -t $image (build stage: the binaries of $BINARIES)"
  buildah bud "${BUD_FLAGS[@]}" --layers -f "$ctx/Dockerfile" -t "$image" --build-arg RUNTIME_IMAGE="$BASE" "$ctx" \
    >"$CACHE/$(basename "$file").log" 2>&1 \
    || { tail -n 40 "$CACHE/$(basename "$file").log" >&2; echo "build-images: $file failed (log: $CACHE/$(basename "$file").log)" >&2; exit 1; }
}
if [ -n "$BINARIES" ]; then
  prebuilt deploy/Dockerfile.proxy "localhost/gst-triton/proxy:$TAG" triton-proxy
  prebuilt deploy/Dockerfile.pipeline "localhost/gst-triton/pipeline:$TAG" libgsttriton.so triton-video make-demo-clip
else
  build deploy/Dockerfile.proxy "localhost/gst-triton/proxy:$TAG" \
    --build-arg BUILD_IMAGE="$RUST" --build-arg RUNTIME_IMAGE="$BASE" -v "$REG:/usr/local/cargo/registry"
  build deploy/Dockerfile.pipeline "localhost/gst-triton/pipeline:$TAG" \
    --build-arg BUILD_IMAGE="$RUST" --build-arg RUNTIME_IMAGE="$BASE" -v "$REG:/usr/local/cargo/registry"
fi
# pip inside the build trusts what this machine's pip trusts (PIP_CERT / the system bundle: a
# TLS-inspecting proxy's CA is there), lent read-only for the build, not kept in the image.
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
build deploy/Dockerfile.triton-cpu "localhost/gst-triton/triton-cpu:$TAG" \
  --build-arg BASE_IMAGE="$BASE" -v "$CA:/run/build-ca.crt:ro" --build-arg PIP_ARGS="--cert /run/build-ca.crt"

step "done"
# The digest pins an image (deploy with image@digest, not a tag that can move): see docs/deploy.md.
printf '%-45s %-8s %s\n' IMAGE SIZE DIGEST
for i in proxy pipeline triton-cpu; do
  printf '%-45s %-8s %s\n' "localhost/gst-triton/$i:$TAG" \
    "$(podman image inspect --format '{{.Size}}' "localhost/gst-triton/$i:$TAG" | awk '{printf "%.0fMB", $1/1e6}')" \
    "$(podman image inspect --format '{{.Digest}}' "localhost/gst-triton/$i:$TAG")"
done
# A kustomize overlay on deploy/k8s that runs exactly these images (by digest, which a moved tag
# cannot change). After pushing them (`podman push --digestfile F`), set the registry's name and
# digest instead: `kustomize edit set image gst-triton/triton-proxy=REGISTRY/...@sha256:...`.
OVERLAY="$ROOT/results/k8s-by-digest"
mkdir -p "$OVERLAY"
{
  echo "# Written by scripts/build-images.sh: deploy/k8s with the images it built, by digest."
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - ../../deploy/k8s"
  echo "images:"
  for pair in triton-proxy=proxy triton-video=pipeline; do
    echo "  - name: gst-triton/${pair%%=*}"
    echo "    newName: localhost/gst-triton/${pair#*=}"
    echo "    digest: $(podman image inspect --format '{{.Digest}}' "localhost/gst-triton/${pair#*=}:$TAG")"
  done
} >"$OVERLAY/kustomization.yaml"
echo "build-images: $OVERLAY/kustomization.yaml pins the proxy and pipeline images by digest (kubectl apply -k $OVERLAY)"
echo "== build-images: all built in $((SECONDS - start)) s"

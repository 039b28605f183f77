#!/usr/bin/env bash
# Benchmarks (figures in docs/benchmarks.md). Speeds are ratios against baselines measured in the
# same run; nothing here is a pass/fail test.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
# OpenCV baseline in its own venv: opencv wants numpy 2, the Triton venv must keep numpy<2.
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c 'import cv2' 2>/dev/null; then
  python3 -m venv .venv-bench && .venv-bench/bin/pip install -q opencv-python-headless numpy
fi
# nginx grpc_pass is the proxy benchmark's baseline (Debian nginx-light).
if [ ! -x /usr/sbin/nginx ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -q nginx-light >/dev/null
fi
cargo bench -p gst-plugin-triton --bench letterbox
cargo bench -p gst-plugin-triton --bench decode
cargo bench -p gst-plugin-triton --bench overlay
cargo bench -p gst-plugin-triton --bench track
cargo bench -p gst-triton-tests --bench proxy
cargo bench -p gst-triton-tests --bench proxy -- --python
cargo bench -p gst-triton-tests --bench infer
cargo bench -p gst-triton-tests --bench shared_memory
cargo bench -p gst-triton-tests --bench scale_out
cargo bench -p gst-triton-tests --bench real_model
cargo bench -p gst-triton-tests --bench cameras
cargo bench -p gst-triton-tests --bench objects
cargo bench -p gst-triton-tests --bench job

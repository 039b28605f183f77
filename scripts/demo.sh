#!/usr/bin/env bash
# The main job: set up a fresh Debian machine, start a real Triton (CPU) and run the demo.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
cargo build --release --locked -p gst-triton-tests --example detect_once
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(free_port); METRICS=$(free_port)
trap 'bash scripts/triton.sh stop --grpc-port "$GRPC" >/dev/null 2>&1 || true' EXIT
bash scripts/triton.sh start --grpc-port "$GRPC" --metrics-port "$METRICS"
target/release/examples/detect_once "http://127.0.0.1:$GRPC"

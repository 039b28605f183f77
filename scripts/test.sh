#!/usr/bin/env bash
# Runs every test: Python model tests, then the Rust workspace (unit, property, element and
# end-to-end tests) against one real Triton started here on free ports, plus fmt and clippy.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh

echo "== python: model logic"
.venv/bin/python -m unittest discover -s models -p 'test_*.py'

echo "== deploy: static validation"
.venv-tools/bin/python -m unittest deploy/test_deploy.py

echo "== rust: fmt + clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(free_port); METRICS=$(free_port)
export TRITON_STATE_DIR="$ROOT/target/triton-shared"
trap 'bash scripts/triton.sh stop --grpc-port "$GRPC" >/dev/null 2>&1 || true' EXIT
bash scripts/triton.sh start --grpc-port "$GRPC" --metrics-port "$METRICS"
export TRITON_TEST_URL="http://127.0.0.1:$GRPC"

echo "== rust: build (the plugin .so is loaded by tests that run gst-launch-1.0)"
cargo build --workspace --locked
cargo build --workspace --locked --examples

echo "== rust: tests (shared Triton at $TRITON_TEST_URL)"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"

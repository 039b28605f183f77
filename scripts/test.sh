#!/usr/bin/env bash
# Runs every test: Python model tests, then the Rust workspace (unit, property, element and
# end-to-end tests) against one real Triton started here on free ports, plus fmt and clippy, a
# 2-minute soak with faults, the container images built and run under podman, the GStreamer 1.26 build of the v1_24 feature in a Debian 13 root, and mutation testing in CI.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# Each stage prints how long the one before it took, and the total at the end.
STAGE="" STAGE_START=$SECONDS
# Each stage also prints the disk space left, so a full disk is seen where it happens.
stage() {
  [ -n "$STAGE" ] && echo "-- $STAGE: $((SECONDS - STAGE_START)) s, $(df -h --output=avail . | tail -1 | tr -d ' ') free"
  STAGE="$1" STAGE_START=$SECONDS
  [ -n "$1" ] && echo "== $1"
  return 0
}

# CI builds once from a clean clone: incremental caches would only add gigabytes of disk.
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0
stage "setup"
bash scripts/setup.sh

stage "python: model logic"
.venv/bin/python -m unittest discover -s models -p 'test_*.py'

stage "deploy: static validation; the API's OpenAPI document"
.venv-tools/bin/python -m unittest deploy/test_deploy.py
.venv-tools/bin/openapi-spec-validator pipelines/src/runner/api/openapi.json

stage "rust: fmt + clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "structure: dependency policy (deny.toml: licenses, bans, sources), no unused dependency (cargo machete), no source file over 600 lines, no import circle between modules"
python3 scripts/deps-policy.py --self-test
python3 scripts/deps-policy.py
python3 scripts/stage-quantiles.py --self-test
command -v cargo-machete >/dev/null || cargo install --locked --quiet cargo-machete@0.9.2
cargo machete
big=$(find ./*/src -name '*.rs' -print0 | xargs -0 wc -l | awk '$2 != "total" && $1 > 600 {print $2 " (" $1 " lines)"}')
if [ -n "$big" ]; then
  echo "source files over 600 lines (split them by responsibility):" >&2
  echo "$big" >&2
  exit 1
fi
python3 scripts/module-cycles.py

stage "triton: start the shared server"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(free_port); METRICS=$(free_port)
export TRITON_STATE_DIR="$ROOT/target/triton-shared"
trap 'bash scripts/triton.sh stop --grpc-port "$GRPC" >/dev/null 2>&1 || true' EXIT
bash scripts/triton.sh start --grpc-port "$GRPC" --metrics-port "$METRICS"
export TRITON_TEST_URL="http://127.0.0.1:$GRPC"

stage "rust: build (the plugin .so is loaded by tests that run gst-launch-1.0)"
cargo build --workspace --locked --all-targets

stage "rust: tests (shared Triton at $TRITON_TEST_URL)"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"

stage "images: the proxy and pipeline images from this run's binaries, Triton's from PyPI (scripts/build-images.sh --binaries target/debug)"
bash scripts/build-images.sh --binaries target/debug

stage "images: the compose stack under podman: health, isolation, 120 frames, a rolling update, podman stop (scripts/test-images.sh)"
bash scripts/test-images.sh

stage "soak: 2 minutes through the proxy, Triton restarted twice and the proxy once (scripts/soak.sh)"
bash scripts/soak.sh --minutes 2

stage "soak: 90 s of a rolling update (two replicas, A, the proxy, B stopped with SIGTERM): 0 error Acks (scripts/soak.sh --graceful)"
bash scripts/soak.sh --graceful --minutes 1.5

if [ "${SKIP_GST126:-0}" = 1 ]; then
  echo "== GStreamer 1.26 build and tests skipped (SKIP_GST126=1)"
else
  stage "GStreamer 1.26 (Debian 13 root): the v1_24 feature built and tested (scripts/test-gst126.sh)"
  bash scripts/test-gst126.sh
fi

stage "mutation testing: geometry, proxy control + auth, endpoint (scripts/mutants.sh --ci)"
bash scripts/mutants.sh --ci
stage ""
echo "== all tests passed in $SECONDS s"

#!/usr/bin/env bash
# Soak: 8 camera-like streams through triton-proxy to the ground-truth model shapes_nms, with
# Triton killed and restarted twice and the proxy once during the run (loopback only, its own
# Triton on free ports). Prints frames sent, Acks ok, error Acks, lost and misordered frames,
# wrong answers, proxy RSS start/peak/end and latency p50/p99; the last line reads
#   soak: sent N, ok N, errors N, lost 0, misordered 0
# and the exit status is 1 when a frame was lost, an Ack came out of order or an answer was wrong.
#
#   bash scripts/soak.sh                 # 8 × 5000 frames at 30 frames/s (about 3 minutes)
#   bash scripts/soak.sh --minutes 2     # bounded in time (what scripts/test.sh runs)
#   bash scripts/soak.sh --streams 4 --fps 15 --frames 1000
#   bash scripts/soak.sh --graceful      # a rolling update instead of crashes: two replicas,
#                                        # A, the proxy, then B stopped with SIGTERM and restarted;
#                                        # exit status 1 on any error Ack as well
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ -x .venv/bin/python ] || bash scripts/setup.sh
# The same selection as scripts/test.sh, so nothing is rebuilt twice.
cargo build --workspace --locked --all-targets --quiet
exec "${CARGO_TARGET_DIR:-$ROOT/target}/debug/soak" "$@"

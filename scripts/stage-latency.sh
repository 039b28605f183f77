#!/usr/bin/env bash
# Per-stage latency (p50/p95 of triton_video_camera_stage_seconds) of one input run through the
# proxy, release build: `triton-video --cameras` with the input as its one camera, the metrics
# scraped once a file has ended (a camera, rtsp://...: after 30 s), read by
# scripts/stage-quantiles.py.
#
#   bash scripts/stage-latency.sh TRITON_GRPC_ADDR MODEL VIDEO|rtsp://... [ENCODER]
#   e.g. bash scripts/stage-latency.sh 127.0.0.1:18001 shapes_yolov8 results/demo_input.mp4
set -euo pipefail
cd "$(dirname "$0")/.."
TRITON=${1:?usage: stage-latency.sh TRITON_GRPC_ADDR MODEL VIDEO [ENCODER]}
MODEL=${2:?model}
VIDEO=${3:?video}
case "$VIDEO" in *://*) LIVE=1 ;; *) LIVE=0; VIDEO=$(realpath "$VIDEO") ;; esac
ENC=${4:-auto}
BIN=target/release
cargo build --release --locked -q -p triton-proxy -p triton-video -p gst-plugin-triton
export GST_PLUGIN_PATH=$PWD/$BIN
DIR=$(mktemp -d /tmp/stage-latency.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PPORT=$(free_port)
MPORT=$(free_port)
KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
GRPC_EXPECT_API_KEY="$KEY" TRITON_URL="$TRITON" PROXY_HOST=127.0.0.1 PROXY_PORT="$PPORT" \
  PROXY_METRICS_PORT=0 "$BIN/triton-proxy" >"$DIR/proxy.log" 2>&1 &
PROXY=$!
trap 'kill $PROXY 2>/dev/null; [ -n "${RUNNER:-}" ] && kill $RUNNER 2>/dev/null; true' EXIT
printf '[[camera]]\nname = "clip"\nuri = "%s"\nencoder = "%s"\n' "$VIDEO" "$ENC" >"$DIR/cameras.toml"
sleep 1
DOMINO_API_KEY="$KEY" MM_ADDR="127.0.0.1:$PPORT" MODEL_NAME="$MODEL" RESULTS_DIR="$DIR" \
  API_ADDR=off METRICS_PORT="$MPORT" "$BIN/triton-video" --cameras "$DIR/cameras.toml" \
  >"$DIR/runner.log" 2>&1 &
RUNNER=$!
if [ "$LIVE" = 1 ]; then
  sleep 30
  kill -0 $RUNNER 2>/dev/null || { cat "$DIR/runner.log"; exit 1; }
else
  for _ in $(seq 1200); do
    grep -q "camera clip: stopped after" "$DIR/runner.log" && break
    kill -0 $RUNNER 2>/dev/null || { cat "$DIR/runner.log"; exit 1; }
    sleep 0.5
  done
  grep "camera clip: stopped after" "$DIR/runner.log"
fi
python3 scripts/stage-quantiles.py "http://127.0.0.1:$MPORT/metrics"
kill -TERM $RUNNER
wait $RUNNER || true
rm -rf "$DIR"

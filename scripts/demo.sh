#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, start a real Triton (CPU)
# with the demo model and triton-proxy with a generated key, make a demo clip (unless VIDEO_PATH
# is given), run triton-video through the proxy, and stop what it started.
#
#   bash scripts/demo.sh                         # demo clip, model shapes_yolov8
#   REAL=1 bash scripts/demo.sh                  # a real pretrained detector (yolov8_person) on
#                                                # OpenCV's vtest.avi (Debian opencv-doc)
#   VIDEO_PATH=/path/in.mp4 MODEL_NAME=yolov8n bash scripts/demo.sh   # your video and model
#
# Results: results/annotated.mp4 and results/frame_counts.jsonl (RESULTS_DIR to change).
# MAX_FRAMES limits the frames (0 = all); DEMO_BIN_DIR=target/debug uses binaries already built
# there instead of a release build (the tests do).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh
BIN=${DEMO_BIN_DIR:-target/release}
if [ -z "${DEMO_BIN_DIR:-}" ]; then
  echo "demo: building (release)"
  cargo build --release --locked -p triton-proxy -p triton-video
fi

if [ "${REAL:-0}" = 1 ]; then
  # The pretrained person detector (yolov8_person, installed by setup.sh) on a real street video.
  MODEL_NAME=${MODEL_NAME:-yolov8_person}
  if [ -z "${VIDEO_PATH:-}" ]; then
    V=/usr/share/doc/opencv-doc/examples/data/vtest.avi
    [ -f "$V" ] || [ -f "$V.gz" ] || {
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      $SUDO apt-get install -y -qq --no-install-recommends opencv-doc >/dev/null
    }
    if [ ! -f "$V" ] && [ -f "$V.gz" ]; then
      mkdir -p "${RESULTS_DIR:-results}"
      gunzip -c "$V.gz" >"${RESULTS_DIR:-results}/vtest.avi"
      V="${RESULTS_DIR:-results}/vtest.avi"
    fi
    VIDEO_PATH=$V
  fi
fi

RESULTS_DIR=${RESULTS_DIR:-results}
mkdir -p "$RESULTS_DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(free_port); METRICS=$(free_port); PPORT=$(free_port); PMETRICS=$(free_port)
PROXY_PID=""
cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null || true
  bash scripts/triton.sh stop --grpc-port "$GRPC" >/dev/null 2>&1 || true
}
trap cleanup EXIT

bash scripts/triton.sh start --grpc-port "$GRPC" --metrics-port "$METRICS"

KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
GRPC_EXPECT_API_KEY="$KEY" TRITON_URL="127.0.0.1:$GRPC" PROXY_HOST=127.0.0.1 PROXY_PORT="$PPORT" \
  PROXY_METRICS_PORT="$PMETRICS" TRITON_MODEL_NAME="${MODEL_NAME:-shapes_yolov8}" \
  "$BIN/triton-proxy" >"$RESULTS_DIR/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PPORT),0.2)" 2>/dev/null && break
  kill -0 "$PROXY_PID" 2>/dev/null || { echo "demo: triton-proxy failed to start:"; cat "$RESULTS_DIR/proxy.log"; exit 1; }
  sleep 0.1
done
echo "demo: triton-proxy on 127.0.0.1:$PPORT (key generated for this run, not stored)"

if [ -z "${VIDEO_PATH:-}" ]; then
  VIDEO_PATH="$RESULTS_DIR/demo_input.mp4"
  "$BIN/make-demo-clip" --out "$VIDEO_PATH" --truth "$RESULTS_DIR/demo_truth.jsonl" \
    --frames "${DEMO_FRAMES:-300}" --width 1280 --height 720
fi

DOMINO_API_KEY="$KEY" MM_ADDR="127.0.0.1:$PPORT" VIDEO_PATH="$VIDEO_PATH" RESULTS_DIR="$RESULTS_DIR" \
  MODEL_NAME="${MODEL_NAME:-shapes_yolov8}" "$BIN/triton-video"

echo
echo "demo: annotated video: $RESULTS_DIR/annotated.mp4"
echo "demo: per-frame counts: $RESULTS_DIR/frame_counts.jsonl"

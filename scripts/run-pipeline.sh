#!/usr/bin/env bash
# Runs a pipelines/*.pipeline file with gst-launch-1.0, substituting ${VAR} from the environment.
#   VIDEO_PATH=in.mp4 MM_URL=http://localhost:50051 MODEL_NAME=yolov8n RESULTS_DIR=results \
#     DOMINO_API_KEY=... bash scripts/run-pipeline.sh pipelines/file-to-mp4-and-jsonl.pipeline
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: run-pipeline.sh FILE.pipeline" >&2; exit 2; }
line=$(python3 - "$1" <<'PY'
import os, re, sys
text = "".join(l for l in open(sys.argv[1]) if not l.lstrip().startswith("#")).strip()
missing = sorted({m for m in re.findall(r"\$\{(\w+)\}", text) if m not in os.environ})
if missing:
    sys.exit("run-pipeline.sh: set " + ", ".join(missing))
print(re.sub(r"\$\{(\w+)\}", lambda m: os.environ[m.group(1)], text))
PY
)
mkdir -p "${RESULTS_DIR:-results}"
PLUGIN_DIR=${GST_TRITON_PLUGIN_DIR:-$ROOT/target/release}
[ -f "$PLUGIN_DIR/libgsttriton.so" ] || { echo "run-pipeline.sh: build the plugin first: cargo build --release -p gst-plugin-triton" >&2; exit 2; }
# shellcheck disable=SC2086
exec env GST_PLUGIN_PATH="$PLUGIN_DIR${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}" gst-launch-1.0 -e $line

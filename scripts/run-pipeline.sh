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
env = dict(os.environ)
# The runner's ENCODER words mean "the file's own encoder" here; none makes no recording, which a
# pipeline file that writes one cannot do.
if env.get("ENCODER", "").strip() in ("", "auto", "x264"):
    env.pop("ENCODER", None)
elif env["ENCODER"].strip() == "none" and "${ENCODER" in text:
    sys.exit("run-pipeline.sh: ENCODER=none: this pipeline file writes a recording; expected a GStreamer encoder (avenc_mpeg4, 'vah264enc ! h264parse', ...) or auto")
elif env["ENCODER"].strip().startswith("avenc_"):
    # GStreamer 1.22's libav encoders output nothing for frames of a segment that does not start
    # at 0 (an MP4 with B-frames has one): they get the frames in running time, as in the runner.
    env["ENCODER"] = "identity single-segment=true ! " + env["ENCODER"]
# ${VAR} must be set; ${VAR:-default} falls back to its default.
pattern = r"\$\{(\w+)(?::-([^}]*))?\}"
missing = sorted({m[0] for m in re.findall(pattern, text) if m[0] not in env and not m[1]})
if missing:
    sys.exit("run-pipeline.sh: set " + ", ".join(missing))
print(re.sub(pattern, lambda m: env.get(m.group(1), m.group(2) or ""), text))
PY
)
mkdir -p "${RESULTS_DIR:-results}"
PLUGIN_DIR=${GST_TRITON_PLUGIN_DIR:-$ROOT/target/release}
[ -f "$PLUGIN_DIR/libgsttriton.so" ] || { echo "run-pipeline.sh: build the plugin first: cargo build --release -p gst-plugin-triton" >&2; exit 2; }
# shellcheck disable=SC2086
exec env GST_PLUGIN_PATH="$PLUGIN_DIR${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}" gst-launch-1.0 -e $line

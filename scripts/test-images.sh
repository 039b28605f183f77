#!/usr/bin/env bash
# Runs the compose stack (deploy/compose.yaml + deploy/compose.cpu.yaml) in containers with
# podman, from the images of scripts/build-images.sh, and checks it as an operator would:
#   1. Triton (CPU) and the proxy start and pass their health checks;
#   2. the pipeline container cannot reach Triton (not by name, not by address), only the proxy;
#   3. the demo clip, made inside the pipeline image with make-demo-clip, goes through the
#      containerised pipeline -> proxy -> Triton, and frame_counts.jsonl matches the drawn truth;
#   4. a rolling update: a second Triton replica under the same name, then each replica stopped
#      with `podman stop` (SIGTERM) and started again, then the proxy the same way, while the
#      pipeline runs a longer clip: every frame there and in order, matching the truth, ok
#      through the replicas' restarts (the proxy's may cost error results: printed);
#   5. `podman stop` (SIGTERM) on the proxy: it drains and exits 0; on Triton: it exits;
# and stops and removes everything it started (on failure too).
# The commands come from deploy/compose*.yaml through scripts/compose_podman.py (why not
# podman-compose: see that file).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/containers.sh
source "$ROOT/scripts/containers.sh"
containers_setup
start=$SECONDS
step() { echo "== test-images: $* ($((SECONDS - start)) s)"; }
fail() { echo "test-images: FAILED: $*" >&2; exit 1; }

TAG=${IMAGE_TAG:-dev}
for i in proxy pipeline triton-cpu; do
  podman image exists "localhost/gst-triton/$i:$TAG" || fail "image localhost/gst-triton/$i:$TAG missing; run scripts/build-images.sh first"
done
PY=python3
if ! $PY -c 'import yaml' 2>/dev/null; then
  if [ -x .venv-tools/bin/python ]; then PY=.venv-tools/bin/python
  else apt-get install -y -qq python3-yaml >/dev/null; fi
fi

step "the digest overlay (results/k8s-by-digest) pins the images built"
for pair in triton-proxy=proxy triton-video=pipeline; do
  want=$(podman image inspect --format '{{.Digest}}' "localhost/gst-triton/${pair#*=}:$TAG")
  $PY - results/k8s-by-digest/kustomization.yaml "gst-triton/${pair%%=*}" "$want" <<'PYEOF' \
    || fail "results/k8s-by-digest/kustomization.yaml does not pin gst-triton/${pair%%=*} at $want"
import sys, yaml
k = yaml.safe_load(open(sys.argv[1]))
assert k["resources"] == ["../../deploy/k8s"], k["resources"]
(entry,) = [i for i in k["images"] if i["name"] == sys.argv[2]]
assert entry["digest"] == sys.argv[3] and sys.argv[3].startswith("sha256:"), entry
PYEOF
done
FILES=(-f deploy/compose.yaml -f deploy/compose.cpu.yaml)
compose() { $PY scripts/compose_podman.py "${FILES[@]}" "$@"; }

# check_truth RESULTS_FILE FRAMES [ERRORS_ALLOWED]: every frame ok (or, with ERRORS_ALLOWED=1, an
# error result), the drawn objects found within 3 px on every ok frame.
check_truth() {
  $PY - "$1" "$INPUT/truth.jsonl" "$2" "${3:-0}" <<'PYEOF' || fail "frame_counts.jsonl does not match the drawn truth"
import collections, json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
truth = [json.loads(l) for l in open(sys.argv[2])]
frames = int(sys.argv[3])
errors_allowed = sys.argv[4] == "1"
assert len(lines) == frames, f"{len(lines)} lines for {frames} frames"
errors = 0
for i, (l, t) in enumerate(zip(lines, truth)):
    assert l["frame"] == i, l
    if errors_allowed and l["status"] == "error":
        errors += 1
        continue
    assert l["status"] == "ok", l
    want = collections.Counter(o["label"] for o in t["objects"])
    got = collections.Counter(d["label"] for d in l["detections"])
    assert got == want, f"frame {i}: found {dict(got)}, drawn {dict(want)}"
    for o in t["objects"]:
        best = min((max(abs(a - b) for a, b in zip(d["box"], o["box"]))
                    for d in l["detections"] if d["label"] == o["label"]), default=1e9)
        assert best <= 3.0, f"frame {i}: {o['label']} off by {best} px"
n = sum(len(t["objects"]) for t in truth)
print(f"test-images: frame_counts.jsonl: {frames - errors} frames ok ({errors} error results), {n} drawn objects found within 3 px")
PYEOF
}

# The operator's own files, if any, are put aside and restored.
KEYS=deploy/secrets/proxy_keys ENVF=deploy/pipeline.env INPUT=deploy/input
for f in $KEYS $ENVF $INPUT; do
  [ -e "$f" ] && mv "$f" "$f.before-test-images"
done
cleanup() {
  local rc=$?
  step "stopping the stack"
  compose down --volumes >/dev/null 2>&1 || true
  rm -rf "$KEYS" "$ENVF" "$INPUT"
  for f in $KEYS $ENVF $INPUT; do
    [ -e "$f.before-test-images" ] && mv "$f.before-test-images" "$f"
  done
  exit $rc
}
trap cleanup EXIT
compose down --volumes >/dev/null 2>&1 || true

KEY=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
mkdir -p deploy/secrets "$INPUT"
printf '%s\n' "$KEY" >"$KEYS"
printf 'DOMINO_API_KEY=%s\n' "$KEY" >"$ENVF"
chmod 644 "$KEYS" "$ENVF"

step "the demo clip and its truth, made inside the pipeline image"
make_clip() {  # make_clip FRAMES: deploy/input/in.mp4 and its truth
  podman run --rm --user 0 --network none -v "$ROOT/$INPUT:/input" --entrypoint make-demo-clip \
    "localhost/gst-triton/pipeline:$TAG" --out /input/in.mp4 --truth /input/truth.jsonl \
    --frames "$1" --width 1280 --height 720 >/dev/null
  chmod -R a+rX "$INPUT"
}
FRAMES=${DEMO_FRAMES:-120}
make_clip "$FRAMES"

step "up: triton, proxy (each waited for until healthy)"
compose up triton proxy
$PY - "$(compose name proxy)" <<'PYEOF' || fail "the proxy never became healthy"
import subprocess, sys, time
ctr = sys.argv[1]
for _ in range(60):
    if subprocess.run(["podman", "healthcheck", "run", ctr], capture_output=True).returncode == 0:
        sys.exit(0)
    time.sleep(1)
sys.exit(1)
PYEOF
step "proxy healthy"

step "least privilege: Triton and the proxy run as non-root users on read-only root file systems"
for svc in triton proxy; do
  ctr=$(compose name "$svc")
  conf=$(podman inspect --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}' "$ctr")
  user=${conf% *}; ro=${conf#* }
  case "$user" in ""|0|0:*|root|root:*) fail "$svc runs as '${user:-the image default, root}'; expected a non-root user (compose user:)";; esac
  [ "$ro" = true ] || fail "$svc: the root file system is writable; expected read_only: true"
  # What the processes really run as, seen from inside the container.
  users=$(podman top "$ctr" user | tail -n +2 | sort -u | tr '\n' ' ')
  case " $users" in *" root "*|*" 0 "*) fail "$svc: a process runs as root: $users";; esac
  echo "test-images: $svc runs as $user (processes: $users), root file system read-only"
done
puser=$(podman image inspect --format '{{.Config.User}}' "localhost/gst-triton/pipeline:$TAG")
case "$puser" in ""|0|0:*|root|root:*) fail "the pipeline image runs as '${puser:-root}'; expected a non-root USER";; esac
notice=$(podman run --rm --network none --entrypoint cat "localhost/gst-triton/pipeline:$TAG" /usr/share/doc/gst-triton/NOTICE) \
  || fail "the pipeline image has no /usr/share/doc/gst-triton/NOTICE"
grep -q "gst-plugin-fallbackswitch .*MPL-2.0" <<<"$notice" || fail "the pipeline image's NOTICE does not name fallbacksrc's MPL-2.0"
echo "test-images: the pipeline image runs as $puser"

step "isolation: from the pipeline's network, Triton is out of reach and the proxy is not"
TRITON_IP=$(podman inspect --format "{{(index .NetworkSettings.Networks \"$(compose network backend)\").IPAddress}}" "$(compose name triton)")
[ -n "$TRITON_IP" ] || fail "no address for Triton on the backend network"
probe() {  # probe HOST PORT -> 0 when a TCP connection opens within 3 s
  podman run --rm --network "$(compose network frontend)" --entrypoint timeout \
    "localhost/gst-triton/pipeline:$TAG" 3 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1
}
probe proxy 50051 || fail "the pipeline's network cannot reach proxy:50051 (the probe itself is broken)"
probe triton 8001 && fail "the pipeline's network reaches triton:8001 by name"
probe "$TRITON_IP" 8001 && fail "the pipeline's network reaches Triton at $TRITON_IP:8001"
echo "test-images: proxy:50051 reachable; triton:8001 and $TRITON_IP:8001 not"

step "the pipeline: demo clip -> proxy -> Triton"
compose up pipeline
PIPE=$(compose name pipeline)
code=$(podman wait "$PIPE")
podman logs "$PIPE" 2>&1 | tail -n 15
[ "$code" = 0 ] || fail "the pipeline container exited with $code"
RESULTS=$(podman volume inspect --format '{{.Mountpoint}}' "$(compose volume results)")
check_truth "$RESULTS/frame_counts.jsonl" "$FRAMES"
ls -l "$RESULTS"

step "rolling update in containers: a second Triton replica, then each replica stopped with podman stop (SIGTERM) and started again while the pipeline runs"
proxy_metrics() {  # the proxy's /metrics, read from the pipeline's network
  podman run --rm --network "$(compose network frontend)" --entrypoint timeout "localhost/gst-triton/pipeline:$TAG" 5 \
    bash -c 'exec 3<>/dev/tcp/proxy/9090; printf "GET /metrics HTTP/1.1\r\nhost: proxy\r\nconnection: close\r\n\r\n" >&3; cat <&3' 2>/dev/null || true
}
wait_upstreams() {  # until the proxy balances over $1 ready Tritons (it looks the name up every 10 s)
  local n
  for _ in $(seq 1 90); do
    n=$(proxy_metrics | grep -c '^proxy_upstream_ready{.*} 1$' || true)
    [ "$n" -ge "$1" ] && return 0
    sleep 1
  done
  fail "the proxy never had $1 ready Tritons: $(proxy_metrics | grep '^proxy_upstream_ready' || true)"
}
lines() { [ -f "$RESULTS/frame_counts.jsonl" ] && wc -l <"$RESULTS/frame_counts.jsonl" || echo 0; }
wait_lines() {  # until the running pipeline has written $1 lines
  while [ "$(lines)" -lt "$1" ]; do
    [ "$(podman inspect --format '{{.State.Running}}' "$PIPE")" = true ] \
      || fail "the pipeline ended after $(lines) lines, before the rolling update was over (raise ROLLING_FRAMES)"
    sleep 0.2
  done
}
compose scale triton 2
wait_upstreams 2
ROLLING_FRAMES=${ROLLING_FRAMES:-2000}
make_clip "$ROLLING_FRAMES"
podman rm -f "$PIPE" >/dev/null
rm -f "$RESULTS/frame_counts.jsonl"
compose up pipeline >/dev/null
PIPE=$(compose name pipeline)
at=100
for replica in 1 2; do
  ctr=$(compose name triton --replica "$replica")
  wait_lines "$at"
  t0=$SECONDS
  podman stop "$ctr" >/dev/null 2>&1
  tcode=$(podman inspect --format '{{.State.ExitCode}}' "$ctr")
  echo "test-images: $ctr stopped (SIGTERM) at line $(lines) in $((SECONDS - t0)) s, exit $tcode"
  # 137 would be podman's SIGKILL after the stop timeout: no graceful stop.
  [ "$tcode" = 0 ] || fail "Triton replica $ctr exited with $tcode after SIGTERM (expected 0)"
  podman start "$ctr" >/dev/null
  compose healthy triton --replica "$replica" >/dev/null
  wait_upstreams 2
  at=$(( $(lines) + 50 ))
  echo "test-images: $ctr healthy again and balanced over at line $(lines)"
done
# Then the proxy, stopped the same way (it drains: its streams end with OK) and started again
# under load. tritoninfer waits for a proxy that ended its stream, up to 5 s (RESTART_WAIT), and
# on loopback a restart quicker than that costs no frame (tests/tests/graceful.rs). Here the
# name `proxy` goes with the stopped container (aardvark-dns), and looking it up again took
# seconds, so frames may get error results: every frame must still be there, in order, and
# every ok one right; how many errors is printed.
wait_lines "$at"
at_proxy=$(lines)
PROXY_CTR=$(compose name proxy)
t0=$(date +%s%N)
podman stop "$PROXY_CTR" >/dev/null 2>&1
pcode=$(podman inspect --format '{{.State.ExitCode}}' "$PROXY_CTR")
[ "$pcode" = 0 ] || fail "the proxy exited with $pcode after SIGTERM during the rolling update"
podman start "$PROXY_CTR" >/dev/null
$PY - "$PROXY_CTR" <<'PYEOF' || fail "the proxy never became healthy again"
import subprocess, sys, time
for _ in range(300):
    if subprocess.run(["podman", "healthcheck", "run", sys.argv[1]], capture_output=True).returncode == 0:
        sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PYEOF
away_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "test-images: the proxy stopped (SIGTERM) and healthy again in $away_ms ms, at line $(lines)"
at=$(( $(lines) + 50 ))
wait_lines "$at"
code=$(podman wait "$PIPE")
podman logs "$PIPE" 2>&1 | tail -n 6
[ "$code" = 0 ] || fail "the pipeline container exited with $code during the rolling update"
check_truth "$RESULTS/frame_counts.jsonl" "$ROLLING_FRAMES" 1
errs=$(grep -c '"status":"error"' "$RESULTS/frame_counts.jsonl" || true)
first=$(grep -n -m1 '"status":"error"' "$RESULTS/frame_counts.jsonl" | cut -d: -f1 || true)
[ "$errs" = 0 ] || [ "${first:-0}" -gt "$at_proxy" ] || fail "an error result at line $first, before the proxy's restart (line $at_proxy)"
echo "test-images: rolling update: $ROLLING_FRAMES frames, every one there and in order, the ok ones matching the truth; 0 errors through both Triton replicas' restarts, $errs error results through the proxy's (away $away_ms ms)"

step "podman stop: the proxy drains and exits 0; Triton exits"
podman stop "$(compose name proxy)" >/dev/null 2>&1
pcode=$(podman inspect --format '{{.State.ExitCode}}' "$(compose name proxy)")
[ "$pcode" = 0 ] || fail "the proxy exited with $pcode after SIGTERM"
# (PROXY_LOG_FORMAT=json: the message is a field of each line. The log is read whole first:
# `podman logs | grep -q` under pipefail fails when grep stops reading early and podman gets
# SIGPIPE, which is how this check failed on a fresh machine although the proxy had drained.)
plog=$(podman logs "$(compose name proxy)" 2>&1)
grep -q "draining: no longer accepting connections" <<<"$plog" || fail "the proxy did not log its drain"

t0=$SECONDS
podman stop "$(compose name triton)" >/dev/null 2>&1
tcode=$(podman inspect --format '{{.State.ExitCode}}' "$(compose name triton)")
echo "test-images: proxy exit 0 after SIGTERM; Triton stopped in $((SECONDS - t0)) s (exit $tcode)"
[ "$tcode" = 0 ] || fail "Triton exited with $tcode after SIGTERM (expected 0)"

step "passed"
printf '%-45s %s\n' IMAGE SIZE
for i in proxy pipeline triton-cpu; do
  printf '%-45s %s\n' "localhost/gst-triton/$i:$TAG" "$(podman image inspect --format '{{.Size}}' "localhost/gst-triton/$i:$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
done

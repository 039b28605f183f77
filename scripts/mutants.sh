#!/usr/bin/env bash
# Mutation testing (cargo-mutants, from crates.io) of the pure modules with their own unit tests:
# each mutant (an operator flipped, a function body replaced, ...) must make one of them fail.
#
#   bash scripts/mutants.sh          # everything: geometry, kernel, decoders, session, queue,
#                                    # proxy control + auth, the endpoint module (about an hour here)
#   bash scripts/mutants.sh --ci     # what CI runs: geometry, proxy control + auth, endpoint
#   bash scripts/mutants.sh NAME...  # some of: geometry kernel decode session queue proxy scaleout
#                                    # endpoint
#
# Prints caught / missed / unviable / timeout per file (a timeout is a mutant that made a test hang:
# noticed, counted as caught), lists every missed mutant, and exits non-zero when a goal is missed:
# 0 missed everywhere except the letterbox kernel (at most 5 %).
# Results: target/mutants/<name>/mutants.out/ (caught.txt, missed.txt, unviable.txt, timeout.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VERSION=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$VERSION"; then
  echo "mutants: installing cargo-mutants $VERSION"
  cargo install --locked --quiet "cargo-mutants@$VERSION"
fi

# name | package | files | the tests that guard them | allowed missed (percent) | mutants left
# out (a regex; only where a unit test cannot reach, with the test that does named below)
# (The kernel's tests are the golden tests in plugins/tests/letterbox_kernel.rs: pure Rust, no
# GStreamer, compared with a float reference.)
TARGETS=(
  "geometry|triton-geometry|geometry/src/lib.rs|--lib|0"
  "decode|gst-plugin-triton|plugins/src/decode/mod.rs|--lib|0"
  "decoding|gst-plugin-triton|plugins/src/infer/decoding.rs|--lib|0"
  "queue|gst-plugin-triton|plugins/src/infer/queue.rs|--lib|0"
  "proxy|triton-proxy-core|proxy-core/src/control/mod.rs proxy-core/src/auth.rs|--lib|0"
  # scaleout leaves out `<` → `<=` in Pool::pick, which only swaps which of two equally loaded
  # upstreams drawn at random is taken, and `!=` → `==` in Upstream::set_ready, which only
  # chooses which readiness change is logged (the state is swapped either way). The DNS loop (keep_resolving) is mutated: its unit tests
  # inject a resolver and run it in paused time; the readiness probes are mutated: their unit
  # test scripts ServerReady on the client crate's mock.
  "scaleout|triton-proxy|proxy/src/upstream.rs proxy/src/batch.rs|--lib|0|replace < with <= in Pool::pick|replace != with == in Upstream::set_ready"
  "endpoint|triton-endpoint|endpoint/src/lib.rs endpoint/src/error.rs endpoint/src/redact.rs|--lib|0"
  # client: the shared-memory pool, the unary transport and the client's resend and backoff,
  # guarded by the crate's own tests against the in-process mock (no GStreamer, no Triton).
  # Three equivalent mutants are left out: `<` → `<=` in Client::link and in unregister_when_free
  # compare two clock readings that are equal only at the same instant (the next reading
  # decides), and the Timeout guard in Client::attempt → `true` hands a timed-out lease to
  # Lease::finish, which retires a region whose request has no answer exactly as dropping the
  # lease does (docs/testing.md).
  "client|triton-client|client/src/shm/pool.rs client/src/transport/unary.rs client/src/client.rs|--lib|0|replace < with <= in (Client::link|unregister_when_free)|with true in Client::attempt"
  # kernel leaves out `&&` → `||` between "SIMD on" and "the CPU has it" in ByteGather::run, which
  # only takes the shuffle path where the portable one was asked for: the same bytes by design
  # (letterbox_kernel.rs compares the paths byte for byte; gather.rs tests each against indexing).
  "kernel|gst-plugin-triton|plugins/src/pixel.rs plugins/src/letterbox/tensor.rs plugins/src/letterbox/resize.rs plugins/src/letterbox/taps.rs plugins/src/letterbox/convert.rs plugins/src/letterbox/store.rs plugins/src/letterbox/gather.rs|--lib --test letterbox_kernel|5|replace && with .. in ByteGather::run"
)
case "${1:-}" in
  --ci) WANT=(geometry proxy endpoint) ;;
  "") WANT=(geometry decode decoding queue proxy endpoint client kernel) ;;
  *) WANT=("$@") ;;
esac

OUT="$ROOT/target/mutants"
mkdir -p "$OUT"
failed=0
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name pkg files tests allowed skip <<<"$t"
  [[ " ${WANT[*]} " == *" $name "* ]] || continue
  args=()
  for f in $files; do args+=(--file "$f"); done
  [ -n "${skip:-}" ] && args+=(--exclude-re "$skip")
  start=$SECONDS
  echo "== mutants: $name ($files)"
  # The plugin crate is optimised in dev builds for the end-to-end tests; mutants only run its
  # unit tests, where a quick unoptimised rebuild per mutant is what counts.
  # In CI (a clean clone, nothing else running) mutate in place and reuse the build the tests
  # made; elsewhere work on a copy, so that an interrupted run never leaves a mutant behind.
  [ -n "${CI:-}" ] && args+=(--in-place)
  set +e
  cargo mutants --no-shuffle --package "$pkg" "${args[@]}" --output "$OUT/$name" \
    --cargo-arg=--config=profile.dev.package.gst-plugin-triton.opt-level=0 \
    -- $tests >"$OUT/$name.log" 2>&1
  rc=$?
  set -e
  dir="$OUT/$name/mutants.out"
  # cargo-mutants: 0 all caught, 2 some missed, 3 some timed out (judged below); anything else
  # (4: the unmutated tree did not build or pass, e.g. a full disk) means nothing was tested.
  if [ ! -f "$dir/caught.txt" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] && [ "$rc" -ne 3 ]; }; then
    echo "mutants: $name did not run (exit $rc); see $OUT/$name.log" >&2
    tail -20 "$OUT/$name.log" >&2
    failed=1
    continue
  fi
  for f in $files; do
    count() { grep -c "^$f:" "$dir/$1.txt" 2>/dev/null || true; }
    c=$(count caught) m=$(count missed) u=$(count unviable) to=$(count timeout)
    viable=$((c + m + to))
    pct=0
    [ "$viable" -gt 0 ] && pct=$((100 * m / viable))
    printf '%-36s caught %4d  missed %3d (%d%%)  unviable %3d  timeout %2d\n' "$f" "$c" "$m" "$pct" "$u" "$to"
    if [ "$m" -gt 0 ]; then
      grep "^$f:" "$dir/missed.txt" | sed 's/^/    missed: /'
    fi
    # A timeout is a mutant that made a test hang (e.g. a wait that never ends): noticed, and
    # counted as caught.
    if [ "$((100 * m))" -gt "$((allowed * viable))" ]; then
      echo "    goal: at most $allowed% missed" >&2
      failed=1
    fi
  done
  echo "-- mutants: $name: $((SECONDS - start)) s"
done
exit "$failed"

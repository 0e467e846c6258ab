#!/usr/bin/env bash
# bench/slowpath.sh: the worker loop's latency during a burst of full TLS
# handshakes, with handshake crypto inline on the worker and with one
# slow-path thread (issue 3 §5). Reads baton's loop-iteration histogram
# (baton_loop_iteration_microseconds on /metrics) after the burst: the time
# from the start of a busy iteration to the end of processing (rx burst →
# stack/TCP/TLS/proxy), TX excluded.
#
# Usage (root): bench/slowpath.sh [SECONDS] [CLIENT_THREADS]   (defaults 3, 4)
set -uo pipefail
ROOT=$(realpath "$(dirname "$0")/..")
BATON=$(realpath "${BATON:-$ROOT/target/release/baton}")
LOADGEN=${LOADGEN:-$ROOT/target/release/examples/loadgen}
SECS=${1:-3}
THREADS=${2:-4}
[ "$(id -u)" = 0 ] || { echo "slowpath: needs root"; exit 2; }
[ -x "$BATON" ] && [ -x "$LOADGEN" ] || { echo "slowpath: build first: cargo build --release --bin baton --example loadgen"; exit 2; }
. "$ROOT/tests/dpdk/lib.bash"
rc=0
for slow in 0 1; do
  NS=baton-slow-$$-$slow DIR=/tmp/baton-slow-$$-$slow
  if ! start_demo "$BATON" "$NS" "$DIR" --slow-path-threads $slow; then rc=1; continue; fi
  res=$(timeout $((SECS + 30)) ip netns exec "$NS" "$LOADGEN" handshakes --addr 198.18.0.2:443 --ca "$DIR/ca.pem" \
        --threads "$THREADS" --seconds "$SECS" 2>&1 | grep '^result' || true)
  m=$(ip netns exec "$NS" curl -s http://127.0.0.1:9180/metrics)
  stop_demo; ip netns del "$NS" 2>/dev/null
  python3 - "$slow" "$res" <<PY || rc=1
import re, sys
slow, res = sys.argv[1], sys.argv[2]
m = """$m"""
buckets = [(float('inf') if le == '+Inf' else float(le), int(v)) for le, v in re.findall(r'baton_loop_iteration_microseconds_bucket\{worker="0",le="([^"]+)"\} (\d+)', m)]
mx = re.search(r'baton_loop_iteration_max_microseconds\{worker="0"\} (\d+)', m)
total = buckets[-1][1] if buckets else 0
def q(p):
    want = total * p
    for le, c in buckets:
        if c >= want:
            return le
    return float('nan')
hs = re.search(r' ok=(\d+)', res)
print(f"slow_path_threads={slow}: {hs.group(1) if hs else '?'} handshakes in ${SECS} s; busy loop iterations {total}: "
      f"p50 <= {q(0.5):.0f} us, p99 <= {q(0.99):.0f} us, p99.9 <= {q(0.999):.0f} us, max {mx.group(1) if mx else '?'} us")
if total == 0 or not hs:
    sys.exit(1)
PY
done
exit $rc

# Shared helpers for the DPDK tests: counting checks and starting a demo.
pass=0; fail=0
check() { # check NAME CMD...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); echo "ok   $name"; else fail=$((fail+1)); echo "FAIL $name"; fi
}
finish() { # finish SUITE
  echo "$1: $pass passed, $fail failed"
  [ "$fail" = 0 ]
}
# expected_sha N: SHA-256 of the backend's /bytes/N body, computed here
# independently of baton's own pattern code.
expected_sha() {
  python3 - "$1" <<'PY'
import hashlib, sys
n = int(sys.argv[1]); h = hashlib.sha256(); M = (1 << 64) - 1
chunk = 1 << 16; i = 0
while i < n:
    k = min(chunk, n - i)
    h.update(bytes(((((j * 2654435761) & M) >> 13) & 0xff) for j in range(i, i + k)))
    i += k
print(h.hexdigest())
PY
}
# start_demo BATON NS DIR [ARGS...]: runs `baton demo` in the background
# and waits for its "try" line. Sets DEMO_PID.
start_demo() {
  local baton=$1 ns=$2 dir=$3; shift 3
  "$baton" demo --netns "$ns" --dir "$dir" --seconds 600 "$@" > "$dir.out" 2>&1 &
  DEMO_PID=$!
  for _ in $(seq 1 150); do
    grep -q '^ip netns exec' "$dir.out" 2>/dev/null && return 0
    kill -0 "$DEMO_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "demo did not come up:"; cat "$dir.out"; cat "$dir/baton.log" 2>/dev/null
  return 1
}
stop_demo() {
  kill -INT "$DEMO_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$DEMO_PID" 2>/dev/null || true
  wait "$DEMO_PID" 2>/dev/null
}

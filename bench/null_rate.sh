#!/usr/bin/env bash
# bench/null_rate.sh: the raw poll rate on net_null (rx burst → parse →
# drop), the ceiling figure for this machine's cores. net_null hands out
# frames without touching memory a NIC would, so this is baton's per-frame
# cost with no I/O cost at all.
#
# Usage (root): bench/null_rate.sh [SECONDS] [WORKERS]   (defaults 3, 1)
#   Worker i is pinned to core i+1 (core 0 is left for the shell), or to
#   CORES="a b ..." if given.
# Prints the frames/s per worker core measured over the window between two
# admin-endpoint samples, and the whole-run figure from the stop log.
set -uo pipefail
ROOT=$(realpath "$(dirname "$0")/..")
BATON=$(realpath "${BATON:-$ROOT/target/release/baton}")
SECS=${1:-3}
WORKERS=${2:-1}
[ "$(id -u)" = 0 ] || { echo "null_rate: needs root (DPDK)"; exit 2; }
[ -x "$BATON" ] || { echo "null_rate: no $BATON (cargo build --release)"; exit 2; }
NCPU=$(nproc)
if [ -z "${CORES:-}" ]; then
  CORES=""; for i in $(seq 0 $((WORKERS - 1))); do CORES="$CORES $(( (i + 1) % NCPU ))"; done
fi
DIR=$(mktemp -d /tmp/baton-null-rate-XXXX)
BP=""
trap '[ -n "$BP" ] && kill -TERM $BP 2>/dev/null; rm -rf "$DIR"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
  -days 2 -subj /CN=baton.test >/dev/null 2>&1
PORT=$((20000 + $$ % 20000))
cat > "$DIR/baton.toml" <<TOML
[dpdk]
vdevs = ["net_null0"]
port = "net_null0"
file_prefix = "baton-null-rate-$$"
[listen]
address = "198.18.0.2"
[tls]
cert = "cert.pem"
key = "key.pem"
[backend]
servers = ["198.18.0.1:8080"]
[workers]
count = $WORKERS
cores = [$(echo $CORES | sed 's/ /, /g')]
[admin]
listen = "127.0.0.1:$PORT"
TOML
t_start=$(date +%s.%N)
timeout $((SECS + 30)) "$BATON" run --config "$DIR/baton.toml" > "$DIR/baton.log" 2>&1 &
BP=$!
# sum of every worker's drop counters (each junk frame is dropped once)
sample() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^baton_drops_total/{s+=$2} END{printf "%d\n", s}'; }
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5   # past start-up
t1=$(date +%s.%N); n1=$(sample)
sleep "$SECS"
t2=$(date +%s.%N); n2=$(sample)
kill -TERM $BP; wait $BP; rc=$?; BP=""
t_end=$(date +%s.%N)
if [ $rc != 0 ] || ! grep -q 'baton stopped' "$DIR/baton.log" || [ -z "$n1" ] || [ -z "$n2" ] || [ "$n2" -le "$n1" ]; then
  echo "null_rate: FAILED (exit $rc, samples '$n1' '$n2')"; cat "$DIR/baton.log"; exit 1
fi
total=$(sed -n 's/.*worker [0-9]* io: rx_frames=\([0-9]*\).*/\1/p' "$DIR/baton.log" | awk '{s+=$1} END{print s}')
win=$(echo "$n2 - $n1" | bc); dt=$(echo "$t2 - $t1" | bc -l)
rate=$(echo "$win / $dt" | bc -l)
printf 'null_rate: net_null, %d worker(s) on core(s)%s, %.2f s window (admin samples): %.1f Mframes/s total, %.1f Mframes/s per core (%.1f ns/frame)\n' \
  "$WORKERS" "$CORES" "$dt" "$(echo "$rate / 1000000" | bc -l)" "$(echo "$rate / $WORKERS / 1000000" | bc -l)" "$(echo "1000000000 * $WORKERS / $rate" | bc -l)"
printf 'null_rate: whole run incl. start-up and stop: %d frames in %.2f s (stop log rx_frames)\n' "$total" "$(echo "$t_end - $t_start" | bc -l)"
grep -E 'mbufs in use at stop: 0' -q "$DIR/baton.log" || { echo "null_rate: mbufs leaked"; grep 'mbufs in use' "$DIR/baton.log"; exit 1; }

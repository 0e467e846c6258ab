#!/usr/bin/env bash
# bench/replay/run.sh: the replay benchmark (bench/README.md, "bench/replay").
#
#   bench/replay/run.sh [--seconds N] [--concurrency C] [--idle K]
#       The recorded workload (bench/replay/data/workload.json) re-enacted
#       against baton's Worker in-process, every byte checked; one table.
#   bench/replay/run.sh --memif [--seconds N] [--concurrency C] [--idle K] [--profile [--profile-phase P]]
#       The same replay against the real `baton run` in its own DPDK process
#       (net_memif server; 1 worker on core 1, slow path and admin on); the
#       replayer is a second DPDK process (net_memif client) on core 0. CPU
#       is per process (all of baton's threads). --profile: `perf record -g`
#       on baton's process during one phase (--profile-phase: "recorded mix",
#       the default, or full, resumed, bulk), then the top of
#       bench/replay/perf_summary.py over it (bench/replay/PROFILE.md).
#   Both replay modes end with a bulk phase (--bulk-bytes N per download,
#   default 8 MiB; --bulk-concurrency C downloads at once, default 4).
#   bench/replay/run.sh --raw [--seconds N]
#       Frames that need no client answer (SYN flood, malformed and hostile
#       frames, ARP, ICMP; bench/replay/gen_raw.py) replayed at full rate
#       through net_pcap (infinite_rx) into `baton run`; counters from the
#       admin endpoint; then bench/null_rate.sh for the net_null ceiling.
# Exits 1 and prints FAILED if any connection did not complete or a byte
# differed (replay), or baton did not stop cleanly / counted nothing (raw).
set -uo pipefail
ROOT=$(realpath "$(dirname "$0")/../..")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RAW=0; MEMIF=0; PROFILE=0; PPHASE="recorded mix"; SECS=3; EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --raw) RAW=1 ;;
    --memif) MEMIF=1 ;;
    --profile) PROFILE=1 ;;
    --profile-phase) PPHASE=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --concurrency|--idle|--think-scale|--workload|--worker-core|--engine-core) EXTRA+=("$1" "$2"); shift ;;
    --memif-args|--baton-cores|--slow-path-threads|--bulk-bytes|--bulk-concurrency) EXTRA+=("$1" "$2"); shift ;;
    *) echo "usage: $0 [--raw|--memif [--profile [--profile-phase P]]] [--seconds N] [--concurrency C] [--idle K] [--think-scale X] [--bulk-bytes N]"; exit 2 ;;
  esac
  shift
done
cd "$ROOT"
# SECS may be fractional (the smoke uses 0.3): bash arithmetic is integer.
TMO=$(awk -v s="$SECS" 'BEGIN { printf "%d", s * 6 + 120 }')
if [ $MEMIF = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "replay --memif: needs root (DPDK)"; exit 2; }
  BATON=$(realpath "${BATON:-$CARGO_TARGET_DIR/release/baton}")
  [ -x "$BATON" ] || cargo build --release --bin baton || exit 1
  REPLAY=${REPLAY:-$CARGO_TARGET_DIR/release/examples/bench-replay}
  [ -x "$REPLAY" ] || cargo build --release --example bench-replay || exit 1
  if [ $PROFILE = 0 ]; then
    exec timeout "$TMO" "$REPLAY" --memif --baton "$BATON" --workload bench/replay/data/workload.json --seconds "$SECS" "${EXTRA[@]}"
  fi
  command -v perf >/dev/null || { echo "replay --memif --profile: perf not installed"; exit 2; }
  PD=$(mktemp -d /tmp/baton-replay-perf-XXXX)
  REPLAY_PERF_PHASE="$PPHASE" REPLAY_PERF_OUT="$PD/perf.data" timeout "$TMO" \
    "$REPLAY" --memif --baton "$BATON" --workload bench/replay/data/workload.json --seconds "$SECS" "${EXTRA[@]}"
  rc=$?
  if [ -s "$PD/perf.data" ]; then
    echo; echo "== perf (baton process, $PPHASE phase; bench/replay/perf_summary.py)"
    perf script -i "$PD/perf.data" -F comm,tid,ip,sym --inline 2>/dev/null | python3 bench/replay/perf_summary.py 15
    echo "(perf.data kept in $PD)"
  else
    echo "replay --memif --profile: no perf data (perf record failed?)"; rm -rf "$PD"
  fi
  exit $rc
fi
if [ $RAW = 0 ]; then
  REPLAY=${REPLAY:-$CARGO_TARGET_DIR/release/examples/bench-replay}
  [ -x "$REPLAY" ] || cargo build --release --example bench-replay || exit 1
  exec timeout "$TMO" "$REPLAY" --workload bench/replay/data/workload.json --seconds "$SECS" "${EXTRA[@]}"
fi

# --- raw
[ "$(id -u)" = 0 ] || { echo "replay --raw: needs root (DPDK)"; exit 2; }
BATON=$(realpath "${BATON:-$CARGO_TARGET_DIR/release/baton}")
[ -x "$BATON" ] || cargo build --release --bin baton || exit 1
DIR=$(mktemp -d /tmp/baton-replay-raw-XXXX)
BP=""
trap '[ -n "$BP" ] && kill -TERM $BP 2>/dev/null; rm -rf "$DIR"' EXIT
python3 bench/replay/gen_raw.py "$DIR/raw.pcap" 4000 2> "$DIR/gen.txt" || { echo "replay --raw: gen_raw.py failed"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
  -days 2 -subj /CN=baton.test >/dev/null 2>&1
PORT=$((20000 + $$ % 20000))
# max_connections 1024: the flood's 4000 sources pass 3/4 of it, so SYN
# cookies take over (DESIGN.md, admission).
cat > "$DIR/baton.toml" <<TOML
[dpdk]
vdevs = ["net_pcap0,rx_pcap=$DIR/raw.pcap,tx_pcap=/dev/null,infinite_rx=1"]
port = "net_pcap0"
file_prefix = "baton-replay-raw-$$"
[listen]
address = "198.18.0.2"
prefix_len = 24
[tls]
cert = "cert.pem"
key = "key.pem"
[backend]
servers = ["198.18.0.1:8080"]
[workers]
count = 1
cores = [1]
max_connections = 1024
[admin]
listen = "127.0.0.1:$PORT"
TOML
metrics() { curl -sf "http://127.0.0.1:$PORT/metrics"; }
timeout "$(awk -v s="$SECS" 'BEGIN { printf "%d", s + 30 }')" "$BATON" run --config "$DIR/baton.toml" > "$DIR/baton.log" 2>&1 &
BP=$!
for _ in $(seq 1 100); do metrics >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5
BPID=$(pgrep -P $BP | head -1)   # baton itself, under timeout
cpu() { awk '{print $14 + $15}' "/proc/${BPID:-$BP}/stat" 2>/dev/null || echo 0; }
t1=$(date +%s.%N); m1=$(metrics); c1=$(cpu)
sleep "$SECS"
t2=$(date +%s.%N); m2=$(metrics); c2=$(cpu)
kill -TERM $BP; wait $BP; rc=$?; BP=""
echo "$m1" > "$DIR/m1"; echo "$m2" > "$DIR/m2"
echo "bench-replay --raw: net_pcap (infinite_rx) of $(sed 's/gen_raw: //' "$DIR/gen.txt")"
echo "baton run: 1 worker on core 1, max_connections 1024, ${SECS} s window (admin samples)"
python3 - "$DIR/m1" "$DIR/m2" "$t1" "$t2" "$c1" "$c2" "$(getconf CLK_TCK)" <<'PY'
import re, sys
def load(p):
    d = {}
    for l in open(p):
        if l.startswith("#") or not l.strip():
            continue
        k, _, v = l.rpartition(" ")
        try:
            d[k] = d.get(k, 0) + float(v)
        except ValueError:
            pass
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
dt = float(sys.argv[4]) - float(sys.argv[3])
cpu = (float(sys.argv[6]) - float(sys.argv[5])) / float(sys.argv[7])
rows = []
for k in sorted(b):
    dv = b[k] - a.get(k, 0)
    if dv > 0 and not any(x in k for x in ("bucket", "_sum", "_count", "iteration")):
        rows.append((k, dv))
rx = sum(v for k, v in rows if re.match(r"baton_rx_frames", k))
print("%-70s %14s %14s" % ("counter (delta over the window)", "count", "per s"))
for k, v in rows:
    print("%-70s %14d %14.0f" % (k[:70], v, v / dt))
print("%-70s %14.2f" % ("baton CPU-s in the window (all threads)", cpu))
if rx > 0:
    print("%-70s %14.0f" % ("rx frames per CPU-s", rx / cpu if cpu > 0 else 0))
if rx == 0:
    print("bench-replay --raw: FAILED (no frames counted)"); sys.exit(1)
PY
prc=$?
grep -E 'worker 0 (stopped|drops|io)|mbufs in use' "$DIR/baton.log" | sed 's/^.*\] /  stop log: /'
if [ $rc != 0 ] || [ $prc != 0 ] || ! grep -q 'baton stopped' "$DIR/baton.log"; then
  echo "bench-replay --raw: FAILED (baton exit $rc)"; tail -20 "$DIR/baton.log"; exit 1
fi
echo
BATON=$BATON bench/null_rate.sh "$SECS" 1 || exit 1
echo "bench-replay --raw: ok"

#!/usr/bin/env bash
# bench/replay/record.sh: records a small workload from real client
# sessions (curl and openssl s_client) against `baton demo`, with tcpdump on
# the kernel side of baton's TAP inside the demo's namespace, so both legs
# are in the capture: client <-> baton:443 (TLS) and baton <-> backend:8080
# (plaintext). Then bench/replay/workload.py turns the capture into the
# workload file the replayer reads.
#
# Usage (root): bench/replay/record.sh [OUTDIR]   (default bench/replay/data)
# Bounded: the demo stops by itself after 60 s; every client has a timeout.
# Writes OUTDIR/demo.pcap and OUTDIR/workload.json.
set -uo pipefail
ROOT=$(realpath "$(dirname "$0")/../..")
BATON=$(realpath "${BATON:-$ROOT/target/release/baton}")
OUT=$(realpath -m "${1:-$ROOT/bench/replay/data}")
[ "$(id -u)" = 0 ] || { echo "record: needs root"; exit 2; }
[ -x "$BATON" ] || { echo "record: no $BATON (cargo build --release --bin baton)"; exit 2; }
command -v tcpdump >/dev/null || { echo "record: needs tcpdump"; exit 2; }
mkdir -p "$OUT"
NS=brec-$$; DIR=/tmp/baton-rec-$$; VIP=198.18.0.2
DP=""; TP=""
cleanup() {
  [ -n "$TP" ] && kill -INT "$TP" 2>/dev/null
  [ -n "$DP" ] && kill -TERM "$DP" 2>/dev/null
  wait 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
"$BATON" demo --netns "$NS" --dir "$DIR" --seconds 60 > "$DIR.demo.log" 2>&1 &
DP=$!
for _ in $(seq 1 200); do grep -q 'baton demo is up' "$DIR.demo.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'baton demo is up' "$DIR.demo.log" || { echo "record: demo did not come up"; cat "$DIR.demo.log"; exit 1; }
in_ns() { timeout 10 ip netns exec "$NS" "$@"; }
for _ in $(seq 1 50); do in_ns curl -sf --cacert "$DIR/ca.pem" "https://$VIP/" >/dev/null && break; sleep 0.2; done
ip netns exec "$NS" timeout 50 tcpdump -i btap0 -s 0 -U -w "$OUT/demo.pcap" 'tcp and (port 443 or port 8080)' 2>"$DIR.tcpdump.log" &
TP=$!
sleep 1
curl_() { in_ns curl -sS -o /dev/null --cacert "$DIR/ca.pem" "$@"; }
req() { printf "GET %s HTTP/1.1\r\nHost: baton.test\r\n${2:-}\r\n" "$1"; }
sclient() { in_ns openssl s_client -quiet -connect $VIP:443 -tls1_3 -CAfile "$DIR/ca.pem" -servername baton.test -no_ign_eof "$@" 2>/dev/null >/dev/null; }
# 1. full handshakes, one request each, assorted sizes
for p in / /bytes/1000 /bytes/20000 /bytes/50000; do curl_ "https://$VIP$p"; sleep 0.05; done
# 2. one connection, three requests back to back (curl keeps it alive)
curl_ "https://$VIP/" -o /dev/null "https://$VIP/bytes/5000" -o /dev/null "https://$VIP/bytes/300"
# 3. a session saved, then resumed connections (TLS 1.3 PSK from the ticket)
(req /bytes/2000 'Connection: close\r\n'; sleep 1) | sclient -sess_out "$DIR/sess.pem"
for p in / /bytes/3000 /bytes/30000; do (req "$p" 'Connection: close\r\n'; sleep 0.3) | sclient -sess_in "$DIR/sess.pem"; done
# 4. a resumed connection with think time between two requests
(req /bytes/700; sleep 0.4; req /bytes/9000 'Connection: close\r\n'; sleep 0.3) | sclient -sess_in "$DIR/sess.pem"
# 5. concurrency: six connections at once, full and resumed mixed
for i in 1 2 3; do curl_ "https://$VIP/bytes/$((i * 7000))" & done
for i in 1 2 3; do (req "/bytes/$((i * 1500))" 'Connection: close\r\n'; sleep 0.3) | sclient -sess_in "$DIR/sess.pem" & done
wait $(jobs -p | grep -v -e "^$TP\$" -e "^$DP\$") 2>/dev/null
sleep 1
kill -INT "$TP"; wait "$TP" 2>/dev/null; TP=""
ls -l "$OUT/demo.pcap"
python3 "$ROOT/bench/replay/workload.py" "$OUT/demo.pcap" > "$OUT/workload.json" || { echo "record: workload.py failed"; exit 1; }
echo "record: wrote $OUT/demo.pcap and $OUT/workload.json"

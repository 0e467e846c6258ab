#!/usr/bin/env bash
# net_null: baton's workers poll a device that delivers an endless stream of
# junk frames; they must drop and count every one, and stop cleanly on
# SIGTERM with every mbuf back in the pool. Run with 1 and 2 workers.
set -uo pipefail
here=$(realpath "$(dirname "$0")"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
DIR=$(mktemp -d /tmp/baton-null-XXXX)
trap 'rm -rf "$DIR"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
  -days 2 -subj /CN=baton.test >/dev/null 2>&1
for workers in 1 2; do
  cat > "$DIR/baton.toml" <<TOML
[dpdk]
vdevs = ["net_null0"]
port = "net_null0"
file_prefix = "baton-null-$$-$workers"
[listen]
address = "198.18.0.2"
[tls]
cert = "cert.pem"
key = "key.pem"
[backend]
servers = ["198.18.0.1:8080"]
[workers]
count = $workers
[admin]
listen = "127.0.0.1:$((19100 + $$ % 500))"
TOML
  timeout 30 "$BATON" run --config "$DIR/baton.toml" > "$DIR/baton.log" 2>&1 &
  pid=$!
  sleep 3
  if [ "$workers" = 2 ]; then
    # net_null emulates a RETA (128 entries): the admin trigger applies one.
    out=$(curl -s -X POST "http://127.0.0.1:$((19100 + $$ % 500))/reta?queues=1")
    check "2 workers: POST /reta?queues=1 applies a new RETA ($out)" grep -q "RETA generation" <<<"$out"
    out=$(curl -s -X POST "http://127.0.0.1:$((19100 + $$ % 500))/reta?queues=7")
    check "2 workers: a RETA naming a queue that does not exist is refused" grep -q "need ?queues" <<<"$out"
  fi
  kill -TERM $pid
  wait $pid; rc=$?
  check "$workers worker(s): exits 0 after SIGTERM" [ "$rc" = 0 ]
  check "$workers worker(s): every worker stopped" [ "$(grep -c 'worker [0-9]* stopped' "$DIR/baton.log")" = "$workers" ]
  check "$workers worker(s): junk frames dropped and counted" grep -Eq 'worker 0 drops: .*=[1-9]' "$DIR/baton.log"
  check "$workers worker(s): no mbuf leaked" grep -q 'mbufs in use at stop: 0' "$DIR/baton.log"
  check "$workers worker(s): no panic" bash -c "! grep -qi panic '$DIR/baton.log'"
  [ "$fail" = 0 ] || cat "$DIR/baton.log"
done
finish null

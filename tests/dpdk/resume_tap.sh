#!/usr/bin/env bash
# TLS 1.3 resumption across workers over net_tap with openssl s_client:
# a full handshake on one worker saves its ticket (-sess_out); that worker
# is drained so the next connection lands on the other one, which takes the
# session from the shared table and resumes (-sess_in: "Reused"); the same
# ticket a second time finds nothing to take and gets a full handshake.
set -uo pipefail
here=$(dirname "$0"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
NS=baton-res-$$
DIR=/tmp/baton-res-$$
VIP=198.18.0.2
trap 'stop_demo; ip netns del $NS 2>/dev/null; rm -rf $DIR $DIR.out $DIR.sess' EXIT
start_demo "$BATON" "$NS" "$DIR" --workers 2 || { echo "resume_tap: 0 passed, 1 failed"; exit 1; }
metric() { ip netns exec "$NS" curl -s "http://127.0.0.1:9180/metrics" | awk -v m="baton_$1_total{worker=\"$2\"}" '$1 == m {print $2}'; }
client() { # client EXTRA-ARGS...
  (printf 'GET / HTTP/1.1\r\nHost: baton.test\r\n\r\n'; sleep 1) | \
    timeout 10 ip netns exec "$NS" openssl s_client -connect $VIP:443 -tls1_3 -CAfile "$DIR/ca.pem" -servername baton.test -ign_eof "$@" 2>&1
}
out=$(client -sess_out "$DIR.sess")
check "first connection: full handshake, response received" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
check "a ticket was saved" [ -s "$DIR.sess" ]
first=""
# Metrics are published every 100 ms; up to 3 s on a loaded machine.
for _ in $(seq 1 30); do
  sleep 0.1
  for i in 0 1; do [ "$(metric handshakes_completed $i)" = 1 ] && first=$i; done
  [ -n "$first" ] && break
done
check "one worker served the full handshake" [ -n "$first" ]
other=$((1 - ${first:-0}))
ip netns exec "$NS" curl -s -X POST "http://127.0.0.1:9180/drain?worker=${first:-0}" >/dev/null
out=$(client -sess_in "$DIR.sess")
check "second connection resumes (Reused, TLSv1.3)" bash -c "grep -q '^Reused, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
for _ in $(seq 1 30); do sleep 0.1; [ "$(metric handshakes_resumed $other)" = 1 ] && break; done
check "the resumption was served by the other worker ($other)" [ "$(metric handshakes_resumed $other)" = 1 ]
out=$(client -sess_in "$DIR.sess")
check "the same ticket again gets a full handshake" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
finish resume_tap

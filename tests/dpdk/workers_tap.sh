#!/usr/bin/env bash
# Two workers over net_tap: a 50 MiB curl download keeps going while the
# worker serving it is drained through the admin endpoint; the connection
# moves to the other worker (take-and-purge through the session table) and
# the bytes arrive whole.
set -uo pipefail
here=$(dirname "$0"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
NS=baton-wk-$$
DIR=/tmp/baton-wk-$$
VIP=198.18.0.2
trap 'stop_demo; ip netns del $NS 2>/dev/null; rm -rf $DIR $DIR.out $DIR.sha' EXIT
start_demo "$BATON" "$NS" "$DIR" --workers 2 || { echo "workers_tap: 0 passed, 1 failed"; exit 1; }
metric() { # metric NAME WORKER
  ip netns exec "$NS" curl -s "http://127.0.0.1:9180/metrics" | awk -v m="baton_$1_total{worker=\"$2\"}" '$1 == m {print $2}'
}
n=$((50 << 20))
( timeout 120 ip netns exec "$NS" curl -sS --limit-rate 15M --cacert "$DIR/ca.pem" "https://$VIP/bytes/$n" | sha256sum | cut -d' ' -f1 > "$DIR.sha" ) &
dl=$!
sleep 1.5
w=""
# Up to 5 s more for curl's connection to show (a loaded machine).
for _ in $(seq 1 50); do
  for i in 0 1; do [ "$(metric conns_accepted $i)" = 1 ] && w=$i; done
  [ -n "$w" ] && break
  sleep 0.1
done
check "the download is served by one worker" [ -n "$w" ]
other=$((1 - ${w:-0}))
check "admin drain accepted" bash -c "ip netns exec $NS curl -s -X POST 'http://127.0.0.1:9180/drain?worker=${w:-0}' | grep -q draining"
held() { # connections worker $1 holds now (the gauge: counting accepts,
  # imports, exports and closes missed handshakes parked between flights,
  # which leave and come back without an export)
  ip netns exec "$NS" curl -s "http://127.0.0.1:9180/metrics" | awk -v m="baton_connections{worker=\"$1\"}" '$1 == m {print $2}'
}
moved=""
for _ in $(seq 1 20); do
  [ "$(held ${w:-0})" = 0 ] && [ "$(held $other)" = 1 ] && { moved=1; break; }
  sleep 0.1
done
check "the connection moved to worker $other within 2 s" [ -n "$moved" ]
[ -n "$moved" ] || ip netns exec "$NS" curl -s "http://127.0.0.1:9180/metrics" | grep -E 'conns_(exported|imported|accepted|closed)|handoff|yield' | grep -v '^#' 
wait $dl
check "the 50 MiB download completes with the right SHA-256" [ "$(cat "$DIR.sha")" = "$(expected_sha $n)" ]
check "new connections are served after the drain" bash -c "timeout 10 ip netns exec $NS curl -sS --cacert $DIR/ca.pem https://$VIP/ | grep -q 'hello from'"
check "frame counters are published on /metrics (regression: always 0)" bash -c "[ \"\$(ip netns exec $NS curl -s http://127.0.0.1:9180/metrics | awk '\$1 ~ /^baton_rx_frames_total/ {s+=\$2} END {print s+0}')\" -gt 0 ]"
out=$(ip netns exec "$NS" curl -s -X POST "http://127.0.0.1:9180/reta?queues=0")
check "POST /reta on net_tap says the PMD cannot update its RETA ($out)" grep -qi "not support" <<<"$out"
parked=$(( $(metric handshakes_checkpointed 0) + $(metric handshakes_checkpointed 1) ))
check "handshakes were parked in the table between flights ($parked; checkpoints are on by default)" [ "$parked" -ge 1 ]
check "no parked handshake was abandoned" [ $(( $(metric handshakes_abandoned 0) + $(metric handshakes_abandoned 1) )) = 0 ]
finish workers_tap

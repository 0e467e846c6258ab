#!/usr/bin/env bash
# A SYN flood from spoofed sources must not lock real clients out: past
# 3/4 of max_connections baton answers with SYN cookies and keeps no state,
# so a real curl still completes (regression: 60 spoofed SYNs used to fill
# the table and block every client for minutes).
set -uo pipefail
here=$(realpath "$(dirname "$0")"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
NS=baton-syn-$$
DIR=/tmp/baton-syn-$$
VIP=198.18.0.2
trap 'stop_demo; ip netns del $NS 2>/dev/null; rm -rf $DIR $DIR.out' EXIT
start_demo "$BATON" "$NS" "$DIR" --max-connections 40 || { echo "synflood: 0 passed, 1 failed"; exit 1; }
metric() { ip netns exec "$NS" curl -s "http://127.0.0.1:9180/metrics" | awk -v m="baton_$1_total{worker=\"0\"}" '$1 == m {print $2}'; }
ip netns exec "$NS" ping -c 1 -W 2 $VIP >/dev/null
mac=$(ip netns exec "$NS" ip neigh show $VIP | awk '{print $5}')
check "baton's MAC is known" [ -n "$mac" ]
check "500 spoofed SYNs sent" bash -c "ip netns exec $NS python3 $here/synflood.py btap0 $mac 500 | grep -q 'sent 500'"
sleep 1
sent=$(metric syn_cookies_sent)
check "SYNs past 3/4 of max_connections got cookies ($sent)" [ "${sent:-0}" -ge 400 ]
check "a real client still gets through during the flood" bash -c "timeout 10 ip netns exec $NS curl -sS --cacert $DIR/ca.pem https://$VIP/ | grep -q 'hello from'"
sleep 0.3 # metrics are published every 100 ms
acc=$(metric syn_cookies_accepted)
check "its connection was rebuilt from a cookie" [ "${acc:-0}" -ge 1 ]
[ "$fail" = 0 ] || ip netns exec "$NS" curl -s http://127.0.0.1:9180/metrics | grep -E "conns_(accepted|closed|refused)|syn_cookies|handshake_timeouts|tcp_no_flow" | grep -v "^#" | grep -v " 0$"
finish synflood

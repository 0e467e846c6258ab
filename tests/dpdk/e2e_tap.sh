#!/usr/bin/env bash
# End to end over net_tap in a network namespace this test creates: real
# curl and openssl s_client through baton's DPDK port, own TCP and TLS, to
# the built-in backend. Usage: e2e_tap.sh [path/to/baton]
set -uo pipefail
here=$(dirname "$0"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
NS=baton-tap-$$
DIR=/tmp/baton-tap-$$
VIP=198.18.0.2
trap 'stop_demo; ip netns del $NS 2>/dev/null; rm -rf $DIR $DIR.out' EXIT
start_demo "$BATON" "$NS" "$DIR" || { echo "e2e_tap: 0 passed, 1 failed"; exit 1; }
CA=$DIR/ca.pem
in_ns() { timeout "${T:-30}" ip netns exec "$NS" "$@"; }

check "curl GET / through baton" bash -c "in_ns() { timeout 30 ip netns exec $NS \"\$@\"; }; in_ns curl -sS --cacert $CA https://$VIP/ | grep -q 'hello from the baton demo backend'"

want=$(expected_sha $((10 << 20)))
got=$(in_ns curl -sS --cacert "$CA" "https://$VIP/bytes/$((10 << 20))" | sha256sum | cut -d' ' -f1)
check "curl 10 MiB download, SHA-256 matches" [ "$got" = "$want" ]
# net_tap must poll, not take a real-time signal per packet (regression:
# those signals cost the main and EAL interrupt threads more CPU than the
# worker in bench/compare's bulk figure). The tap PMD catches the first free
# signal in SIGRTMIN+1..SIGRTMAX-1 (35..63 here); baton leaves none free.
RUN_PID=$(pgrep -P "$DEMO_PID" -f ' run --config' | head -1)
cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' /proc/"${RUN_PID:-0}"/status 2>/dev/null)
check "the tap PMD caught no real-time signal (SigCgt ${cgt:-unknown})" \
  bash -c "[ -n '$cgt' ] && [ \$(( 0x$cgt & 0x7FFFFFFC00000000 )) = 0 ]"

head -c $((4 << 20)) /dev/urandom > "$DIR.up"
want_up=$(sha256sum < "$DIR.up" | cut -d' ' -f1)
got_up=$(in_ns curl -sS --cacert "$CA" --data-binary @"$DIR.up" -H 'Content-Type: application/octet-stream' "https://$VIP/sha256" | tr -d '\n')
check "curl 4 MiB upload, backend SHA-256 matches" [ "$got_up" = "$want_up" ]
rm -f "$DIR.up"

for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
  out=$( (printf 'GET / HTTP/1.1\r\nHost: baton.test\r\nConnection: close\r\n\r\n'; sleep 2) | \
    in_ns openssl s_client -connect $VIP:443 -tls1_3 -ciphersuites $suite -CAfile "$CA" -servername baton.test -ign_eof 2>&1)
  check "openssl s_client -tls1_3 -ciphersuites $suite" bash -c "grep -q 'hello from the baton demo backend' <<<\"\$0\" && grep -q 'Verify return code: 0' <<<\"\$0\" && ! grep -qi 'unexpected eof' <<<\"\$0\"" "$out"
done

for group in X25519 P-256; do
  out=$( (printf 'GET / HTTP/1.1\r\nHost: baton.test\r\nConnection: close\r\n\r\n'; sleep 1) | \
    in_ns openssl s_client -connect $VIP:443 -tls1_3 -groups $group -CAfile "$CA" -ign_eof 2>&1)
  check "openssl s_client -groups $group" grep -q 'hello from the baton demo backend' <<<"$out"
done

# A client that sends garbage instead of a ClientHello gets an alert and a
# close, while a download on another connection keeps going.
n=$((20 << 20))
( in_ns curl -sS --limit-rate 5M --cacert "$CA" "https://$VIP/bytes/$n" | sha256sum | cut -d' ' -f1 > "$DIR.bg" ) &
bg=$!
sleep 1
reply=$(T=10 ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/$VIP/443; printf 'GET / HTTP/1.1\r\n\r\n' >&3; timeout 5 od -An -tx1 <&3" | tr -d ' \n')
# An alert record: content type 21 (0x15), version 0x0303, length 2, level 2 (fatal).
check "garbage instead of ClientHello gets a fatal alert and a close" bash -c "[[ '$reply' == 150303000202* ]]"
wait $bg
check "a download on another connection completes meanwhile" [ "$(cat "$DIR.bg")" = "$(expected_sha $n)" ]
rm -f "$DIR.bg"

stop_demo
check "demo stopped and removed its namespace" bash -c "! ip netns list | grep -qw $NS"
# Regression (fresh-user pass): every run left an empty DPDK runtime
# directory behind.
check "no DPDK runtime directory left behind" bash -c "[ ! -e /var/run/dpdk/baton-$NS ]"
finish e2e_tap

#!/usr/bin/env bash
# Take-and-purge across hosts through Redis (issue 4), with real clients.
#
# One network namespace (created and deleted here) holds a redis-server on
# its loopback (no persistence, ACL users from a file), the built-in HTTP
# backend on 198.18.0.1 and three baton "hosts" A, B and C, each its own
# DPDK process on its own TAP device, all serving the same VIP
# 198.18.0.2 (as behind ECMP/anycast, with the VIP as shared SNAT address).
# Which host gets the VIP's traffic is a /32 route the test switches.
#   - openssl s_client: a ticket from A resumes on B, once; the same ticket
#     again gets a full handshake.
#   - C's ACL user may not take session records: C does a full handshake,
#     and counts the refusal.
#   - a wrong password stops baton at start with a clear error.
#   - curl downloads 50 MiB from A; A is drained mid-transfer (baton
#     drain), the route switches to B; the SHA-256 is right, A holds
#     nothing afterwards.
#   - every key and value in Redis is read while it holds tickets and
#     connections: none of the clients' key-log secrets, nor keys and IVs
#     derived from them, is there.
#   - Redis killed: handshakes still complete (full), no worker loop
#     stalls; after Redis restarts, resumption works again.
set -uo pipefail
here=$(realpath "$(dirname "$0")"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
NS=baton-fleet-$$
DIR=$(mktemp -d /tmp/baton-fleet-XXXX)
VIP=198.18.0.2
KADDR=198.18.0.1
RPORT=6379
pids=()
cleanup() {
  [ -n "${KEEP:-}" ] && cp -r "$DIR" "$KEEP" 2>/dev/null  # KEEP=DIR keeps logs
  kill -9 "${REDIS_PID:-}" 2>/dev/null
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  ip netns exec "$NS" redis-cli -p $RPORT --user admin --pass adminpw shutdown nosave >/dev/null 2>&1
  ip netns del "$NS" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
inns() { ip netns exec "$NS" "$@"; }

ip netns add "$NS" || { echo "fleet_tap: 0 passed, 1 failed"; exit 1; }
inns ip link set lo up
inns ip addr add $KADDR/32 dev lo

# Redis: data never written to disk (the README says why); users from a file.
cat > "$DIR/users.acl" <<ACL
user default off
user admin on >adminpw ~* &* +@all
user hosta on >pw-a ~baton:web:* +getdel +set +del +ping +hello +auth +client
user hostb on >pw-b ~baton:web:* +getdel +set +del +ping +hello +auth +client
user hostc on >pw-c ~baton:web:c:* ~baton:web:a:* +getdel +set +del +ping +hello +auth +client
ACL
start_redis() {
  ip netns exec "$NS" redis-server --bind 127.0.0.1 --port $RPORT --save '' --appendonly no --dir "$DIR" \
    --aclfile "$DIR/users.acl" --daemonize no > "$DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    inns redis-cli -p $RPORT --user admin --pass adminpw ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  cat "$DIR/redis.log"; return 1
}
check "redis-server starts in the namespace" start_redis

ip netns exec "$NS" "$BATON" backend --listen "$KADDR:8080" > "$DIR/backend.log" 2>&1 &
pids+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
  -days 2 -subj /CN=baton.test -addext "subjectAltName=DNS:baton.test" >/dev/null 2>&1
"$BATON" fleet-key > "$DIR/fleet.key"
printf 'pw-a\n' > "$DIR/pw-a"; printf 'pw-b\n' > "$DIR/pw-b"; printf 'pw-c\n' > "$DIR/pw-c"; printf 'not-this-one-7f3a\n' > "$DIR/pw-bad"

config() { # config NAME INDEX USER PWFILE ADMINPORT
  cat > "$DIR/$1.toml" <<TOML
[dpdk]
vdevs = ["net_tap0,iface=btap$1"]
port = "net_tap0"
file_prefix = "baton-fleet-$1-$$"
memory_mb = 256
[listen]
address = "$VIP"
port = 443
prefix_len = 24
[tls]
cert = "cert.pem"
key = "key.pem"
alpn = ["http/1.1"]
[backend]
servers = ["$KADDR:8080"]
[workers]
count = 1
slow_path_threads = 1
[admin]
listen = "127.0.0.1:$5"
[repository]
url = "redis://127.0.0.1:$RPORT"
username = "$3"
password_file = "$DIR/$4"
frontend = "web"
timeout_ms = 5
[fleet]
key_file = "$DIR/fleet.key"
host_index = $2
hosts = 3
TOML
}
start_host() { # start_host NAME  -> waits for its TAP
  # Not through `inns`: $! must be baton's own pid (ip netns exec execs it).
  ip netns exec "$NS" "$BATON" run --config "$DIR/$1.toml" > "$DIR/$1.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 1 150); do
    inns ip link show "btap$1" >/dev/null 2>&1 && { inns ip link set "btap$1" up; sleep 0.5; return 0; }
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  echo "host $1 did not come up:"; cat "$DIR/$1.log"; return 1
}
route_to() { inns ip route replace $VIP/32 dev "btap$1"; inns ip neigh flush dev "btap$1" 2>/dev/null; }
metric() { # metric ADMINPORT NAME -> sum over workers
  inns curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '{ split($1, a, "{"); if (a[1] == m) s += $2 } END { print s + 0 }'
}
nclient=0
client() { # client EXTRA-ARGS...  (output kept in $DIR/client-N.out)
  nclient=$((nclient+1))
  (printf 'GET / HTTP/1.1\r\nHost: baton.test\r\n\r\n'; sleep 1) | \
    timeout 10 ip netns exec "$NS" openssl s_client -connect $VIP:443 -tls1_3 -CAfile "$DIR/cert.pem" \
      -servername baton.test -ign_eof -keylogfile "$DIR/openssl.keys" "$@" 2>&1 | tee "$DIR/client-$nclient.out"
}

# A wrong password: a clear error at start, not a running host.
config bad 0 hosta pw-bad 9189
timeout 20 ip netns exec "$NS" "$BATON" run --config "$DIR/bad.toml" > "$DIR/bad.log" 2>&1
rc=$?
check "wrong Redis password: baton exits at start (rc $rc)" [ "$rc" != 0 ] && [ "$rc" != 124 ]
check "wrong Redis password: the error names the user and says authentication" \
  bash -c "grep -qi 'hosta' '$DIR/bad.log' && grep -Eqi 'auth|password' '$DIR/bad.log'"
check "wrong Redis password: the password is not in the log" bash -c "! grep -q not-this-one '$DIR/bad.log'"

config A 0 hosta pw-a 9181; config B 1 hostb pw-b 9182; config C 2 hostc pw-c 9183
check "host A starts" start_host A
check "host B starts" start_host B
check "host C starts" start_host C

# 1. A ticket from A resumes on B, once.
route_to A
out=$(client -sess_out "$DIR/t1.sess")
check "A: full handshake and a response" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
sleep 0.3
check "A put its ticket into the repository" [ "$(metric 9181 baton_fleet_tickets_put_total)" -ge 1 ]
check "Redis holds the ticket sealed: no key-log secret in any key or value" \
  inns python3 "$here/redis_scan.py" 127.0.0.1 $RPORT admin adminpw "$DIR/openssl.keys" --min-keys 1
route_to B
out=$(client -sess_in "$DIR/t1.sess")
check "B resumes A's ticket (Reused, TLSv1.3)" bash -c "grep -q '^Reused, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
sleep 0.3
check "B took the session from the repository" [ "$(metric 9182 baton_fleet_sessions_found_total)" = 1 ]
out=$(client -sess_in "$DIR/t1.sess")
check "the same ticket again (on B) gets a full handshake" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\"" "$out"
route_to A
out=$(client -sess_in "$DIR/t1.sess")
check "the same ticket again (on A) gets a full handshake" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\"" "$out"

# 2. Authorization: C may not take session records.
out=$(client -sess_out "$DIR/t2.sess")
route_to C
out=$(client -sess_in "$DIR/t2.sess")
check "C (ACL without session records) gets a full handshake" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
sleep 0.3
check "C counted the refused take" [ "$(metric 9183 baton_repository_refused_total)" -ge 1 ]
check "C logged the refusal" grep -qi "refused\|NOPERM\|no permission" "$DIR/C.log"

# 3. Drain A mid-download; the route moves to B.
route_to A
N=$((50 * 1024 * 1024))
want=$(expected_sha $N)
( SSLKEYLOGFILE="$DIR/curl.keys" timeout 120 ip netns exec "$NS" curl -s --cacert "$DIR/cert.pem" --resolve baton.test:443:$VIP \
    --limit-rate 8M "https://baton.test/bytes/$N" | sha256sum | cut -d' ' -f1 > "$DIR/got.sha" ) &
cpid=$!
for _ in $(seq 1 50); do [ "$(metric 9181 baton_bytes_backend_to_client_total)" -gt 8000000 ] && break; sleep 0.2; done
check "the download is under way on A" [ "$(metric 9181 baton_connections)" -ge 1 ]
check "baton drain (host A) is accepted" inns "$BATON" drain --admin 127.0.0.1:9181
moved=no
for _ in $(seq 1 20); do [ "$(metric 9181 baton_connections)" = 0 ] && { moved=yes; break; }; sleep 0.1; done
check "A holds no connection within 2 s of the drain" [ $moved = yes ]
check "A exported the connection into the repository" [ "$(metric 9181 baton_fleet_conns_exported_total)" -ge 1 ]
check "Redis holds the connection sealed: no key-log secret (curl, openssl) in any key or value" \
  inns python3 "$here/redis_scan.py" 127.0.0.1 $RPORT admin adminpw "$DIR/curl.keys" "$DIR/openssl.keys" --min-keys 1
route_to B
wait $cpid
check "the 50 MiB download completes with the right SHA-256" [ "$(cat "$DIR/got.sha")" = "$want" ]
check "B imported the connection from the repository" [ "$(metric 9182 baton_fleet_conns_imported_total)" -ge 1 ]
check "A holds nothing for it afterwards" [ "$(metric 9181 baton_connections)" = 0 ]
inns "$BATON" drain --admin 127.0.0.1:9181 --undo >/dev/null

# 4. Redis killed: full handshakes, no stall; resumption after it returns.
route_to B
out=$(client -sess_out "$DIR/t3.sess")
before=$(metric 9182 baton_fleet_sessions_found_total)
kill -9 $REDIS_PID; wait $REDIS_PID 2>/dev/null
sleep 1.5
# Regression: without traffic nothing noticed, and a drain was accepted and
# then exported and re-imported every connection on every poll.
check "Redis down: A notices without traffic (heartbeat)" [ "$(metric 9181 baton_repository_up)" = 0 ]
check "Redis down: a host drain is refused" bash -c "! ip netns exec $NS $BATON drain --admin 127.0.0.1:9181"
out=$(client -sess_in "$DIR/t3.sess")
check "Redis down: the handshake completes (full)" bash -c "grep -q '^New, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"
for i in 1 2 3; do client >/dev/null; done
check "Redis down: B says the repository is down" [ "$(metric 9182 baton_repository_up)" = 0 ]
maxloop=$(metric 9182 baton_loop_iteration_max_microseconds)
check "Redis down: no worker loop iteration over 50 ms (max $maxloop us)" [ "$maxloop" -lt 50000 ]
check "Redis restarts" start_redis
sleep 1
out=$(client -sess_out "$DIR/t4.sess")
sleep 0.5
out=$(client -sess_in "$DIR/t4.sess")
check "after Redis restarts, a ticket resumes again" bash -c "grep -q '^Reused, TLSv1.3' <<<\"\$0\"" "$out"
check "B reconnected to Redis" [ "$(metric 9182 baton_repository_up)" = 1 ]

# 5. A host that dies loses its live connections, but the sessions it
# issued stay resumable on the others (they are in Redis, not on it).
route_to A
out=$(client -sess_out "$DIR/t5.sess")
sleep 0.3
kill -9 "${pids[1]}"   # host A (pids: backend, A, B, C)
route_to B
out=$(client -sess_in "$DIR/t5.sess")
check "host A killed: a ticket A issued resumes on B" bash -c "grep -q '^Reused, TLSv1.3' <<<\"\$0\" && grep -q 'hello from' <<<\"\$0\"" "$out"

for h in A B C; do
  check "host $h: no panic" bash -c "! grep -qi panick '$DIR/$h.log'"
done
if [ "$fail" != 0 ]; then
  for h in A B C; do echo "--- $h.log"; tail -40 "$DIR/$h.log"; done
fi
finish fleet_tap

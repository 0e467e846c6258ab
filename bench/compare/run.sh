#!/usr/bin/env bash
# bench/compare/run.sh: baton, nginx (stream + ssl) and HAProxy (mode tcp +
# ssl) side by side, one after the other, against the same load generator
# (target/release/examples/loadgen: kernel sockets + rustls), the same
# ECDSA P-256 certificate, the same backend (`baton backend`), the same
# cores (server on SERVER_CORE, client and backends on CLIENT_CORE).
#
# Topology (all in network namespaces this script creates and removes;
# addresses from 198.18.0.0/15):
#   baton: namespace A: kernel side of baton's net_tap port 198.18.0.1
#          (loadgen + backends), baton 198.18.0.2:443.
#   peers: namespace S (server 198.18.1.2:443) --veth, MTU 1500--
#          namespace C (loadgen + backends, 198.18.1.1).
# So every server's client and backend traffic crosses a virtual device.
#
# Usage (root): bench/compare/run.sh [--smoke] [--servers "baton nginx haproxy"]
#   --smoke: a tiny workload (seconds), peers skipped if not installed
#            (no apt-get); used by bench/smoke.sh.
# Knobs (environment): T_HS T_LAT T_BULK BULK_BYTES IDLE_CONNS IDLE_HOLD
#   THREADS SERVER_CORE CLIENT_CORE NBACKENDS BATON LOADGEN BATON_IDLE_SLEEP_US KEEP=1
# Output: one table on stdout; raw results in $OUT/results.tsv.
set -uo pipefail
ROOT=$(realpath "$(dirname "$0")/../..")
. "$ROOT/bench/compare/lib.sh"

SMOKE=0
SERVERS="baton nginx haproxy"
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SMOKE=1 ;;
    --servers) SERVERS=$2; shift ;;
    *) echo "usage: $0 [--smoke] [--servers LIST]"; exit 2 ;;
  esac
  shift
done
if [ $SMOKE = 1 ]; then
  : "${T_HS:=1}" "${T_LAT:=1}" "${T_BULK:=1}" "${BULK_BYTES:=$((1 << 20))}" "${IDLE_CONNS:=40}" "${IDLE_HOLD:=0.5}" "${NBACKENDS:=1}"
fi
T_HS=${T_HS:-10}            # seconds of handshakes (and of resumed)
T_LAT=${T_LAT:-5}           # seconds of kept-alive small requests
T_BULK=${T_BULK:-10}        # seconds of bulk downloads
BULK_BYTES=${BULK_BYTES:-$((64 << 20))}
IDLE_CONNS=${IDLE_CONNS:-2000}
IDLE_HOLD=${IDLE_HOLD:-3}
THREADS=${THREADS:-4}
SERVER_CORE=${SERVER_CORE:-1}
CLIENT_CORE=${CLIENT_CORE:-0}
# The built-in backend serves at most 512 connections per process, so the
# idle test spreads over several (round robin in every server).
NBACKENDS=${NBACKENDS:-5}
BATON=$(realpath "${BATON:-$ROOT/target/release/baton}")
LOADGEN=$(realpath "${LOADGEN:-$ROOT/target/release/examples/loadgen}")
HZ=$(getconf CLK_TCK)

[ "$(id -u)" = 0 ] || { echo "bench/compare: needs root (namespaces, DPDK)"; exit 2; }
[ -x "$BATON" ] || { echo "bench/compare: no $BATON (cargo build --release)"; exit 2; }
[ -x "$LOADGEN" ] || { echo "bench/compare: no $LOADGEN (cargo build --release --example loadgen)"; exit 2; }
if [ $SMOKE = 0 ]; then
  install_peers || exit 1
fi
have_nginx() { command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_stream_module.so ]; }
have_haproxy() { command -v haproxy >/dev/null; }

OUT=$(mktemp -d /tmp/baton-compare-XXXX)
NS_A=bcmp-$$-a; NS_S=bcmp-$$-s; NS_C=bcmp-$$-c
PIDS_BG=()
cleanup() {
  for p in "${PIDS_BG[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS_BG[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for n in $NS_A $NS_S $NS_C; do ip netns del "$n" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null
FAILED=0
RES=$OUT/results.tsv; : > "$RES"
put() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RES"; }
log() { echo "[compare] $*" >&2; }

# --- certificate: one CA, one ECDSA P-256 leaf for every server.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$OUT/ca.key" -out "$OUT/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=baton.test \
  -keyout "$OUT/key.pem" -out "$OUT/leaf.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:baton.test,IP:198.18.0.2,IP:198.18.1.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$OUT/ext.cnf"
openssl x509 -req -in "$OUT/leaf.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial -days 2 \
  -extfile "$OUT/ext.cnf" -out "$OUT/cert.pem" >/dev/null 2>&1
cat "$OUT/cert.pem" "$OUT/key.pem" > "$OUT/haproxy.pem"
[ -s "$OUT/cert.pem" ] || { echo "bench/compare: certificate generation failed"; exit 1; }

# --- accounting helpers
cpu_ticks() { # utime+stime of every thread of the given processes
  local t=0 p f
  for p in "$@"; do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo $t
}
proc_status_kb() { # FIELD PIDS...: sum of a /proc/PID/status field in kB
  local k=$1 s=0 p v; shift
  for p in "$@"; do
    v=$(awk -v k="$k:" '$1==k{print $2}' "/proc/$p/status" 2>/dev/null)
    s=$((s + ${v:-0}))
  done
  echo $s
}
core_busy_ticks() { # busy ticks of one core (all processes, irq and softirq included)
  awk -v c="cpu$1" '$1==c{print $2+$3+$4+$7+$8+$9}' /proc/stat
}
now() { date +%s.%N; }
thread_ticks() { # PIDS...: "pid/comm ticks" per thread (utime+stime)
  local t f p
  for p in "$@"; do for t in /proc/$p/task/*; do
    f=$(cat "$t/stat" 2>/dev/null) || continue
    f=${f##*) }
    echo "$p/$(tr ' ' '_' < "$t/comm") $(echo "$f" | awk '{print $12 + $13}')"
  done; done
}
field() { # field KEY LINE
  sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}

# measure SERVER MODE LOADGEN-ARGS...: runs loadgen in the client namespace,
# server CPU from /proc (all its processes/threads) before and after.
measure() {
  local srv=$1 mode=$2; shift 2
  local c0 c1 b0 b1 k0 k1 t0 t1 line rc
  local th0; th0=$(thread_ticks $SPIDS)
  c0=$(cpu_ticks $SPIDS); b0=$(core_busy_ticks $SERVER_CORE); k0=$(core_busy_ticks $CLIENT_CORE); t0=$(now)
  ip netns exec "$CNS" taskset -c "$CLIENT_CORE" "$LOADGEN" "$mode" --addr "$ADDR" --ca "$OUT/ca.pem" --threads "$THREADS" "$@" \
    > "$OUT/$srv.$mode.out" 2> "$OUT/$srv.$mode.err"
  rc=$?
  c1=$(cpu_ticks $SPIDS); b1=$(core_busy_ticks $SERVER_CORE); k1=$(core_busy_ticks $CLIENT_CORE); t1=$(now)
  line=$(grep '^result ' "$OUT/$srv.$mode.out" | tail -1)
  record "$srv" "$mode" "$rc" "$line" "$c0" "$c1" "$t0" "$t1" "$b0" "$b1" "$k0" "$k1"
  # Where the server's CPU went, per thread (name: seconds).
  put "$srv" "$mode.threads" "$(join <(echo "$th0" | sort) <(thread_ticks $SPIDS | sort) |
    awk -v hz=$HZ '{d=($3-$2)/hz; if (d>0.005) printf "%s %.2f s, ", $1, d}' | sed 's/, $//')"
}
record() {
  local srv=$1 mode=$2 rc=$3 line=$4 c0=$5 c1=$6 t0=$7 t1=$8 b0=$9 b1=${10} k0=${11} k1=${12}
  local wall scpu
  wall=$(echo "$t1 - $t0" | bc -l); scpu=$(echo "($c1 - $c0) / $HZ" | bc -l)
  put "$srv" "$mode.line" "$line"
  put "$srv" "$mode.server_cpu" "$scpu"
  put "$srv" "$mode.wall" "$wall"
  put "$srv" "$mode.server_core_busy" "$(echo "($b1 - $b0) / $HZ / $wall" | bc -l)"
  put "$srv" "$mode.client_core_busy" "$(echo "($k1 - $k0) / $HZ / $wall" | bc -l)"
  if [ "$rc" != 0 ] || [ "$(field status "$line")" != ok ]; then
    FAILED=1
    log "$srv $mode FAILED (rc $rc): $line"
    sed 's/^/    /' "$OUT/$srv.$mode.err" | grep -i 'failure' | head -5 >&2
  else
    log "$srv $mode: $line; server cpu $(printf %.2f "$scpu") s in $(printf %.2f "$wall") s"
  fi
}

# idle SERVER: K connections held; server RSS before and during.
measure_idle() {
  local srv=$1 before during hwm line rc c0 c1 t0 t1 b0 b1 k0 k1
  before=$(proc_status_kb VmRSS $SPIDS)
  c0=$(cpu_ticks $SPIDS); b0=$(core_busy_ticks $SERVER_CORE); k0=$(core_busy_ticks $CLIENT_CORE); t0=$(now)
  ip netns exec "$CNS" taskset -c "$CLIENT_CORE" "$LOADGEN" idle --addr "$ADDR" --ca "$OUT/ca.pem" --threads "$THREADS" \
    --conns "$IDLE_CONNS" --hold "$IDLE_HOLD" --seconds 120 > "$OUT/$srv.idle.out" 2> "$OUT/$srv.idle.err" &
  local lp=$!
  for _ in $(seq 1 1200); do
    grep -q '^idle ready' "$OUT/$srv.idle.out" 2>/dev/null && break
    kill -0 $lp 2>/dev/null || break
    sleep 0.1
  done
  sleep "$(echo "$IDLE_HOLD / 2" | bc -l)"
  during=$(proc_status_kb VmRSS $SPIDS); hwm=$(proc_status_kb VmHWM $SPIDS)
  wait $lp; rc=$?
  c1=$(cpu_ticks $SPIDS); b1=$(core_busy_ticks $SERVER_CORE); k1=$(core_busy_ticks $CLIENT_CORE); t1=$(now)
  line=$(grep '^result ' "$OUT/$srv.idle.out" | tail -1)
  record "$srv" idle "$rc" "$line" "$c0" "$c1" "$t0" "$t1" "$b0" "$b1" "$k0" "$k1"
  put "$srv" idle.rss_before_kb "$before"
  put "$srv" idle.rss_during_kb "$during"
  put "$srv" idle.hwm_kb "$hwm"
  put "$srv" idle.ready "$(sed -n 's/^idle ready //p' "$OUT/$srv.idle.out")"
  log "$srv idle: RSS ${before} kB before, ${during} kB with $(sed -n 's/^idle ready //p' "$OUT/$srv.idle.out") connections open (VmHWM ${hwm} kB)"
}

wait_ready() { # until one handshake + GET succeeds (max ~10 s)
  for _ in $(seq 1 20); do
    ip netns exec "$CNS" "$LOADGEN" handshakes --addr "$ADDR" --ca "$OUT/ca.pem" --threads 1 --max 1 --seconds 5 >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# run_suite SERVER: each measurement against a freshly started server
# (start_SERVER / stop_SERVER), so no figure inherits another's state.
# RESTART=0 runs them all against one server process instead.
run_suite() {
  local srv=$1 m
  if [ "${RESTART:-1}" = 0 ]; then "start_$srv" || return 1; fi
  for m in handshakes resumed latency bulk idle; do
    if [ "${RESTART:-1}" != 0 ]; then "start_$srv" || return 1; fi
    case $m in
      handshakes) measure "$srv" handshakes --seconds "$T_HS" ;;
      resumed) measure "$srv" resumed --seconds "$T_HS" ;;
      latency) measure "$srv" latency --seconds "$T_LAT" --max 200000 ;;
      bulk) measure "$srv" bulk --seconds "$T_BULK" --bytes "$BULK_BYTES" --max 10000 ;;
      idle) measure_idle "$srv" ;;
    esac
    if [ "${RESTART:-1}" != 0 ]; then "stop_$srv" "$m" || return 1; fi
  done
  if [ "${RESTART:-1}" = 0 ]; then "stop_$srv" all || return 1; fi
  put "$srv" loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
}

start_backends() { # NS IP
  local i
  for i in $(seq 0 $((NBACKENDS - 1))); do
    ip netns exec "$1" taskset -c "$CLIENT_CORE" "$BATON" backend --listen "$2:$((8080 + i))" > "$OUT/backend-$1-$i.log" 2>&1 &
    PIDS_BG+=($!)
  done
}
backend_list() { # IP STYLE: the backends as baton (toml), nginx or haproxy config lines
  local i a out=""
  for i in $(seq 0 $((NBACKENDS - 1))); do
    a=$1:$((8080 + i))
    case $2 in
      toml) out="$out${out:+, }\"$a\"" ;;
      nginx) out="$out    server $a;"$'\n' ;;
      haproxy) out="$out  server b$i $a"$'\n' ;;
    esac
  done
  printf '%s' "$out"
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
client_sysctls() { # NS: many short connections from one client address
  ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1
}

# --- baton on net_tap in namespace A
setup_baton_net() {
  [ -n "${BATON_NET:-}" ] && return 0
  ip netns add $NS_A && ip -n $NS_A link set lo up || return 1
  client_sysctls $NS_A
  cat > "$OUT/baton.toml" <<TOML
[dpdk]
vdevs = ["net_tap0,iface=btap0"]
port = "net_tap0"
file_prefix = "bcmp-$$"
memory_mb = 512
[listen]
address = "198.18.0.2"
port = 443
prefix_len = 24
[tls]
cert = "$OUT/cert.pem"
key = "$OUT/key.pem"
alpn = ["http/1.1"]
[backend]
servers = [$(backend_list 198.18.0.1 toml)]
[workers]
count = 1
cores = [$SERVER_CORE]
${BATON_IDLE_SLEEP_US:+idle_sleep_us = $BATON_IDLE_SLEEP_US}
TOML
  BATON_NET=1
}
start_baton() {
  setup_baton_net || return 1
  CNS=$NS_A; ADDR=198.18.0.2:443
  ip netns exec $NS_A taskset -c "$SERVER_CORE" "$BATON" run --config "$OUT/baton.toml" > "$OUT/baton.log" 2>&1 &
  BP=$!; PIDS_BG+=($BP)
  for _ in $(seq 1 200); do ip -n $NS_A link show btap0 >/dev/null 2>&1 && break; kill -0 $BP 2>/dev/null || break; sleep 0.1; done
  ip -n $NS_A addr add 198.18.0.1/24 dev btap0 && ip -n $NS_A link set btap0 up || { log "baton did not come up"; cat "$OUT/baton.log" >&2; return 1; }
  # Backends bind the kernel-side address, which exists once the TAP does.
  local n0=${#PIDS_BG[@]}
  start_backends $NS_A 198.18.0.1
  BATON_BACKENDS=("${PIDS_BG[@]:$n0}")
  SPIDS=$BP
  wait_ready || { log "baton does not answer"; tail -20 "$OUT/baton.log" >&2; return 1; }
}
stop_baton() { # MODE
  stop_pid $BP
  local p; for p in "${BATON_BACKENDS[@]}"; do stop_pid "$p"; done
  cp "$OUT/baton.log" "$OUT/baton.$1.log"
  grep -E 'stopping, closing|worker 0 (stopped|drops|io)|mbufs in use|panic|ERROR' "$OUT/baton.log" | sed "s/^.*\] /    baton after $1: /" >&2
  grep -q 'baton stopped' "$OUT/baton.log" || { log "baton: no clean stop (no 'baton stopped' in its log)"; FAILED=1; }
  # The count is taken after port stop but before the port is closed, so
  # net_tap's pre-filled RX ring (up to its descriptor count) still shows.
  local inuse; inuse=$(sed -n 's/.*mbufs in use at stop: \([0-9]*\).*/\1/p' "$OUT/baton.log")
  [ "${inuse:-0}" -le 1024 ] || { log "baton: $inuse mbufs in use at stop (more than net_tap's RX ring)"; FAILED=1; }
  # Connections baton still held when told to stop, with no client left.
  put baton "$1.open_at_stop" "$(sed -n 's/.*stopping, closing \([0-9]*\) connections.*/\1/p' "$OUT/baton.log" | head -1)"
  put baton "$1.time_wait_at_stop" "$(sed -n 's/.*stopping, closing [0-9]* connections (\([0-9]*\) of them in TIME_WAIT).*/\1/p' "$OUT/baton.log" | head -1)"
  # A fresh namespace for the next start: the kernel side (client and
  # backends) would otherwise keep TIME_WAIT/FIN_WAIT_2 sockets on the
  # 4-tuples a restarted baton reuses first (its backend source ports start
  # at the same place every run), which costs 1 s SYN retransmissions.
  ip netns del $NS_A 2>/dev/null; BATON_NET=""
  return 0
}

# --- peers: namespaces S and C joined by a veth pair at MTU 1500
setup_peer_net() {
  [ -n "${PEER_NET:-}" ] && return 0
  ip netns add $NS_S && ip netns add $NS_C || return 1
  ip -n $NS_S link set lo up; ip -n $NS_C link set lo up
  ip link add bcmp$$s netns $NS_S type veth peer name bcmp$$c netns $NS_C || return 1
  ip -n $NS_S link set bcmp$$s mtu 1500 up; ip -n $NS_C link set bcmp$$c mtu 1500 up
  ip -n $NS_S addr add 198.18.1.2/24 dev bcmp$$s; ip -n $NS_C addr add 198.18.1.1/24 dev bcmp$$c
  client_sysctls $NS_C; client_sysctls $NS_S
  start_backends $NS_C 198.18.1.1
  PEER_NET=1
}

start_nginx() {
  setup_peer_net || return 1
  CNS=$NS_C; ADDR=198.18.1.2:443
  mkdir -p "$OUT/nginx"
  cat > "$OUT/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 8000; }
stream {
  upstream backend {
$(backend_list 198.18.1.1 nginx)
  }
  server {
    listen 198.18.1.2:443 ssl;
    ssl_certificate $OUT/cert.pem;
    ssl_certificate_key $OUT/key.pem;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:bench:10m;
    ssl_session_tickets on;
    proxy_pass backend;
  }
}
CONF
  ip netns exec $NS_S taskset -c "$SERVER_CORE" nginx -p "$OUT/nginx" -e "$OUT/nginx/error.log" -c "$OUT/nginx/nginx.conf" \
    > "$OUT/nginx/stdout.log" 2>&1 &
  NP=$!; PIDS_BG+=($NP)
  wait_ready || { log "nginx does not answer"; cat "$OUT/nginx/error.log" "$OUT/nginx/stdout.log" >&2; return 1; }
  SPIDS="$NP $(pgrep -P $NP | tr '\n' ' ')"
  return 0
}
stop_nginx() { stop_pid $NP; }

start_haproxy() {
  setup_peer_net || return 1
  CNS=$NS_C; ADDR=198.18.1.2:443
  cat > "$OUT/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend fe
  bind 198.18.1.2:443 ssl crt $OUT/haproxy.pem
  default_backend be
backend be
  balance roundrobin
$(backend_list 198.18.1.1 haproxy)
CONF
  ip netns exec $NS_S taskset -c "$SERVER_CORE" haproxy -db -f "$OUT/haproxy.cfg" > "$OUT/haproxy.log" 2>&1 &
  HP=$!; PIDS_BG+=($HP)
  wait_ready || { log "haproxy does not answer"; cat "$OUT/haproxy.log" >&2; return 1; }
  SPIDS="$HP $(pgrep -P $HP | tr '\n' ' ')"
  return 0
}
stop_haproxy() { stop_pid $HP; }

RAN=""
for s in $SERVERS; do
  case $s in
    baton) run_suite baton || { FAILED=1; log "baton run failed"; } ; RAN="$RAN baton" ;;
    nginx) if have_nginx; then run_suite nginx || { FAILED=1; log "nginx run failed"; }; RAN="$RAN nginx"
           else log "nginx (with libnginx-mod-stream) not installed: skipped"; fi ;;
    haproxy) if have_haproxy; then run_suite haproxy || { FAILED=1; log "haproxy run failed"; }; RAN="$RAN haproxy"
             else log "haproxy not installed: skipped"; fi ;;
    *) log "unknown server $s"; FAILED=1 ;;
  esac
done

python3 "$ROOT/bench/compare/table.py" "$RES" "$IDLE_CONNS" "$BULK_BYTES" "$THREADS" $RAN
[ $FAILED = 0 ] || { echo "bench/compare: FAILED (see above; raw files kept in $OUT)"; KEEP=1; exit 1; }

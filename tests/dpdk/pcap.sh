#!/usr/bin/env bash
# net_pcap: frames from a pcap file (ARP request, ICMP echo, SYN with
# options, a segment for an unknown flow, malformed frames) go through baton;
# the TX pcap must hold exactly the ARP reply, the echo reply and the SYN-ACK,
# and baton's drop counters must name each malformed frame.
set -uo pipefail
here=$(realpath "$(dirname "$0")"); . "$here/lib.bash"
BATON=$(realpath "${1:-target/release/baton}")
DIR=$(mktemp -d /tmp/baton-pcap-XXXX)
trap 'rm -rf "$DIR"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
  -days 2 -subj /CN=baton.test >/dev/null 2>&1

run_baton() { # run_baton IN OUT SECONDS
  cat > "$DIR/baton.toml" <<TOML
[dpdk]
vdevs = ["net_pcap0,rx_pcap=$1,tx_pcap=$2"]
port = "net_pcap0"
file_prefix = "baton-pcap-$$"
[listen]
address = "198.18.0.2"
[tls]
cert = "cert.pem"
key = "key.pem"
[backend]
servers = ["198.18.0.1:8080"]
TOML
  timeout 30 "$BATON" run --config "$DIR/baton.toml" > "$DIR/baton.log" 2>&1 &
  local pid=$!
  sleep "$3"
  kill -TERM $pid
  wait $pid
}

# First run: learn the port's MAC from the log.
python3 "$here/pcap_frames.py" write "$DIR/empty.pcap"
head -c 24 "$DIR/empty.pcap" > "$DIR/none.pcap"
run_baton "$DIR/none.pcap" "$DIR/none-out.pcap" 2
check "baton starts and stops cleanly on net_pcap" grep -q "stopped" "$DIR/baton.log"
mac=$(grep -o 'mac [0-9a-f:]\{17\}' "$DIR/baton.log" | head -1 | cut -d' ' -f2)
check "baton logs the port's MAC" [ -n "$mac" ]

python3 "$here/pcap_frames.py" write "$DIR/in.pcap" "$mac"
run_baton "$DIR/in.pcap" "$DIR/out.pcap" 3
check "TX pcap holds exactly the ARP reply, the echo reply, the SYN-ACK (and its RST at stop)" python3 "$here/pcap_frames.py" check "$DIR/out.pcap" "$mac"
for reason in tcp_no_flow tcp_bad_checksum ipv4_bad_checksum ipv4_fragment udp_unsupported tcp_bad_data_offset; do
  check "drop counter $reason counted" grep -Eq "\b$reason=[1-9]" "$DIR/baton.log"
done
check "no panic" bash -c "! grep -qi panick '$DIR/baton.log'"
check "mempool back to full after stop (no mbuf leak)" grep -q "mbufs in use at stop: 0" "$DIR/baton.log"
[ "$fail" = 0 ] || { echo "--- baton.log"; cat "$DIR/baton.log"; }
finish pcap

#!/usr/bin/env bash
# DPDK smoke tests: one process per mode (the EAL initialises once per
# process). Needs root (hugepages or --no-huge, TAP, network namespaces).
#   tests/dpdk_smoke.sh            # build, then run null, tap and pcap
#   DPDK_SMOKE_BIN=path tests/dpdk_smoke.sh   # use a prebuilt binary
# Every step is bounded in time; the namespace and temp files are removed on
# exit. Addresses used: 198.18.0.0/15 only, inside the namespace.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "dpdk_smoke: needs root" >&2
    exit 2
fi

BIN=${DPDK_SMOKE_BIN:-}
if [[ -z "$BIN" ]]; then
    timeout 1200 cargo build --bin dpdk-smoke
    BIN="${CARGO_TARGET_DIR:-target}/debug/dpdk-smoke"
fi

NS="bt-smoke-$$-$RANDOM"
IFACE="bts$$"
IFACE=${IFACE:0:15}
TMP=$(mktemp -d /tmp/baton-dpdk-smoke.XXXXXX)
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

fail=0
run_mode() {
    local name=$1
    shift
    echo "=== dpdk-smoke $name"
    if timeout 60 "$@"; then
        echo "=== $name: PASS"
    else
        echo "=== $name: FAIL (rc $?)"
        fail=1
    fi
}

# 1. net_null
run_mode null "$BIN" null

# 1b. net_ring loopback (chains end to end, in-process)
run_mode ring "$BIN" ring

# 2. net_tap inside a fresh namespace
ip netns add "$NS"
ip -n "$NS" link set lo up
run_mode tap ip netns exec "$NS" "$BIN" tap "$IFACE"
ip netns del "$NS"

# 3. net_pcap: frame i has 60+97*i bytes, the last 3000 (a chain on RX),
#    byte j = (7*i + j) mod 256; the binary checks them and echoes them.
N=6
python3 - "$TMP/in.pcap" "$N" <<'PY'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        ln = 3000 if i == n - 1 else 60 + 97 * i
        data = bytes((7 * i + j) % 256 for j in range(ln))
        f.write(struct.pack("<IIII", 1, i, ln, ln))
        f.write(data)
PY
run_mode pcap "$BIN" pcap "$TMP/in.pcap" "$TMP/out.pcap" "$N"
echo "=== pcap output check"
if timeout 20 python3 - "$TMP/in.pcap" "$TMP/out.pcap" <<'PY'
import struct, sys
def frames(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = struct.unpack("<I", hdr[:4])[0]
        end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
        out = []
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return out
            _, _, incl, _ = struct.unpack(end + "IIII", rec)
            out.append(f.read(incl))
a, b = frames(sys.argv[1]), frames(sys.argv[2])
print(f"in {len(a)} frames, out {len(b)} frames")
sys.exit(0 if a == b else 1)
PY
then
    echo "=== pcap output: PASS"
else
    echo "=== pcap output: FAIL"
    fail=1
fi

if [[ $fail -ne 0 ]]; then
    echo "dpdk_smoke: FAILED"
    exit 1
fi
echo "dpdk_smoke: all modes passed"

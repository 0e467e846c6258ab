#!/usr/bin/env bash
# bench/smoke.sh: every benchmark harness for a second or two with a tiny
# workload, so they cannot rot (ci/test calls this; the full runs are for
# people, see bench/README.md). Exits non-zero if any harness fails.
# Peers (nginx, HAProxy) that are not installed are skipped with a message;
# baton's own path always runs. Needs root and DPDK (ci/setup).
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
rc=0
[ -x "$CARGO_TARGET_DIR/release/baton" ] || cargo build --release --locked --bin baton || exit 1
cargo build --release --locked --example loadgen || exit 1
export BATON=$CARGO_TARGET_DIR/release/baton LOADGEN=$CARGO_TARGET_DIR/release/examples/loadgen

echo "== bench smoke: null_rate (1 s)"
timeout 60 bench/null_rate.sh 1 1 || { echo "bench smoke: null_rate FAILED"; rc=1; }

echo "== bench smoke: compare --smoke (baton; nginx and HAProxy if installed)"
timeout 120 bench/compare/run.sh --smoke || { echo "bench smoke: compare FAILED"; rc=1; }

echo "== bench smoke: slowpath (1 s per setting)"
timeout 120 bench/slowpath.sh 1 2 || { echo "bench smoke: slowpath FAILED"; rc=1; }

echo "== bench smoke: replay (recorded workload and 256 KiB bulk downloads, in-process, 0.3 s per phase)"
cargo build --release --locked --example bench-replay || exit 1
timeout 120 bench/replay/run.sh --seconds 0.3 --idle 50 --bulk-bytes 262144 || { echo "bench smoke: replay FAILED"; rc=1; }

echo "== bench smoke: replay --memif (baton run and the replayer as two DPDK processes over net_memif, 0.3 s per phase, 256 KiB bulk)"
timeout 120 bench/replay/run.sh --memif --seconds 0.3 --idle 50 --bulk-bytes 262144 || { echo "bench smoke: replay --memif FAILED"; rc=1; }

echo "== bench smoke: replay --raw (net_pcap, 1 s) and net_null"
timeout 120 bench/replay/run.sh --raw --seconds 1 || { echo "bench smoke: replay --raw FAILED"; rc=1; }

echo "== bench smoke: fleet (redis-server on loopback: 20 handshake rounds, 8 cross-host handoffs)"
timeout 300 cargo bench --locked --bench fleet -- 20 8 || { echo "bench smoke: fleet FAILED"; rc=1; }

[ $rc = 0 ] && echo "bench smoke: ok" || echo "bench smoke: FAILED"
exit $rc

#!/usr/bin/env bash
# The two-node figures of docs/benchmarks.md: one throwaway PostgreSQL, one
# nats-server, nodes a and b (release build), then, interleaved (ABAB):
#   chat   500 visitors at 2,000 msg/s, each chatting on its own node (local)
#          or from the other node than the one running its conversation (hop)
#   fanout 50 visitors on a, 100 dashboards on a (local) or on b (cross-node)
# and chat at 2,000 msg/s with 1,000 visitors on a watched by 2 dashboards on b.
# Reports land in /tmp/chathub-cluster-bench/*.json. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
. scripts/throwaway-postgres.sh
W=/tmp/chathub-cluster-bench; rm -rf $W; mkdir -p $W; chmod 755 $W
throwaway_postgres_start $W 55433
trap 'kill ${NATS:-} ${A:-} ${B:-} 2>/dev/null; throwaway_postgres_stop $W' EXIT
"$(command -v nats-server || echo /usr/sbin/nats-server)" -a 127.0.0.1 -p 54223 > $W/nats.log 2>&1 & NATS=$!
export DATABASE_URL=postgres://chathub@127.0.0.1:55433/chathub NATS_URL=nats://127.0.0.1:54223
export ADMIN_PASSWORD=bench-password-1 WS_MAX_CONNECTIONS_PER_IP=100000 WS_RATE_PER_SEC=100000 WS_RATE_BURST=100000 WS_SEND_QUEUE=4096 VISITOR_NEW_CONVERSATIONS_PER_HOUR=0
NODE_ID=a CHATHUB_BIND=127.0.0.1:18081 target/release/chathub > $W/a.log 2>&1 & A=$!
until curl -sf http://127.0.0.1:18081/health >/dev/null; do sleep 0.2; done
NODE_ID=b CHATHUB_BIND=127.0.0.1:18082 target/release/chathub > $W/b.log 2>&1 & B=$!
until curl -sf http://127.0.0.1:18082/health >/dev/null; do sleep 0.2; done
L=target/release/loadtests
NODES=127.0.0.1:18081,127.0.0.1:18082
for round in 1 2; do
  $L chat --server $NODES --visitors 500 --rate 2000 --duration 10 --server-pid $A,$B --json $W/chat-local-$round.json
  $L chat --server $NODES --hop --visitors 500 --rate 2000 --duration 10 --server-pid $A,$B --json $W/chat-hop-$round.json
  $L fanout --server 127.0.0.1:18081 --dashboard-server 127.0.0.1:18081 --admin-password $ADMIN_PASSWORD --visitors 50 --dashboards 100 --rate 200 --duration 10 --server-pid $A,$B --json $W/fanout-local-$round.json
  $L fanout --server 127.0.0.1:18081 --dashboard-server 127.0.0.1:18082 --admin-password $ADMIN_PASSWORD --visitors 50 --dashboards 100 --rate 200 --duration 10 --server-pid $A,$B --json $W/fanout-cross-$round.json
done
$L fanout --server 127.0.0.1:18081 --dashboard-server 127.0.0.1:18082 --admin-password $ADMIN_PASSWORD --visitors 1000 --dashboards 2 --rate 2000 --duration 10 --server-pid $A,$B --json $W/chat-watched-cross.json

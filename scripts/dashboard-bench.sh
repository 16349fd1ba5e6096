#!/usr/bin/env bash
# The dashboard at scale (docs/benchmarks.md, issue #20): fills a throwaway
# PostgreSQL with SESSIONS conversations and MESSAGES messages over 90 days
# (`loadtests seed`, through the hub's store layer), starts the hub on it and
# times the list, search and stats (`loadtests dashboard`) while visitors
# chat. Loopback only, bounded. Reports land in /tmp/chathub-dashboard-bench/.
# Usage: scripts/dashboard-bench.sh [SESSIONS] [MESSAGES]   (default 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-100000}
messages=${2:-1000000}
cargo build --release --workspace --quiet
. scripts/throwaway-postgres.sh
W=/tmp/chathub-dashboard-bench; rm -rf $W; mkdir -p $W; chmod 755 $W
PG_SETTINGS="-c shared_buffers=512MB -c max_wal_size=4GB" throwaway_postgres_start $W 55434
trap 'kill ${HUB:-} 2>/dev/null; throwaway_postgres_stop $W' EXIT
export DATABASE_URL=postgres://chathub@127.0.0.1:55434/chathub
target/release/loadtests seed --sessions "$sessions" --messages "$messages" --json $W/seed.json
export ADMIN_PASSWORD=bench-password-1 WS_MAX_CONNECTIONS_PER_IP=100000 WS_RATE_PER_SEC=100000 WS_RATE_BURST=100000 VISITOR_NEW_CONVERSATIONS_PER_HOUR=0
CHATHUB_BIND=127.0.0.1:18090 target/release/chathub > $W/hub.log 2>&1 & HUB=$!
until curl -sf http://127.0.0.1:18090/health >/dev/null; do sleep 0.2; done
target/release/loadtests dashboard --server 127.0.0.1:18090 --repeat 20 --json $W/dashboard-$sessions.json

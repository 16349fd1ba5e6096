#!/usr/bin/env bash
# Starts a three-node chathub cluster on this machine to try by hand: one
# PostgreSQL (a throwaway cluster under a temporary directory), one
# nats-server, and nodes a, b and c on ports 8081-8083. Open
#   http://127.0.0.1:8081/demo   (a visitor on node a)
#   http://127.0.0.1:8082/       (the dashboard on node b; user admin)
# then kill a node (its pid is printed) and watch the chat carry on.
# Ctrl-C stops everything and removes the temporary directory.
#
# Needs: PostgreSQL server binaries (initdb, pg_ctl), nats-server, cargo.
# Usage: scripts/cluster-demo.sh [admin-password]   (default: a random one, printed)
set -euo pipefail
cd "$(dirname "$0")/.."

password="${1:-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16)}"
nats="$(command -v nats-server || echo /usr/sbin/nats-server)"
[ -x "$nats" ] || { echo "nats-server not found (Debian: apt-get install nats-server)" >&2; exit 1; }

. scripts/throwaway-postgres.sh
cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-target}/release/chathub"

work="$(mktemp -d /tmp/chathub-cluster-XXXXXX)"
chmod 755 "$work"
pids=()
stop() {
  echo "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  throwaway_postgres_stop "$work"
  rm -rf "$work"
}
trap stop EXIT INT TERM

throwaway_postgres_start "$work" 55432

"$nats" -a 127.0.0.1 -p 54222 >"$work/nats.log" 2>&1 &
pids+=($!)

export DATABASE_URL="postgres://chathub@127.0.0.1:55432/chathub"
export NATS_URL="nats://127.0.0.1:54222"
export ADMIN_PASSWORD="$password"
for node in a b c; do
  port=$((8080 + $(printf '%d' "'$node") - 96))
  NODE_ID="$node" CHATHUB_BIND="127.0.0.1:$port" "$binary" >"$work/$node.log" 2>&1 &
  pids+=($!)
  echo "node $node: http://127.0.0.1:$port  (pid $!, log $work/$node.log)"
  # One at a time: the first creates the schema and the admin.
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done
done
echo "admin password: $password"
echo "Ctrl-C to stop."
wait

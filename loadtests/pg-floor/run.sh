#!/bin/bash
# What PostgreSQL alone costs per stored exchange (a visitor message and the
# agent's reply), on the core the hub would share with it: a throwaway
# cluster migrated by chathub, PostgreSQL pinned to core 0, pgbench to core
# 1, the busy time of core 0 divided by the exchanges stored.
#
#   loadtests/pg-floor/run.sh target/release/chathub [SECONDS]
#
# Prints, for the lookup alone (subtract it), the exchange at full speed, and
# the exchange at 200 and 1000 per second, one per transaction; then three
# exchanges per transaction, 333 transactions a second (the hub's batches at
# fan-out 1000 msg/s), per exchange. Durable commits throughout, as the
# hub's. Needs pgbench and taskset; as root, runs PostgreSQL as the
# `postgres` user. Bounded: five runs of SECONDS (default 15) each.
set -euo pipefail
BIN=$(realpath "$1"); SECONDS_EACH=${2:-15}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/chathub-pg-floor.XXXXXX); chmod 755 "$WORK"
PGDIR=$WORK/postgres
AS=(); [ "$(id -u)" = 0 ] && AS=(runuser -u postgres --)
cleanup() { "${AS[@]}" pg_ctl -D "$PGDIR" stop -m fast >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
cp "$HERE"/*.sql "$WORK"/; chmod 644 "$WORK"/*.sql

CHATHUB_DATA_DIR=$WORK RUST_LOG=warn "$BIN" migrate >/dev/null
PG_BIN=$(dirname "$(command -v postgres || ls -d /usr/lib/postgresql/*/bin/postgres | tail -1)")
"${AS[@]}" taskset -c 0 "$PG_BIN/postgres" -D "$PGDIR" -k "$PGDIR" -p 5432 -c listen_addresses= >"$WORK/pg.log" 2>&1 &
for _ in $(seq 1 60); do "${AS[@]}" psql -h "$PGDIR" -d chathub -Atc 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
"${AS[@]}" psql -h "$PGDIR" -d chathub -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO sessions (id, channel) SELECT gen_random_uuid(), 'web' FROM generate_series(1, 1000);
INSERT INTO session_words (session_id) SELECT id FROM sessions;
CREATE TABLE floor_sessions AS SELECT row_number() OVER () AS n, id FROM sessions;
CREATE UNIQUE INDEX ON floor_sessions (n);
CREATE SEQUENCE floor_seq START 1 INCREMENT 2;
CREATE SEQUENCE floor_seq6 START 1 INCREMENT 6;
SQL

busy() { awk '/^cpu0 / {print $2+$3+$4+$7+$8}' /proc/stat; }
hz=$(getconf CLK_TCK)
measure() { # LABEL SCRIPT EXCHANGES-PER-TRANSACTION [pgbench options]
  local label=$1 script=$2 per=$3; shift 3
  local a b out n
  a=$(busy)
  out=$("${AS[@]}" taskset -c 1 pgbench -h "$PGDIR" -n -M prepared -c 1 -T "$SECONDS_EACH" "$@" -f "$WORK/$script" chathub 2>&1)
  b=$(busy)
  n=$(echo "$out" | awk '/number of transactions actually processed/ {split($NF, t, "/"); print t[1]}')
  echo "$out" | grep -iE 'error|abort' | head -3 >&2 || true
  awk -v l="$label" -v n="$((n * per))" -v d=$((b - a)) -v hz="$hz" 'BEGIN {printf "%-28s %8d done  %6.0f µs of core 0 each\n", l, n, d / hz * 1e6 / n}'
}
measure "lookup alone" lookup.sql 1
measure "exchange, full speed" exchange.sql 1
measure "exchange, 1000/s" exchange.sql 1 -R 1000
measure "exchange, 200/s" exchange.sql 1 -R 200
measure "3 per transaction, 1000/s" batch3.sql 3 -R 333

# Sourced by the demo and benchmark scripts: a throwaway PostgreSQL cluster.
#   throwaway_postgres_start DIR PORT   creates and starts it (database `chathub`,
#                                      user `chathub`, trust auth, 127.0.0.1 only)
#   throwaway_postgres_stop DIR         stops it
# As root, PostgreSQL runs as the `postgres` user.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pg_bin" ] || pg_bin=$(dirname "$(command -v pg_ctl)")

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

throwaway_postgres_start() {
  local dir=$1 port=$2
  mkdir -p "$dir/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pg"; fi
  as_pg "$pg_bin/initdb" -D "$dir/pg" -U chathub --auth=trust >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg/log" -w start \
    -o "-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_SETTINGS:-}" >/dev/null
  as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U chathub chathub
}

throwaway_postgres_stop() {
  as_pg "$pg_bin/pg_ctl" -D "$1/pg" -m fast stop >/dev/null 2>&1 || true
}

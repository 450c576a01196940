#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks:
#   scripts/postgres-server.sh DIR PORT PASSWORD
# creates a cluster in DIR (superuser `sluice`, password auth over TCP) and runs the server in
# the foreground on 127.0.0.1:PORT until it is killed. As root it runs as the `postgres` user,
# since the server refuses to run as root. Needs Debian's `postgresql` package.
set -euo pipefail
dir=$1 port=$2 password=$3
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$dir"
printf '%s' "$password" > "$dir/pw"
run=()
if [ "$(id -u)" = 0 ]; then
  chown -R postgres:postgres "$dir"
  run=(runuser -u postgres --)
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U sluice --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$dir/pw" >/dev/null
fi
exec "${run[@]}" "$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
  -c fsync=off -c max_connections=50

#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks:
#   scripts/postgres-server.sh DIR PORT PASSWORD [TLS_DIR]
# creates a cluster in DIR (superuser `sluice`, password auth over TCP) and runs the server in
# the foreground on 127.0.0.1:PORT until it is killed. With TLS_DIR (holding server.crt and
# server.key) it accepts TLS connections only. As root it runs as the `postgres` user, since
# the server refuses to run as root. Needs Debian's `postgresql` package.
set -euo pipefail
dir=$1 port=$2 password=$3 tls=${4:-}
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
extra=()
if [ -n "$tls" ]; then
  cp "$tls/server.crt" "$tls/server.key" "$dir/"
  chmod 600 "$dir/server.key"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/server.crt" "$dir/server.key"
  # TLS only: plain TCP connections find no pg_hba line and are refused.
  printf 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n' > "$dir/data/pg_hba.conf"
  extra=(-c ssl=on -c "ssl_cert_file=$dir/server.crt" -c "ssl_key_file=$dir/server.key")
fi
exec "${run[@]}" "$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
  -c fsync=off -c max_connections=50 "${extra[@]}"

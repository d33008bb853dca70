#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `postgres.sh start DIR` creates one in DIR, listening
# on a Unix socket in DIR, and prints its libpq connection string; `postgres.sh stop DIR` stops it
# and removes DIR. Run as root, the cluster runs as the `postgres` user (initdb refuses root); the
# socket directory is 0700, so trust authentication on it lets no other user in. It also listens
# on a loopback TCP port for TLS only (a certificate from a CA made here, DIR/tls/ca.pem; a random
# password; plain TCP refused): DIR/tls.url holds that connection string (it::database_tls).
set -euo pipefail
cmd="${1:?start|stop}"
dir="${2:?directory}"
bin="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)"
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (Debian package postgresql)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    chmod 0700 "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # TLS on loopback: a CA and a server certificate for 127.0.0.1 and localhost.
    tls="$dir/tls"
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=test database CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
      -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
      -extfile "$tls/san.ext" -out "$tls/server.pem" 2>/dev/null
    chmod 0600 "$tls/server.key" "$tls/ca.key"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$tls"
    # The socket as before; TCP only with TLS and a password.
    printf 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all all reject\n' \
      >"$dir/data/pg_hba.conf"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # fsync off: a test cluster is thrown away, and the tests' speed is not PostgreSQL's.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 -c ssl=on \
-c ssl_cert_file=$tls/server.pem -c ssl_key_file=$tls/server.key" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    password="$(openssl rand -hex 16)"
    as_owner "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres \
      -c "ALTER USER postgres PASSWORD '$password'" >/dev/null
    echo "host=127.0.0.1 port=$port user=postgres password=$password dbname=postgres" >"$dir/tls.url"
    echo "host=$dir port=$port user=postgres dbname=postgres"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) echo "usage: postgres.sh start|stop DIR" >&2; exit 2 ;;
esac

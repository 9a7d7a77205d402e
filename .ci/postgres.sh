#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests and the benchmark: initdb and pg_ctl as an
# unprivileged user (`nobody` when run as root, as CI is) in a temp dir, on a free port,
# listening on 127.0.0.1 only.
#
#   eval "$(.ci/postgres.sh start)"   # exports HERALD_TEST_PG_URL, HERALD_TEST_PG_DIR and
#                                     # HERALD_TEST_PG_CA (the CA of its TLS certificate)
#   .ci/postgres.sh stop "$HERALD_TEST_PG_DIR"
set -euo pipefail

bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return
  fi
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
  echo "$dir"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
  start)
    bin=$(bindir)
    dir=$(mktemp -d /tmp/herald-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown nobody "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # TLS too (plain connections stay allowed): a throwaway CA and a certificate for
    # 127.0.0.1, so the tests can check `sslmode=require` verifies who answers.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=herald-test-ca" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$dir/data/server.key" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 2 -extfile "$dir/san.ext" -out "$dir/data/server.crt" >/dev/null 2>&1
    chmod 600 "$dir/data/server.key"
    [ "$(id -u)" -eq 0 ] && chown nobody "$dir/data/server.key" "$dir/data/server.crt"
    # fsync off: the tests kill Herald, never PostgreSQL, and this keeps them fast on 2 cores.
    # HERALD_PG_DURABLE=1 keeps PostgreSQL's defaults (fsync on), as the benchmark wants.
    durability="-c fsync=off -c full_page_writes=off"
    [ -n "${HERALD_PG_DURABLE:-}" ] && durability=""
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 $durability -c ssl=on" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "export HERALD_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/postgres"
    echo "export HERALD_TEST_PG_DIR=$dir"
    echo "export HERALD_TEST_PG_CA=$dir/ca.pem"
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac

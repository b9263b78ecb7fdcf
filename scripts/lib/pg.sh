# shellcheck shell=bash
# Start and stop a private, throwaway PostgreSQL cluster for tests, the demo and benchmarks.
#
# Source this file, then:
#   pg_private_start NAME [OPTIONS]  # initdb + pg_ctl under target/pg/NAME, exports DATABASE_URL,
#                                    # PG_BIN; OPTIONS are more postgres options (-c name=value)
#   pg_private_stop NAME    # stops the cluster and removes its directory
# initdb and pg_ctl refuse to run as root: as root they run as the `postgres` OS user, which
# must own the cluster directory. The cluster listens on 127.0.0.1 at a free port and on a
# socket inside its own directory, with trust authentication: it is never meant to outlive
# the script that started it.

SALVAGE_ROOT=${SALVAGE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# Finds initdb/pg_ctl/postgres: on PATH, else the newest /usr/lib/postgresql/*/bin, else it
# installs Debian's postgresql package when it can (root and apt-get), else it says what to do.
pg_find_bin() {
    local dir
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
        return 0
    fi
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "PostgreSQL server binaries not found: installing Debian's postgresql package" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || true
        dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
    if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
        cat >&2 <<'MSG'
error: PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found.
Install them, e.g. `apt-get install postgresql` (Debian/Ubuntu) or `dnf install postgresql-server`,
or point the tests at an existing server with DATABASE_URL=postgres://user@host:port/postgres
(the user needs CREATEDB).
MSG
        return 1
    fi
    PG_BIN=$dir
}

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
# Makes sure pgBackRest is installed (the point-in-time tests restore from a pgBackRest
# repository): Debian's pgbackrest package when we can install it, else it says what to do.
pg_require_pgbackrest() {
    command -v pgbackrest >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "pgBackRest not found: installing Debian's pgbackrest package" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >&2 || true
    fi
    command -v pgbackrest >/dev/null 2>&1 && return 0
    echo "error: pgbackrest was not found: install it (e.g. apt-get install pgbackrest)" >&2
    return 1
}

pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    python3 - <<'PY' 2>/dev/null && return 0
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
    local port
    for port in $(seq 54330 54430); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
    done
    return 1
}

pg_private_start() {
    local name=$1 extra=${2:-} dir port
    pg_find_bin || return 1
    dir="$SALVAGE_ROOT/target/pg/$name"
    if [ -f "$dir/data/postmaster.pid" ]; then
        pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir/sock"
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        chown -R postgres: "$dir"
        # The owner must be able to reach its directory through ours.
        local up=$dir
        while [ "$up" != / ]; do up=$(dirname "$up"); chmod o+x "$up" 2>/dev/null || true; done
    fi
    port=$(pg_free_port) || { echo "error: no free TCP port for PostgreSQL" >&2; return 1; }
    pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
            --no-locale >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; return 1; }
    # Throwaway cluster: durability off for speed; enough connections for parallel tests.
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
            -c shared_buffers=256MB -c max_locks_per_transaction=256 $extra" start >/dev/null ||
        { tail -n 30 "$dir/server.log" >&2; return 1; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    export PG_BIN
    echo "started a private PostgreSQL ($("$PG_BIN/postgres" --version | awk '{print $3}')) at 127.0.0.1:$port, data in $dir" >&2
}

pg_private_stop() {
    local name=$1 dir
    dir="$SALVAGE_ROOT/target/pg/$name"
    [ -d "$dir/data" ] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
        pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

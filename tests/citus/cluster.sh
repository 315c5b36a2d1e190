#!/usr/bin/env bash
# A local Citus cluster for tests and benchmarks: one coordinator and two workers on 127.0.0.1.
# Run with --help for the commands. Test infrastructure only: the engine never calls this.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash tests/citus/cluster.sh COMMAND [ARGS]

A local Citus cluster (a coordinator and two workers, 127.0.0.1 only, trust auth) for tests
and benchmarks.

Commands:
  up             install Citus for the PostgreSQL of pg_config when missing (builds it from
                 source: 2-6 minutes), then create and start the three nodes. Already up: reports.
  down [--purge] stop the three nodes (pg_ctl stop -m fast); --purge also removes their data.
  status         which nodes run; exit 0 when all three run, 3 otherwise.
  createdb NAME  create database NAME on all three nodes with the citus extension, and register
                 the coordinator and both workers in the coordinator's NAME. Prints its URL.
  dropdb NAME    drop database NAME on all three nodes (WITH (FORCE)).

Environment:
  PG_CONFIG   pg_config of the PostgreSQL to use (default: the first on PATH)
  CITUS_PORT  coordinator port; the workers take the next two (default 9700: 9700, 9701, 9702)
  CITUS_HOME  node data, logs and the build (default /var/tmp/ledger-citus)
  CITUS_SRC   Citus source to build when Citus is not installed: a tarball or an unpacked
              source directory (default ../shared/vendor/citus-13.2.2.tar.xz beside the repo,
              when it exists; its sha256 is checked)
  CITUS_JOBS  parallel make jobs for the build (default 2)

Nodes run as the OS user `postgres` when this runs as root (initdb refuses root), otherwise as
the current user. The database superuser is `postgres` either way:
  postgresql://postgres@127.0.0.1:9700/NAME
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CITUS_HOME=${CITUS_HOME:-/var/tmp/ledger-citus}
BASE_PORT=${CITUS_PORT:-9700}
PG_CONFIG=${PG_CONFIG:-pg_config}
CITUS_JOBS=${CITUS_JOBS:-2}
DEFAULT_SRC="$REPO/../shared/vendor/citus-13.2.2.tar.xz"
DEFAULT_SHA256=0427d4d490dfd1cdc75e45c025f359988809f8e43b299989fc245ea08c323210
NODES=(coordinator worker1 worker2)
HOST=127.0.0.1
DB_SUPERUSER=postgres

say() { echo "citus: $*"; }
die() { echo "citus: error: $*" >&2; exit 1; }

[[ $BASE_PORT =~ ^[0-9]+$ ]] || die "CITUS_PORT must be a number, not '$BASE_PORT'"
command -v "$PG_CONFIG" >/dev/null 2>&1 || die "no pg_config ('$PG_CONFIG'): install PostgreSQL or set PG_CONFIG"
BINDIR=$("$PG_CONFIG" --bindir)

if [[ $(id -u) == 0 ]]; then
    RUN_USER=postgres
    id "$RUN_USER" >/dev/null 2>&1 || die "running as root needs the OS user '$RUN_USER' to run the nodes as"
else
    RUN_USER=$(id -un)
fi

# A command as the user who owns the nodes, from a directory that user can read, without the
# lock's file descriptor (a postmaster that inherited it would hold the lock for good).
as_user() {
    if [[ $(id -u) == 0 ]]; then
        (cd / && runuser -u "$RUN_USER" -- "$@" 9>&-)
    else
        (cd / && "$@" 9>&-)
    fi
}

node_port() { echo $((BASE_PORT + $1)); }                # $1: index into NODES
node_dir() { echo "$CITUS_HOME/nodes/${NODES[$1]}"; }
node_log() { echo "$CITUS_HOME/logs/${NODES[$1]}.log"; }
node_running() { [[ -f "$(node_dir "$1")/PG_VERSION" ]] && as_user "$BINDIR/pg_ctl" status -D "$(node_dir "$1")" >/dev/null 2>&1; }
url() { echo "postgresql://$DB_SUPERUSER@$HOST:$(node_port 0)/$1"; }

# psql on node $1, database $2, then psql arguments.
sql_on() {
    local i=$1 db=$2
    shift 2
    PGOPTIONS="-c client_min_messages=warning" "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$HOST" -p "$(node_port "$i")" -U "$DB_SUPERUSER" -d "$db" "$@"
}

# Serialise the commands that change the cluster (parallel test runs may all call `up`).
take_lock() {
    mkdir -p "$CITUS_HOME"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CITUS_HOME/.lock"
        flock 9
    fi
}

# ---------------------------------------------------------------------------------------------
# Installing Citus

citus_installed() {
    [[ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" && -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]]
}

pg_major() {
    "$PG_CONFIG" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/'
}

install_build_deps() {
    local major pkgs=() p
    major=$(pg_major)
    for p in "postgresql-server-dev-$major" libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
    done
    ((${#pkgs[@]})) || return 0
    say "installing build dependencies: ${pkgs[*]}"
    local log="$CITUS_HOME/apt.log"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >"$log" 2>&1; } ||
        { apt-get update -q >>"$log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >>"$log" 2>&1; } ||
        { tail -n 20 "$log" >&2; die "apt-get install ${pkgs[*]} failed (log: $log)"; }
}

# The source tree to build, unpacked (or copied) under $CITUS_HOME/build; prints its path.
prepare_source() {
    local src=$1 build="$CITUS_HOME/build" top
    mkdir -p "$build"
    if [[ -d $src ]]; then
        [[ -x "$src/configure" ]] || die "CITUS_SRC=$src is not a Citus source directory (no configure)"
        top="$build/$(basename "$(cd "$src" && pwd)")"
        if [[ ! -f "$top/.unpacked" ]]; then
            rm -rf "$top"
            cp -a "$src" "$top"
            touch "$top/.unpacked"
        fi
    else
        top="$build/$(tar -tf "$src" | sed -n 1p | cut -d/ -f1)"
        if [[ ! -f "$top/.unpacked" ]]; then
            say "unpacking $src" >&2
            rm -rf "$top"
            tar -xf "$src" -C "$build"
            touch "$top/.unpacked"
        fi
    fi
    echo "$top"
}

# PostgreSQL 15 since 15.14 exports have_createdb_privilege(), which Citus's PG15 compatibility
# header also defines as a static function ("static declaration of 'have_createdb_privilege'
# follows non-static declaration"). Rename Citus's copy and its uses to
# citus_have_createdb_privilege; on PG16+ the name maps to PostgreSQL's own function. Idempotent.
patch_source() {
    local dir=$1 files
    files=$(grep -rl 'have_createdb_privilege' "$dir/src" || true)
    [[ -n $files ]] || return 0
    # shellcheck disable=SC2086
    sed -i \
        -e 's/^#define have_createdb_privilege() have_createdb_privilege()$/#define citus_have_createdb_privilege() have_createdb_privilege()/' \
        -e '/^#define citus_have_createdb_privilege() have_createdb_privilege()$/b' \
        -e 's/\(^\|[^_[:alnum:]]\)have_createdb_privilege(/\1citus_have_createdb_privilege(/g' \
        $files
}

# Runs "$@" in the background into $log, printing a progress line (seconds so far, object files
# under $dir) every 20 seconds.
run_with_progress() {
    local what=$1 log=$2 dir=$3 pid start next=20
    shift 3
    start=$SECONDS
    "$@" >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 2
        if ((SECONDS - start >= next)) && kill -0 "$pid" 2>/dev/null; then
            say "  $what: $((SECONDS - start))s, $(find "$dir" -name '*.o' | wc -l) object files"
            next=$((next + 20))
        fi
    done
    if ! wait "$pid"; then
        tail -n 30 "$log" >&2
        die "$what failed (log: $log)"
    fi
}

install_citus() {
    local src=${CITUS_SRC:-} start=$SECONDS dir opts=() cc=${CC:-cc}
    if [[ -z $src ]]; then
        [[ -f $DEFAULT_SRC ]] || die "Citus is not installed for $("$PG_CONFIG" --version) (no citus.so in \
$("$PG_CONFIG" --pkglibdir)). Install it from Citus's own packages (the postgresql-$(pg_major)-citus \
package from Citus's package repository), or set CITUS_SRC to a Citus source tarball or unpacked source \
directory (Citus 13.x) to build it."
        src=$(cd "$(dirname "$DEFAULT_SRC")" && pwd)/$(basename "$DEFAULT_SRC")
        say "checking sha256 of $src"
        echo "$DEFAULT_SHA256  $src" | sha256sum -c --status - || die "sha256 of $src is not $DEFAULT_SHA256"
    fi
    [[ -e $src ]] || die "CITUS_SRC=$src does not exist"
    say "Citus is not installed for $("$PG_CONFIG" --version): building it from $src (2-6 minutes)"
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        install_build_deps
    elif [[ ! -w $("$PG_CONFIG" --pkglibdir) ]]; then
        die "cannot install into $("$PG_CONFIG" --pkglibdir) as $(id -un): run this as root (or sudo)"
    fi
    [[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ]] ||
        die "PostgreSQL server headers are missing: install postgresql-server-dev-$(pg_major)"
    dir=$(prepare_source "$src")
    patch_source "$dir"
    # Optional libraries: build without the ones whose headers are absent.
    echo '#include <curl/curl.h>' | "$cc" -E - >/dev/null 2>&1 || opts+=(--without-libcurl)
    echo '#include <lz4.h>' | "$cc" -E - >/dev/null 2>&1 || opts+=(--without-lz4)
    echo '#include <zstd.h>' | "$cc" -E - >/dev/null 2>&1 || opts+=(--without-zstd)
    ((${#opts[@]} == 0)) || say "building without: ${opts[*]}"
    say "configure"
    (cd "$dir" && PG_CONFIG=$PG_CONFIG ./configure "${opts[@]}" >"$CITUS_HOME/configure.log" 2>&1) ||
        { tail -n 30 "$CITUS_HOME/configure.log" >&2; die "configure failed (log: $CITUS_HOME/configure.log)"; }
    say "make -j$CITUS_JOBS (log: $CITUS_HOME/build.log)"
    run_with_progress "make" "$CITUS_HOME/build.log" "$dir" make -C "$dir" -j"$CITUS_JOBS"
    say "make install"
    run_with_progress "make install" "$CITUS_HOME/install.log" "$dir" make -C "$dir" install
    citus_installed || die "make install ran but citus.so or citus.control is still missing"
    say "Citus built and installed in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------------------------
# Nodes

init_node() {
    local i=$1 dir port
    dir=$(node_dir "$i")
    port=$(node_port "$i")
    say "initdb ${NODES[$i]} ($dir)"
    as_user "$BINDIR/initdb" -D "$dir" -U "$DB_SUPERUSER" --auth=trust -E UTF8 --locale=C \
        >"$CITUS_HOME/logs/${NODES[$i]}-initdb.log" 2>&1 ||
        { tail -n 20 "$CITUS_HOME/logs/${NODES[$i]}-initdb.log" >&2; die "initdb of ${NODES[$i]} failed"; }
    as_user tee -a "$dir/postgresql.conf" >/dev/null <<EOF

# Local Citus test cluster (tests/citus/cluster.sh)
port = $port
listen_addresses = '$HOST'
unix_socket_directories = '$CITUS_HOME/run'
shared_preload_libraries = 'citus'
shared_buffers = 128MB
work_mem = 16MB
maintenance_work_mem = 64MB
max_connections = 200
wal_level = logical
max_wal_size = 1GB
EOF
}

start_node() {
    local i=$1 dir port conf_port
    dir=$(node_dir "$i")
    port=$(node_port "$i")
    [[ -f "$dir/PG_VERSION" ]] || init_node "$i"
    conf_port=$(sed -n -E 's/^port = ([0-9]+).*/\1/p' "$dir/postgresql.conf" | tail -n 1)
    [[ $conf_port == "$port" ]] || die "${NODES[$i]} in $dir was made for port $conf_port, not $port: \
set CITUS_PORT to match, or run 'down --purge' first"
    if node_running "$i"; then
        say "${NODES[$i]} already running on port $port"
        return 0
    fi
    as_user "$BINDIR/pg_ctl" start -w -t 60 -D "$dir" -l "$(node_log "$i")" >/dev/null 2>&1 ||
        { tail -n 30 "$(node_log "$i")" >&2; die "${NODES[$i]} did not start (log: $(node_log "$i"))"; }
    say "${NODES[$i]} started on port $port"
}

cmd_up() {
    take_lock
    if ! citus_installed; then
        install_citus
    fi
    mkdir -p "$CITUS_HOME/nodes" "$CITUS_HOME/logs" "$CITUS_HOME/run"
    if [[ $(id -u) == 0 ]]; then
        chown "$RUN_USER" "$CITUS_HOME/nodes" "$CITUS_HOME/logs" "$CITUS_HOME/run"
    fi
    local i
    for i in "${!NODES[@]}"; do  # no node started while one of the ports is another server's
        if ! node_running "$i" && "$BINDIR/pg_isready" -q -h "$HOST" -p "$(node_port "$i")" >/dev/null 2>&1; then
            die "port $(node_port "$i") is taken by another server: set CITUS_PORT to another base port"
        fi
    done
    for i in "${!NODES[@]}"; do
        start_node "$i"
    done
    say "up: coordinator $(node_port 0), workers $(node_port 1) $(node_port 2) (createdb NAME makes a Citus database)"
    url postgres
}

cmd_down() {
    local purge=0 i
    case ${1:-} in
        --purge) purge=1 ;;
        "") ;;
        *) die "down takes only --purge" ;;
    esac
    take_lock
    for i in "${!NODES[@]}"; do
        if node_running "$i"; then
            as_user "$BINDIR/pg_ctl" stop -m fast -w -D "$(node_dir "$i")" >/dev/null
            say "${NODES[$i]} stopped"
        else
            say "${NODES[$i]} not running"
        fi
    done
    if ((purge)); then
        rm -rf "$CITUS_HOME/nodes"
        say "removed $CITUS_HOME/nodes"
    fi
}

cmd_status() {
    local i up=0
    for i in "${!NODES[@]}"; do
        if node_running "$i"; then
            echo "${NODES[$i]} port $(node_port "$i"): running"
            up=$((up + 1))
        else
            echo "${NODES[$i]} port $(node_port "$i"): stopped"
        fi
    done
    ((up == ${#NODES[@]})) || exit 3
}

check_name() {
    [[ ${1:-} =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name must match [a-z_][a-z0-9_]*, not '${1:-}'"
}

require_up() {
    local i
    for i in "${!NODES[@]}"; do
        node_running "$i" || die "${NODES[$i]} is not running: run 'bash tests/citus/cluster.sh up' first"
    done
}

cmd_createdb() {
    local name=${1:-} i
    check_name "$name"
    require_up
    take_lock
    # Workers first: citus_add_node connects to the database of the same name on the worker.
    for i in 1 2 0; do
        if [[ -z $(sql_on "$i" postgres -c "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
            sql_on "$i" postgres -c "CREATE DATABASE \"$name\""
        fi
        sql_on "$i" "$name" -c "CREATE EXTENSION IF NOT EXISTS citus"
    done
    sql_on 0 "$name" >/dev/null <<EOF
SELECT citus_set_coordinator_host('$HOST', $(node_port 0));
SELECT citus_add_node('$HOST', $(node_port 1));
SELECT citus_add_node('$HOST', $(node_port 2));
EOF
    url "$name"
}

cmd_dropdb() {
    local name=${1:-} i
    check_name "$name"
    require_up
    take_lock
    for i in 0 1 2; do
        sql_on "$i" postgres -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)"
    done
    say "dropped $name on all three nodes"
}

case ${1:-} in
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    createdb) cmd_createdb "${2:-}" ;;
    dropdb) cmd_dropdb "${2:-}" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac

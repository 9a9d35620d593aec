#!/usr/bin/env bash
# A private PostgreSQL server for Lectern's tests and benchmarks. Idempotent.
#
#   export DATABASE_URL=$(scripts/pg.sh start)   # install if needed, init, start; prints the URL
#   scripts/pg.sh url                            # URL of the running private cluster (exit 1 if down)
#   scripts/pg.sh createdb NAME                  # fresh database NAME (dropped first); prints its URL
#   scripts/pg.sh restart                        # pg_ctl restart -m fast (tests restart PG under load)
#   scripts/pg.sh stop                           # stop the private cluster
#
# Only URLs go to stdout; everything else goes to stderr.
#
# `start` with DATABASE_URL=postgres://… (or postgresql://…) already set only checks that
# server answers and prints it, unless it is the URL of this private cluster, which is
# (re)started as usual. `createdb` works against such an external server as well.
#
# Layout of ${LECTERN_PG_DIR:-$HOME/.cache/lectern/pg}:
#   data/        the cluster (PGDATA); its unix socket lives here too
#   server.log   server log (pg_ctl -l)
#   url          postgres://lectern:lectern@127.0.0.1:<port>/lectern
#   .lock        serialises concurrent pg.sh runs
#
# PostgreSQL refuses to run as root. As root the server runs as the `postgres` system user
# (created by Debian's package) or, without one, as a dedicated system user `lectern-pg`.
# As root with LECTERN_PG_DIR unset and $HOME not reachable by that user (Debian's /root is
# 0700), the cluster goes to /var/lib/lectern/pg instead: /root's mode is left alone.
# LECTERN_PG_USER=NAME picks another server user (created if missing; root only).
# The cluster listens on 127.0.0.1 only, on the first free port from ${LECTERN_PG_PORT:-54329},
# with trust auth for local and 127.0.0.1 connections. For trials with several hosts
# (network namespaces), LECTERN_PG_LISTEN adds an address to listen on and LECTERN_PG_ALLOW
# a CIDR block trusted at initdb. System clusters (pg_lsclusters) are
# never touched, and their ports are never picked.
set -euo pipefail

say() { printf '[pg] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(now_ms)
took() { echo "$(( $(now_ms) - t0 )) ms"; }

is_root() { [[ $(id -u) -eq 0 ]]; }
is_pg_url() { [[ ${1:-} == postgres://* || ${1:-} == postgresql://* ]]; }

as_root() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# ---------------------------------------------------------------------------------------
# Binaries

bindir=""
# find_bindir [MAJOR]: the newest /usr/lib/postgresql/*/bin with pg_ctl and initdb (or that
# exact major version), else the directory of pg_ctl on PATH. Sets $bindir; 1 if none.
find_bindir() {
  local want=${1:-} d
  bindir=""
  if [[ -n $want ]]; then
    d=/usr/lib/postgresql/$want/bin
    [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]] && bindir=$d
  else
    while read -r d; do
      [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]] && bindir=$d
    done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V)
  fi
  if [[ -z $bindir ]] && command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    d=$(dirname "$(command -v pg_ctl)")
    if [[ -z $want ]] || "$d/pg_ctl" --version | grep -q " ${want}[.]"; then bindir=$d; fi
  fi
  [[ -n $bindir ]]
}

apt_install() {
  say "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_server_binaries() {
  find_bindir && return 0
  command -v apt-get >/dev/null || die "no PostgreSQL server found and no apt-get to install one"
  apt_install postgresql postgresql-client
  find_bindir || die "postgresql installed but no pg_ctl/initdb under /usr/lib/postgresql/*/bin"
}

# psql for talking to an external server: ours if we have one, else PATH, else install it.
psql_bin() {
  if find_bindir && [[ -x $bindir/psql ]]; then echo "$bindir/psql"; return; fi
  if ! command -v psql >/dev/null; then
    command -v apt-get >/dev/null || die "psql not found"
    apt_install postgresql-client
  fi
  command -v psql
}

# ---------------------------------------------------------------------------------------
# Who runs the server, and where

srv_user=""
resolve_user() {
  if ! is_root; then srv_user=$(id -un); return; fi
  if [[ -n ${LECTERN_PG_USER:-} ]]; then srv_user=$LECTERN_PG_USER
  elif getent passwd postgres >/dev/null; then srv_user=postgres
  else srv_user=lectern-pg
  fi
}

ensure_user() {
  is_root || return 0
  getent passwd "$srv_user" >/dev/null && return 0
  say "creating system user $srv_user"
  useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin --comment "Lectern private PostgreSQL" "$srv_user"
}

# as_srv CMD...: run CMD as the server user, from /, with fd 9 (our lock) closed so that a
# postmaster started by CMD never inherits it.
as_srv() {
  if [[ $(id -un) == "$srv_user" ]]; then
    (cd / && "$@") 9>&-
  else
    (cd / && runuser -u "$srv_user" -- "$@") 9>&-
  fi
}

# can the server user reach (traverse) every existing ancestor of $1?
reachable_by_srv() {
  local p=$1
  [[ $(id -un) == "$srv_user" ]] && return 0
  getent passwd "$srv_user" >/dev/null || return 0   # decided after the user exists
  while [[ ! -e $p && $p != / ]]; do p=$(dirname "$p"); done
  while :; do
    runuser -u "$srv_user" -- test -x "$p" 2>/dev/null || return 1
    [[ $p == / ]] && return 0
    p=$(dirname "$p")
  done
}

base="" data="" sockdir="" logfile="" urlfile="" lockfile=""
resolve_dir() {
  resolve_user
  if [[ -n ${LECTERN_PG_DIR:-} ]]; then
    base=$LECTERN_PG_DIR
  else
    base=${HOME:-/root}/.cache/lectern/pg
    if is_root && [[ $srv_user != root ]] && ! reachable_by_srv "$base"; then
      base=/var/lib/lectern/pg
    fi
  fi
  [[ $base == /* ]] || base=$PWD/$base
  data=$base/data
  # an existing cluster keeps the user that owns it
  if is_root && [[ -d $data ]]; then
    local owner; owner=$(stat -c %U "$data")
    [[ $owner != root && $owner != UNKNOWN ]] && srv_user=$owner
  fi
  sockdir=$data
  logfile=$base/server.log
  urlfile=$base/url
  lockfile=$base/.lock
  # unix socket paths are limited to 107 bytes
  if (( ${#sockdir} + 20 > 107 )); then
    sockdir=/tmp/lectern-pg-$(printf '%s' "$data" | md5sum | cut -c1-12)
  fi
}

lock() {
  mkdir -p "$base"
  exec 9>>"$lockfile"
  flock -w 300 9 || die "timed out waiting for $lockfile"
}

# ---------------------------------------------------------------------------------------
# Cluster state

conf_port() {
  [[ -f $data/lectern.conf ]] || return 0
  sed -n "s/^port = \([0-9]*\).*/\1/p" "$data/lectern.conf" | tail -n1
}

url_for() { echo "postgres://lectern:lectern@127.0.0.1:$1/${2:-lectern}"; }

# Processes whose working directory is our data directory: the postmaster and its children
# (postgres chdirs to PGDATA). Needs /proc.
cluster_pids() {
  [[ -d /proc/self ]] || return 0
  find /proc/[0-9]*/cwd -maxdepth 0 -lname "$(readlink -f "$data")" 2>/dev/null \
    | sed 's#^/proc/\([0-9]*\)/cwd$#\1#' || true
}

# 0 when postmaster.pid names a live postmaster of this cluster.
running() {
  [[ -f $data/postmaster.pid ]] || return 1
  local pid
  pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || [[ -d /proc/$pid ]] || return 1
  if [[ -d /proc/self ]]; then
    [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(readlink -f "$data")" ]] || return 1
  fi
  return 0
}

ready() {
  local port=$1
  "$bindir/pg_isready" -q -h "$sockdir" -p "$port" -U lectern -d postgres -t 2 >/dev/null 2>&1
}

wait_ready() {
  local port=$1 i
  for (( i = 0; i < 120; i++ )); do
    ready "$port" && return 0
    running || return 1
    sleep 0.5
  done
  return 1
}

# The cluster is not running: get rid of what a killed server leaves behind (orphaned
# children still attached to its shared memory, postmaster.pid, socket lock files).
clean_stale() {
  local pids start=$SECONDS quit=""
  pids=$(cluster_pids)
  if [[ -n $pids ]]; then
    say "waiting for leftover server processes to exit: $(echo $pids)"
    while pids=$(cluster_pids); [[ -n $pids ]] && (( SECONDS - start < 10 )); do
      if [[ -z $quit ]] && (( SECONDS - start >= 3 )); then
        say "sending SIGQUIT to leftover server processes: $(echo $pids)"
        kill -QUIT $pids 2>/dev/null || true
        quit=1
      fi
      sleep 0.2
    done
    if [[ -n $pids ]]; then
      say "killing leftover server processes: $(echo $pids)"
      kill -KILL $pids 2>/dev/null || true
      sleep 0.5
    fi
  fi
  if [[ -f $data/postmaster.pid ]]; then
    say "removing stale $data/postmaster.pid (pid $(head -n1 "$data/postmaster.pid"))"
    rm -f "$data/postmaster.pid"
  fi
  rm -f "$sockdir"/.s.PGSQL.*
}

# ---------------------------------------------------------------------------------------
# Ports

system_cluster_ports() {
  command -v pg_lsclusters >/dev/null || return 0
  pg_lsclusters -h 2>/dev/null | awk '{print $3}'
}

port_listening() {
  local hex
  hex=$(printf ':%04X' "$1")
  # state 0A = LISTEN, local address is field 2
  awk -v h="$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port_free() {
  local p=$1
  port_listening "$p" && return 1
  system_cluster_ports | grep -qx "$p" && return 1
  [[ -e $sockdir/.s.PGSQL.$p.lock ]] && return 1
  return 0
}

pick_port() {
  local p=${1:-${LECTERN_PG_PORT:-54329}} n
  for (( n = 0; n < 200; n++, p++ )); do
    port_free "$p" && { echo "$p"; return 0; }
  done
  die "no free port in $1..$p"
}

write_conf() {
  local port=$1 tmp
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by scripts/pg.sh on every start; included from postgresql.conf.
listen_addresses = '127.0.0.1${LECTERN_PG_LISTEN:+,$LECTERN_PG_LISTEN}'
port = $port
unix_socket_directories = '$sockdir'
max_connections = 200
shared_buffers = 256MB
EOF
  install -m 0600 -o "$srv_user" "$tmp" "$data/lectern.conf" 2>/dev/null \
    || { cp "$tmp" "$data/lectern.conf"; chmod 0600 "$data/lectern.conf"; }
  rm -f "$tmp"
}

# ---------------------------------------------------------------------------------------
# Private cluster

init_cluster() {
  say "initdb $data (server user $srv_user, $("$bindir/postgres" --version))"
  mkdir -p "$base"
  is_root && chown "$srv_user": "$base"
  chmod 0755 "$base"
  local extra=()
  "$bindir/initdb" --help | grep -q -- --no-instructions && extra+=(--no-instructions)
  as_srv "$bindir/initdb" -D "$data" -U lectern --auth=trust --encoding=UTF8 --no-locale \
    "${extra[@]}" >&2
  cat >"$data/pg_hba.conf" <<'EOF'
# Written by scripts/pg.sh: trust, but only over the unix socket and 127.0.0.1.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
  [[ -z ${LECTERN_PG_ALLOW:-} ]] || echo "host    all       all   $LECTERN_PG_ALLOW  trust" >>"$data/pg_hba.conf"
  printf "\ninclude_if_exists = 'lectern.conf'\n" >>"$data/postgresql.conf"
  is_root && chown "$srv_user": "$data/pg_hba.conf" "$data/postgresql.conf"
  return 0
}

pg_ctl_start() {
  local port=$1
  if [[ -n $sockdir && $sockdir != "$data" ]]; then
    mkdir -p "$sockdir"; chmod 0700 "$sockdir"; is_root && chown "$srv_user": "$sockdir"
  fi
  touch "$logfile"; is_root && chown "$srv_user": "$logfile"
  as_srv "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 120 start >&2
}

# SQL that makes sure role and database `lectern` exist.
ensure_role_db() {
  local port=$1 su=lectern
  local psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$port" -d postgres)
  if ! "${psql[@]}" -U lectern -tAc 'select 1' >/dev/null 2>&1; then
    su=$srv_user   # a cluster initdb'ed without -U lectern: bootstrap superuser is the OS user
  fi
  "${psql[@]}" -U "$su" >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lectern') THEN
    CREATE ROLE lectern LOGIN SUPERUSER PASSWORD 'lectern';
  ELSIF NOT EXISTS (SELECT FROM pg_authid WHERE rolname = 'lectern'
                    AND rolsuper AND rolcanlogin AND rolpassword IS NOT NULL) THEN
    ALTER ROLE lectern LOGIN SUPERUSER PASSWORD 'lectern';
  END IF;
END $$;
SELECT 'CREATE DATABASE lectern OWNER lectern'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'lectern') \gexec
SQL
}

publish_url() {
  local url
  url=$(url_for "$1")
  printf '%s\n' "$url" >"$urlfile.tmp" && chmod 0644 "$urlfile.tmp" && mv -f "$urlfile.tmp" "$urlfile"
  echo "$url"
}

start_private() {
  resolve_dir
  if [[ -f $data/PG_VERSION ]]; then
    local v; v=$(cat "$data/PG_VERSION")
    find_bindir "$v" || {
      ensure_server_binaries
      find_bindir "$v" || die "$data is a PostgreSQL $v cluster but PostgreSQL $v is not installed (remove $base to start over)"
    }
  else
    ensure_server_binaries
  fi
  ensure_user
  resolve_dir   # the server user may exist only now: recheck the default directory
  lock

  local port
  if running; then
    port=$(conf_port)
    wait_ready "$port" || die "server of $data runs but does not answer on port $port (see $logfile)"
    say "reusing running cluster $data on port $port"
  else
    if [[ ! -f $data/PG_VERSION ]]; then
      [[ -d $data ]] && [[ -n $(ls -A "$data") ]] && die "$data exists, is not empty and is no cluster"
      init_cluster
    fi
    clean_stale
    local tries logsz
    port=$(conf_port)
    for (( tries = 0; ; tries++ )); do
      if [[ -z $port ]] || ! port_free "$port"; then
        port=$(pick_port "${port:-}")
      fi
      write_conf "$port"
      say "starting cluster $data on 127.0.0.1:$port"
      logsz=$(stat -c %s "$logfile" 2>/dev/null || echo 0)
      if pg_ctl_start "$port"; then break; fi
      if (( tries >= 3 )) || ! tail -c +$(( logsz + 1 )) "$logfile" | grep -q 'could not bind'; then
        tail -c +$(( logsz + 1 )) "$logfile" | tail -n 20 >&2
        die "could not start the cluster (log: $logfile)"
      fi
      say "port $port was taken meanwhile, trying the next one"
      clean_stale
      port=$(( port + 1 ))
    done
    wait_ready "$port" || die "cluster started but does not answer (see $logfile)"
  fi
  ensure_role_db "$port"
  say "ready in $(took)"
  publish_url "$port"
}

# ---------------------------------------------------------------------------------------
# Subcommands

# Does URL point at this machine's private cluster (as written to its url file)?
is_private_url() {
  local u=$1 prefix
  resolve_dir
  [[ -f $urlfile ]] || return 1
  prefix=$(sed 's#^postgresql://#postgres://#; s#/[^/]*$#/#' "$urlfile")
  u=${u/#postgresql:\/\//postgres://}
  [[ $u == "$prefix"* ]]
}

cmd_start() {
  if is_pg_url "${DATABASE_URL:-}" && ! is_private_url "$DATABASE_URL"; then
    local psql i
    psql=$(psql_bin)
    for (( i = 0; i < ${LECTERN_PG_WAIT:-30}; i++ )); do
      if "$psql" "$DATABASE_URL" -X -q -tAc 'select 1' >/dev/null 2>&1; then
        say "using DATABASE_URL (answers)"
        echo "$DATABASE_URL"
        return 0
      fi
      sleep 1
    done
    "$psql" "$DATABASE_URL" -X -c 'select 1' >&2 || true
    die "DATABASE_URL is set but does not answer"
  fi
  [[ -n ${DATABASE_URL:-} ]] && ! is_pg_url "$DATABASE_URL" && say "ignoring non-PostgreSQL DATABASE_URL"
  start_private
}

need_cluster() {
  resolve_dir
  [[ -f $data/PG_VERSION ]] || die "no private cluster in $data (run: scripts/pg.sh start)"
  find_bindir "$(cat "$data/PG_VERSION")" || die "PostgreSQL $(cat "$data/PG_VERSION") is not installed"
}

cmd_stop() {
  resolve_dir
  if [[ ! -f $data/PG_VERSION ]]; then say "no private cluster in $data"; return 0; fi
  need_cluster
  lock
  if running; then
    as_srv "$bindir/pg_ctl" -D "$data" -m fast -w -t 120 stop >&2
    say "stopped in $(took)"
  else
    [[ -f $data/postmaster.pid ]] && clean_stale
    say "not running"
  fi
}

cmd_restart() {
  need_cluster
  if ! running; then
    say "not running; starting it"
    start_private
    return
  fi
  lock
  local port; port=$(conf_port)
  touch "$logfile"; is_root && chown "$srv_user": "$logfile"
  as_srv "$bindir/pg_ctl" -D "$data" -l "$logfile" -m fast -w -t 120 restart >&2
  wait_ready "$port" || die "restarted but does not answer (see $logfile)"
  say "restarted in $(took)"
  url_for "$port"
}

cmd_url() {
  resolve_dir
  [[ -f $data/PG_VERSION ]] || { say "no private cluster in $data"; exit 1; }
  find_bindir "$(cat "$data/PG_VERSION")" || exit 1
  local port; port=$(conf_port)
  if ! running || ! ready "$port"; then say "private cluster is not running"; exit 1; fi
  url_for "$port"
}

cmd_createdb() {
  local name=${1:-} admin psql url
  [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] || die "createdb: NAME must match [A-Za-z_][A-Za-z0-9_]*, at most 63 characters"
  local owner=' OWNER "lectern"'
  if is_pg_url "${DATABASE_URL:-}" && ! is_private_url "$DATABASE_URL"; then
    admin=$DATABASE_URL
    psql=$(psql_bin)
    owner=''   # the connecting role owns it
    # same server, same credentials and query string; database path replaced
    url=$(printf '%s' "$admin" | sed -E "s#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\1/$name#")
  else
    url=$(cmd_url 2>/dev/null) || url=$(start_private)
    need_cluster
    psql=$bindir/psql
    admin=${url%/*}/postgres
    url=${url%/*}/$name
  fi
  "$psql" "$admin" -X -q -v ON_ERROR_STOP=1 >&2 <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS "$name" WITH (FORCE);
CREATE DATABASE "$name"$owner;
SQL
  say "created database $name in $(took)"
  echo "$url"
}

case ${1:-} in
  start)    cmd_start ;;
  stop)     cmd_stop ;;
  restart)  cmd_restart ;;
  url)      cmd_url ;;
  createdb) shift; [[ $# -eq 1 ]] || usage; cmd_createdb "$1" ;;
  -h|--help|help|'') usage ;;
  *) say "unknown command: $1"; usage ;;
esac

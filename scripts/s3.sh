#!/usr/bin/env bash
# A private S3-compatible server for Lectern's tests, benchmarks and docker-less scale-out
# trials: moto's server mode (PyPI `moto[server]`, pinned), which keeps objects in memory and
# honours conditional writes (`If-None-Match: *` on PUT and on completing a multipart
# upload), the commit protocol LanceDB's tables rely on. It runs through s3_server.py, which
# makes those writes atomic (moto alone lets two racing ones both succeed). Idempotent.
#
#   export AWS_ENDPOINT_URL=$(scripts/s3.sh start)   # install if needed, start; prints the URL
#   scripts/s3.sh url                                # URL of the running server (exit 1 if down)
#   scripts/s3.sh stop
#   scripts/s3.sh python                             # the venv's python (has boto3), installed if needed
#
# LECTERN_S3_HOST (default 127.0.0.1) and LECTERN_S3_PORT (default: first free from 54400)
# pick the address; LECTERN_S3_DIR (default ~/.cache/lectern/s3) holds the venv, and
# run-<host>/ the pid, log and url files of the server on that address (one per address). The bucket `lectern` (LECTERN_S3_BUCKET) is created on start. Any
# access key is accepted: use AWS_ACCESS_KEY_ID=lectern AWS_SECRET_ACCESS_KEY=lectern.
# Only URLs go to stdout.
set -euo pipefail

dir="${LECTERN_S3_DIR:-$HOME/.cache/lectern/s3}"
host="${LECTERN_S3_HOST:-127.0.0.1}"
bucket="${LECTERN_S3_BUCKET:-lectern}"
run="$dir/run-$host"
pins=(moto[server]==5.2.6)
say() { printf '[s3] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

answers() { python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=2).read()
PY
}

running_url() {
  [[ -f $run/pid && -f $run/url ]] || return 1
  kill -0 "$(cat "$run/pid")" 2>/dev/null || return 1
  # A server started by an older version of this script (plain moto_server) is replaced.
  grep -q s3_server.py "/proc/$(cat "$run/pid")/cmdline" 2>/dev/null || return 1
  answers "$(cat "$run/url")" || return 1
  cat "$run/url"
}

install() {
  mkdir -p "$dir"
  [[ -x $dir/venv/bin/python ]] || python3 -m venv "$dir/venv" >&2
  if ! "$dir/venv/bin/python" -m pip freeze 2>/dev/null | grep -q -x -i 'moto==5.2.6'; then
    say "pip: ${pins[*]}"
    "$dir/venv/bin/python" -m pip install -q "${pins[@]}" >&2
  fi
}

free_port() {
  python3 - "$host" "${LECTERN_S3_PORT:-54400}" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
for p in range(port, port + 200):
    with socket.socket() as s:
        try:
            s.bind((host, p))
        except OSError:
            continue
        print(p)
        break
PY
}

start() {
  if url=$(running_url); then say "already running at $url"; echo "$url"; return; fi
  stop
  install
  mkdir -p "$run"
  local port; port=$(free_port)
  [[ -n $port ]] || die "no free port on $host"
  say "starting moto on $host:$port (log $run/server.log)"
  setsid "$dir/venv/bin/python" "$(dirname "${BASH_SOURCE[0]}")/s3_server.py" "$host" "$port" \
    >"$run/server.log" 2>&1 < /dev/null &
  echo $! >"$run/pid"
  local url="http://$host:$port"
  for _ in $(seq 100); do
    answers "$url" && break
    kill -0 "$(cat "$run/pid")" 2>/dev/null || { tail -20 "$run/server.log" >&2; die "moto exited"; }
    sleep 0.2
  done
  answers "$url" || die "moto does not answer on $url"
  python3 - "$url" "$bucket" <<'PY' >&2
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(f"{sys.argv[1]}/{sys.argv[2]}", method="PUT"), timeout=5).read()
PY
  echo "$url" >"$run/url"
  echo "$url"
}

stop() {
  if [[ -f $run/pid ]]; then
    local pid; pid=$(cat "$run/pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      say "stopped"
    fi
    rm -f "$run/pid" "$run/url"
  fi
}

case "${1:-}" in
  start) start ;;
  url) running_url ;;
  stop) stop ;;
  python) install; echo "$dir/venv/bin/python" ;;
  *) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Lectern machine setup: system packages + models. Idempotent.
#
#   scripts/setup.sh            # install missing apt packages, then fetch models
#   LECTERN_FETCH_OPTIONAL=1 scripts/setup.sh   # also fetch optional (AGPL) models
#   LECTERN_SKIP_MODELS=1 scripts/setup.sh      # apt packages only
#
# Runs as root, or through sudo when not root. `apt-get update` only runs when
# something has to be installed, so a second run does no network access at all.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
start_ms=$(( $(date +%s%N) / 1000000 ))

say() { printf '[setup] %s\n' "$*"; }

packages=(
  clang libclang-dev pkg-config
  libtesseract-dev libleptonica-dev tesseract-ocr   # the CLI: baseline of benches/document.rs
  tesseract-ocr-eng tesseract-ocr-fra tesseract-ocr-deu tesseract-ocr-spa
  tesseract-ocr-ita tesseract-ocr-nld tesseract-ocr-por
  tesseract-ocr-osd   # orientation detection: pages on their side
  protobuf-compiler libprotobuf-dev fonts-dejavu-core   # libprotobuf-dev: well-known .proto files lance imports
  fonts-liberation2 libreoffice-writer-nogui   # Arial metrics for the cheat sheet; its page-count test
  chromium   # the dashboard's browser test
)

# fetch_models.py needs python3 >= 3.11 (tomllib) with pip; bring them in from
# apt only when the python3 on PATH can't do it (e.g. a bare Docker image).
py_rc=0
python3 -c 'import sys, importlib.util
if sys.version_info < (3, 11): sys.exit(2)
sys.exit(3 if importlib.util.find_spec("pip") is None else 0)' >/dev/null 2>&1 || py_rc=$?
case $py_rc in
  0) ;;
  3) packages+=(python3-pip) ;;
  *) packages+=(python3 python3-pip) ;;
esac

# One dpkg-query for all packages; unknown/removed ones simply aren't "installed".
installed_list() {
  dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null | awk '$2 == "installed" {print $1}' || true
}

declare -A have=()
while read -r p; do [[ -n "$p" ]] && have[$p]=1; done < <(installed_list "${packages[@]}")
missing=()
for p in "${packages[@]}"; do
  [[ -n "${have[$p]:-}" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    say "ERROR: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  say "installing ${#missing[@]} missing apt package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  have=()
  while read -r p; do [[ -n "$p" ]] && have[$p]=1; done < <(installed_list "${missing[@]}")
  for p in "${missing[@]}"; do
    [[ -n "${have[$p]:-}" ]] || { say "ERROR: $p still not installed after apt-get install" >&2; exit 1; }
  done
  say "installed: ${missing[*]}"
else
  say "all ${#packages[@]} apt packages already installed"
fi

if [[ "${LECTERN_SKIP_MODELS:-0}" == "1" ]]; then
  say "LECTERN_SKIP_MODELS=1: not fetching models"
else
  say "fetching models (scripts/fetch_models.py)"
  python3 "$root/scripts/fetch_models.py"
fi

elapsed_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
say "done in $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))s"

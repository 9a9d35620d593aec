#!/usr/bin/env bash
# Mixed HTTP load against `lectern serve --workers` for MINUTES, sampled every 10 s; the
# report goes to benches/results/soak-DATE.txt (scripts/soak.py says what is measured).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/soak.py "${1:?usage: scripts/soak.sh MINUTES}" "${@:2}"

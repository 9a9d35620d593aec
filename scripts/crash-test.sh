#!/usr/bin/env bash
# Longer crash run than the test suite's: workers are killed with SIGKILL at random moments
# and restarted while documents flow; at the end every document must be done with every
# job done exactly once and nothing left running.
#
#   scripts/crash-test.sh [ROUNDS] [COPIES]      # defaults: 10 rounds, 4 copies of each fixture
#   DATABASE_URL=postgres://… scripts/crash-test.sh   # against PostgreSQL instead of SQLite
#
# Needs a built binary (make build) and the models (make setup).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-10}
COPIES=${2:-4}
LECTERN=${LECTERN:-${CARGO_TARGET_DIR:-$HOME/.cache/lectern/target}/debug/lectern}
DATA=$(mktemp -d /tmp/lectern-crash.XXXXXX)
export OMP_THREAD_LIMIT=1 LECTERN_LEASE_SECS=3 LECTERN_GRACE_SECS=1
G=(--data-dir "$DATA")
[[ -n "${DATABASE_URL:-}" ]] && G+=(--database-url "$DATABASE_URL")
echo "data in $DATA" >&2

# Distinct copies (different bytes) so every document is its own pipeline run.
for i in $(seq "$COPIES"); do
  for f in fixtures/paper.pdf fixtures/scan.pdf fixtures/page.png; do
    cp "$f" "$DATA/$i-$(basename "$f")"
    [[ $f == *.pdf ]] && printf '\n%% copy %s\n' "$i" >> "$DATA/$i-$(basename "$f")"
  done
done
"$LECTERN" "${G[@]}" submit "$DATA"/[0-9]*-* | awk '{print $1}' > "$DATA/ids"
echo "$(wc -l < "$DATA/ids") documents submitted" >&2

start_worker() { "$LECTERN" "${G[@]}" worker >> "$DATA/worker-$1.log" 2>&1 & echo $!; }
pids=("$(start_worker a)" "$(start_worker b)")
for round in $(seq "$ROUNDS"); do
  sleep "$(python3 -c 'import random; print(round(random.uniform(1, 4), 2))')"
  victim=$((RANDOM % 2))
  kill -9 "${pids[$victim]}" 2>/dev/null || true
  echo "round $round: killed worker $victim (pid ${pids[$victim]})" >&2
  pids[$victim]=$(start_worker "$victim")
done

# Let the survivors finish.
for _ in $(seq 600); do
  left=$("$LECTERN" "${G[@]}" queues --json | python3 -c 'import json,sys; print(sum(q["available"]+q["running"] for q in json.load(sys.stdin)))')
  [[ $left == 0 ]] && break
  sleep 1
done
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true

fail=0
while read -r id; do
  "$LECTERN" "${G[@]}" status "$id" --json > "$DATA/status.json"
  python3 - "$DATA/status.json" <<'PY' || fail=1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["status"] == "done", f'{s["id"]}: {s["status"]} {s.get("error")}'
keys = [(j["stage"], json.dumps(j["payload"], sort_keys=True)) for j in s["jobs"]]
assert len(keys) == len(set(keys)), f'{s["id"]}: duplicate jobs'
assert all(j["state"] == "done" for j in s["jobs"]), f'{s["id"]}: unfinished jobs'
assert s["pages_done"] == s["pages"], f'{s["id"]}: pages {s["pages_done"]}/{s["pages"]}'
retried = sum(1 for j in s["jobs"] if j["attempt"] > 1)
print(f'{s["id"]}: done, {len(keys)} jobs, {retried} re-run after a crash')
PY
done < "$DATA/ids"
[[ $fail == 0 ]] && echo "crash test passed ($ROUNDS kills)" >&2 || { echo "crash test FAILED; see $DATA" >&2; exit 1; }

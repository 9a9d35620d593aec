#!/usr/bin/env bash
# Old vs new on the same machine in one run: builds the embedding, document and search
# benches of revision OLD (a git worktree, its own target directory) and of this checkout,
# then runs each bench old, new, new, old so drift on a shared machine shows.
# Outputs go to OUT (default /tmp/bench-compare), one file per run.
# Usage: scripts/bench_compare.sh OLD_REV [OUT]
set -euo pipefail
old_rev=${1:?usage: scripts/bench_compare.sh OLD_REV [OUT]}
out=${2:-/tmp/bench-compare}
root=$(cd "$(dirname "$0")/.." && pwd)
new_target=${CARGO_TARGET_DIR:-$HOME/.cache/lectern/target}
old_target=$HOME/.cache/lectern/target-$old_rev
old_tree=/tmp/lectern-$old_rev
export SQLX_OFFLINE=true OMP_THREAD_LIMIT=1
mkdir -p "$out"

[ -d "$old_tree" ] || git -C "$root" worktree add --detach "$old_tree" "$old_rev"
# The old tree reads models and the corpus where this checkout has them.
ln -sfn "$root/models/cache" "$old_tree/models/cache"
[ -e "$old_tree/../shared" ] || ln -sfn "$root/../shared" "$old_tree/../shared"

# The newest bench binary of each name in a target directory.
bench_bin() { ls -t "$1"/debug/deps/"$2"-* | grep -E "/$2-[0-9a-f]+$" | head -1; }

(cd "$old_tree" && CARGO_TARGET_DIR=$old_target cargo bench --profile dev --workspace \
    --bench embedding --bench document --bench search --no-run)
(cd "$root" && CARGO_TARGET_DIR=$new_target cargo bench --profile dev --workspace \
    --bench embedding --bench document --bench search --no-run)

run() { # side run bench args...
    local side=$1 n=$2 bench=$3 dir target
    shift 3
    if [ "$side" = old ]; then dir=$old_tree target=$old_target; else dir=$root target=$new_target; fi
    echo "== $side $bench run $n $(date +%T)"
    (cd "$dir" && /usr/bin/time -v "$(bench_bin "$target" "$bench")" --bench "$@") >"$out/$bench-$side-$n.txt" 2>&1
}

for spec in "embedding --chunks 512 --runs 3 --threads 2 --only-lectern" "document --runs 3" "search --reindex 0"; do
    read -r -a args <<<"$spec"
    run old 1 "${args[@]}"
    run new 1 "${args[@]}"
    run new 2 "${args[@]}"
    run old 2 "${args[@]}"
done
echo "results in $out"

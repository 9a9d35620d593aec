#!/usr/bin/env bash
# Old vs new on the same machine in one run: builds the named benches (default: embedding,
# document and search; also ingest_load) of revision OLD (a git worktree, its own target
# directory) and of this checkout, then runs each bench old, new, new, old so drift on a
# shared machine shows. Outputs go to OUT (default /tmp/bench-compare), one file per run.
# Usage: scripts/bench_compare.sh OLD_REV [OUT [BENCH...]]
set -euo pipefail
old_rev=${1:?usage: scripts/bench_compare.sh OLD_REV [OUT [BENCH...]]}
out=${2:-/tmp/bench-compare}
shift $(($# < 2 ? $# : 2))
benches=("${@:-embedding document search}")
read -r -a benches <<<"${benches[*]}"
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

build_args=()
for bench in "${benches[@]}"; do build_args+=(--bench "$bench"); done
(cd "$old_tree" && CARGO_TARGET_DIR=$old_target cargo bench --profile dev --workspace "${build_args[@]}" --no-run)
(cd "$root" && CARGO_TARGET_DIR=$new_target cargo bench --profile dev --workspace "${build_args[@]}" --no-run)

run() { # side run bench args...
    local side=$1 n=$2 bench=$3 dir target
    shift 3
    if [ "$side" = old ]; then dir=$old_tree target=$old_target; else dir=$root target=$new_target; fi
    # Upload latency on tmpfs: on the VM's disk, writeback of 2 GB of uploads sets the tail.
    local tmp=${TMPDIR:-/tmp}
    [ "$bench" = ingest_load ] && tmp=/dev/shm
    echo "== $side $bench run $n $(date +%T)"
    # Benches built alone lack the lectern-pdfium program beside them; without it every
    # ingest fails and the workers do no work. Its protocol has not changed since df1e682.
    local pdfium=$target/debug/lectern-pdfium
    [ -x "$pdfium" ] || pdfium=$new_target/debug/lectern-pdfium
    (cd "$dir" && TMPDIR=$tmp LECTERN_PDFIUM_PROGRAM=$pdfium /usr/bin/time -v "$(bench_bin "$target" "$bench")" --bench "$@") \
        >"$out/$bench-$side-$n.txt" 2>&1
}

spec_of() {
    case $1 in
        embedding) echo "embedding --chunks 512 --runs 3 --threads 2 --only-lectern" ;;
        document) echo "document --runs 3" ;;
        search) echo "search --reindex 0" ;;
        ingest_load) echo "ingest_load --rate 200 --seconds 10 --runs 3 --nice idle" ;;
        *) echo "unknown bench $1" >&2; exit 2 ;;
    esac
}
for bench in "${benches[@]}"; do
    read -r -a args <<<"$(spec_of "$bench")"
    run old 1 "${args[@]}"
    run new 1 "${args[@]}"
    run new 2 "${args[@]}"
    run old 2 "${args[@]}"
done
echo "results in $out"

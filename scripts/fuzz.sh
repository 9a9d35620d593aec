#!/usr/bin/env bash
# Fuzzes one of Lectern's parsers for SECONDS: `scripts/fuzz.sh TARGET SECONDS`.
# Targets: sniff, docx, pptx, image, page-json, citations, sentences (`lectern-eval fuzz`).
# The fuzzer is restarted when an input aborts the process (a stack overflow cannot be
# caught); that input is kept as fuzz/TARGET/abort-<sha256>. Panics and inputs slower than
# 5 s are saved by the fuzzer itself (crash-*, slow-*); fuzz/TARGET/runs.tsv logs each run.
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
cd "$(dirname "$0")/.."
bin=${LECTERN_EVAL:-${CARGO_TARGET_DIR:-$HOME/.cache/lectern/target}/debug/lectern-eval}
out=fuzz/$target
mkdir -p "$out"
end=$((SECONDS + seconds))
seed=$RANDOM
while ((SECONDS < end)); do
    left=$((end - SECONDS))
    if "$bin" fuzz "$target" --seconds "$left" --out fuzz --seed "$seed"; then
        exit 0
    fi
    if [[ -f $out/current ]]; then
        sum=$(sha256sum "$out/current" | cut -c1-16)
        mv "$out/current" "$out/abort-$sum"
        echo "the fuzzer died on an input: kept as $out/abort-$sum"
    else
        exit 1 # panics or slow inputs were found and saved
    fi
    seed=$((seed + 1))
done

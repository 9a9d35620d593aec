#!/usr/bin/env python3
"""Checks that the document crate's modules use each other one way only.

Reads every file under crates/document/src, collects the crate paths it names
(`crate::a::b`, `super::x`), and fails when
  - a top-level module uses one listed after it in LAYERS (a lower layer using a higher), or
  - any files use each other in a cycle (through any chain of files).
Prints the result; with -v also the module graph (who uses whom).
Run: python3 scripts/layers.py [-v]
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "crates/document/src"

# Lowest first, as in the `# Layout` doc of crates/document/src/lib.rs. Modules on one line
# are one layer: they may use each other, but never in a cycle.
LAYERS = [
    ["error"],
    ["blob"],
    ["config"],
    ["model"],
    ["formats", "text"],
    ["engines"],
    ["schedule", "generate", "index", "classify", "export", "extract"],
    ["context"],
    ["stages", "search", "ask", "webhook", "orphans"],
    ["pipeline", "housekeeping"],
    ["background"],
]
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}

PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")


def module_of(file: Path) -> list[str]:
    parts = list(file.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return parts


def code(text: str) -> str:
    """The text without comments (doc links are not uses)."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def main() -> int:
    files = {tuple(module_of(f)): f for f in ROOT.rglob("*.rs")}
    edges: dict[tuple, set] = {m: set() for m in files}
    for module, file in files.items():
        text = code(file.read_text())
        # unit tests are leaves: nothing else uses them
        text = text.split("#[cfg(test)]", 1)[0]
        for kind, rest in PATH.findall(text):
            names = rest.strip(":").split("::")
            if kind == "crate":
                target = names
            else:
                # super:: is the parent of this module (of the file's module for mod.rs too)
                target = list(module[:-1]) + names
            # the longest prefix that is a file is the module used
            while target and tuple(target) not in files:
                target.pop()
            if target and tuple(target) != module and tuple(target) != module[: len(target)]:
                edges[module].add(tuple(target))

    problems = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = module[0] if module else "lib", target[0]
            if a != b and a in LAYER and b in LAYER and LAYER[b] > LAYER[a]:
                problems.append(f"layer: {'::'.join(module)} uses {'::'.join(target)} (a higher layer)")
            if a not in LAYER and a != "lib":
                problems.append(f"unlisted top-level module {a!r}: add it to LAYERS")

    # cycles: strongly connected components with more than one file (Tarjan)
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(scc)

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for scc in sccs:
        if len(scc) > 1:
            problems.append("cycle: " + " <-> ".join(sorted("::".join(m) for m in scc)))

    for module, targets in sorted(edges.items()):
        if targets and "-v" in sys.argv:
            print(f"{'::'.join(module) or 'lib'} -> {', '.join(sorted('::'.join(t) for t in targets))}")
    n_edges = sum(len(t) for t in edges.values())
    if problems:
        print("\n".join(problems))
        print(f"layers.py: {len(problems)} problem(s) in {len(files)} files, {n_edges} uses")
        return 1
    print(f"layers.py: {len(files)} files, {n_edges} uses, no cycles, every use points to a lower layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Runs every file of the hostile-input corpus through `lectern process`, each in a fresh
data directory with a time and memory budget, and prints one line per file: the
outcome against the manifest's expectation, seconds, peak RSS, and the recorded reason.

    python3 scripts/hostile.py [--lectern BIN] [--corpus fixtures/hostile] [--timeout 120] [FILE…]

Outcomes: `ok` (as the manifest says), `wrong` (finished otherwise), `hang` (over the
time budget), `crash` (the process died: signal, panic, or over the memory budget).
Exit status 1 unless every file is `ok`. `make hostile` runs it.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MEMORY_BUDGET = 2 << 30  # RSS of the process and its children; over it counts as a crash


def run(lectern, path, timeout, data_dir):
    start = time.monotonic()
    # The binary's own pages, ONNX Runtime and LanceDB map far more address space than
    # they touch, so the budget is on RSS, sampled, not RLIMIT_AS.
    proc = subprocess.Popen(
        [lectern, "--data-dir", data_dir, "process", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    peak, killed = 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss = current_rss(proc.pid)
        peak = max(peak, rss)
        if rss > MEMORY_BUDGET:
            killed = ("crash", "over 2 GiB RSS")
        elif time.monotonic() - start > timeout:
            killed = ("hang", f"over {timeout} s")
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    seconds = time.monotonic() - start
    peak = max(peak, usage.ru_maxrss * 1024)  # the main process; children were sampled
    stderr = proc.stderr.read().decode(errors="replace")
    return seconds, peak, status, killed, stderr


def current_rss(pid):
    """RSS of the process and its children (its process group: pdfium runs in a child)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pid:  # the process group
                with open(f"/proc/{entry}/statm") as f:
                    total += int(f.read().split()[1]) * resource.getpagesize()
        except (OSError, IndexError, ValueError):
            pass
    return total


def document(lectern, data_dir):
    out = subprocess.run([lectern, "--data-dir", data_dir, "documents", "--json"], capture_output=True, text=True)
    docs = json.loads(out.stdout)["documents"] if out.returncode == 0 else []
    return docs[0] if docs else None


def main():
    parser = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lectern/target"))
    parser.add_argument("--lectern", default=os.path.join(target, "debug", "lectern"))
    parser.add_argument("--corpus", default="fixtures/hostile")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    manifest = []
    with open(os.path.join(args.corpus, "manifest.tsv")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, probes, expected = line.rstrip("\n").split("\t")
                if not args.files or name in args.files:
                    manifest.append((name, probes, expected))
    # A file name that is not UTF-8 (on the command line, as bytes).
    if not args.files:
        manifest.append((os.fsdecode(b"columns-\xff\xfe.pdf"), "a file name that is not UTF-8", "done"))
    counts = {}
    print(f"{'file':<26} {'outcome':<7} {'s':>6} {'MiB':>6}  reason")
    for name, _, expected in manifest:
        data_dir = tempfile.mkdtemp(prefix="lectern-hostile-")
        path = os.path.join(args.corpus, name)
        if not os.path.exists(path):  # the non-UTF-8 name: a copy of a good page
            path = os.path.join(data_dir, name)
            shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "columns.pdf"), path)
        try:
            seconds, peak, status, killed, stderr = run(args.lectern, path, args.timeout, data_dir)
            doc = None if killed else document(args.lectern, data_dir)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        if killed:
            outcome, reason = killed
        elif doc is None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1 and "Error: " in stderr:
            # Refused at upload, before a document existed: the CLI's error.
            reason = " ".join(stderr[stderr.index("Error: ") :].split())
            ok = expected.startswith("failed:") and expected[len("failed:") :].strip() in reason
            outcome = "ok" if ok else "wrong"
        elif os.WIFSIGNALED(status) or os.WEXITSTATUS(status) not in (0, 1) or doc is None:
            # `process` exits 1 when a document failed; a panic exits 101.
            outcome, reason = "crash", (stderr.strip().splitlines() or ["no document"])[-1][:160]
        else:
            reason = doc["error"] or doc["status"]
            want_failed = expected.startswith("failed:")
            ok = (doc["status"] == "failed" and expected[len("failed:") :].strip() in reason) if want_failed else doc["status"] == "done"
            outcome = "ok" if ok else "wrong"
        counts[outcome] = counts.get(outcome, 0) + 1
        print(f"{name.encode(errors='surrogateescape').decode(errors='replace'):<26} {outcome:<7} {seconds:6.1f} {peak / 2**20:6.0f}  {reason}", flush=True)
    print(f"{len(manifest)} inputs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    sys.exit(0 if counts.get("ok", 0) == len(manifest) else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fault injection: workers killed (SIGKILL) while a job of each stage runs, round after
round, then the results compared with a clean run of the same uploads.

    python3 scripts/crash-test.py [--copies 20] [--database-url postgres://…]

The fixtures (a born-digital PDF, a scan, a two-column page, an image, a DOCX, a PPTX) go
in `--copies` times, each copy into a collection of its own. A clean run (one worker, no
faults) and a faulty run (two workers; kill -9 one whenever a job of the stage whose turn it
is runs, stages taken in turn, restart it) then process them. Checked on the faulty run:
every document done; every job of a document done exactly once (one job per stage and page
range); the same outputs as the clean run (page text, chunks, quiz and flashcards with ids
and dates taken out); LanceDB rows per collection equal to its chunks; no files of unknown
documents, no stray uploads or partial files. Exit status 1 on any difference.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = ["paper.pdf", "scan.pdf", "columns.pdf", "page.png", "headings.docx", "notes.pptx"]
STAGES = ["ingest", "render", "layout", "ocr", "chunk", "embed", "extract", "generate"]


class Run:
    def __init__(self, lectern, data_dir, database_url):
        self.data_dir = data_dir
        self.base = [lectern, "--data-dir", data_dir, "--models-dir", os.path.join(ROOT, "models", "cache")]
        if database_url:
            self.base += ["--database-url", database_url]
        self.env = {**os.environ, "OMP_THREAD_LIMIT": "1", "LECTERN_LEASE_SECS": "3", "LECTERN_GRACE_SECS": "1"}

    def cli(self, *args):
        out = subprocess.run(self.base + list(args), capture_output=True, text=True, env=self.env)
        if out.returncode != 0:
            raise RuntimeError(f"lectern {' '.join(args)}: {out.stderr.strip()[-500:]}")
        return out.stdout

    def worker(self, name):
        log = open(os.path.join(self.data_dir, f"worker-{name}.log"), "a")
        return subprocess.Popen(self.base + ["worker"], stdout=log, stderr=log, env=self.env)

    def queues(self):
        return json.loads(self.cli("queues", "--json"))

    def left(self):
        return sum(q["available"] + q["running"] for q in self.queues())


def submit(run, copies):
    docs = {}
    for copy in range(copies):
        paths = [os.path.join(ROOT, "fixtures", f) for f in FIXTURES]
        for line in run.cli("submit", "--collection", f"c{copy}", *paths).splitlines():
            doc_id, _, path = line.split(" ", 2)
            docs[doc_id] = (f"c{copy}", os.path.basename(path))
    return docs


def wait_empty(run, limit):
    deadline = time.monotonic() + limit
    while run.left() > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"queues not empty after {limit} s")
        time.sleep(1)


def normalise(text, doc_id, data_dir):
    """Run-specific parts out: document id, data directory, times, chunk ids (a hash of the
    document id)."""
    text = text.replace(doc_id, "DOC").replace(data_dir, "DATA")
    text = re.sub(r'"id":\s*"[0-9a-f]{24}"', '"id": X', text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})?", "TIME", text)
    return re.sub(r'"(due|created_at|updated_at|generated_at)":\s*("[^"]*"|\d+)', r'"\1": X', text)


def outputs(run, docs):
    """(collection, file) → {output: sha256 of its normalised form}."""
    out = {}
    for doc_id, key in docs.items():
        d = os.path.join(run.data_dir, "documents", doc_id)
        hashes = {"export": hashlib.sha256(normalise(run.cli("export", doc_id, "--format", "json"), doc_id, run.data_dir).encode()).hexdigest()}
        for rel in ["chunks.json", "artifacts/quiz.json", "artifacts/flashcards.json"]:
            path = os.path.join(d, rel)
            if os.path.exists(path):
                hashes[rel] = hashlib.sha256(normalise(open(path).read(), doc_id, run.data_dir).encode()).hexdigest()
        out[key] = hashes
    return out


def check(run, docs, copies):
    problems = []
    for doc_id, key in docs.items():
        status = json.loads(run.cli("status", doc_id, "--json"))
        if status["status"] != "done":
            problems.append(f"{key}: {status['status']} {status.get('error')}")
            continue
        jobs = [j for j in status["jobs"] if j["stage"] in STAGES]
        keys = [(j["stage"], json.dumps(j["payload"], sort_keys=True)) for j in jobs]
        if len(keys) != len(set(keys)):
            problems.append(f"{key}: a stage ran twice")
        if any(j["state"] != "done" for j in jobs):
            problems.append(f"{key}: unfinished jobs")
    for copy in range(copies):
        collection = f"c{copy}"
        rows = json.loads(run.cli("index", "stats", "--collection", collection)).get("rows")
        chunks = 0
        for doc_id, (c, _) in docs.items():
            if c == collection:
                chunks += len(json.load(open(os.path.join(run.data_dir, "documents", doc_id, "chunks.json"))))
        if rows != chunks:
            problems.append(f"{collection}: {rows} LanceDB rows for {chunks} chunks")
    on_disk = set(os.listdir(os.path.join(run.data_dir, "documents")))
    if on_disk - set(docs):
        problems.append(f"work directories of unknown documents: {sorted(on_disk - set(docs))}")
    stray = [p for p, _, files in os.walk(os.path.join(run.data_dir, "uploads")) for f in files if f.startswith(".")]
    stray += [os.path.join(p, f) for p, _, files in os.walk(os.path.join(run.data_dir, "documents")) for f in files if ".tmp" in f]
    if stray:
        problems.append(f"partial files: {stray[:5]}")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--database-url")
    parser.add_argument("--seed", type=int, default=1)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lectern/target"))
    parser.add_argument("--lectern", default=os.path.join(target, "debug", "lectern"))
    args = parser.parse_args()
    if args.database_url:
        sys.exit("--database-url: the clean and faulty runs each need a database of their own; not supported yet")
    rng = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="lectern-crash-")
    print(f"data in {root}", flush=True)

    started = time.monotonic()
    clean = Run(args.lectern, os.path.join(root, "clean"), args.database_url)
    clean_docs = submit(clean, args.copies)
    worker = clean.worker("clean")
    wait_empty(clean, 3600)
    worker.send_signal(signal.SIGTERM)
    worker.wait()
    print(f"clean run: {len(clean_docs)} documents in {time.monotonic() - started:.0f} s", flush=True)

    started = time.monotonic()
    faulty = Run(args.lectern, os.path.join(root, "faulty"), args.database_url)
    docs = submit(faulty, args.copies)
    workers = [faulty.worker("a"), faulty.worker("b")]
    kills = {stage: 0 for stage in STAGES}
    turn = 0
    while faulty.left() > 0:
        stage = STAGES[turn % len(STAGES)]
        running = {q["queue"]: q["running"] for q in faulty.queues()}
        if running.get(stage, 0) > 0:
            time.sleep(rng.uniform(0, 0.3))  # somewhere inside the job
            victim = rng.randrange(2)
            workers[victim].kill()
            workers[victim].wait()
            workers[victim] = faulty.worker("ab"[victim])
            kills[stage] += 1
            turn += 1
        elif not any(running.values()) or rng.random() < 0.05:
            turn += 1  # that stage has nothing running now; try the next
        time.sleep(0.05)
        if time.monotonic() - started > 3600:
            sys.exit("faulty run: not finished within an hour")
    for w in workers:
        w.send_signal(signal.SIGTERM)
        w.wait()
    print(f"faulty run: {len(docs)} documents in {time.monotonic() - started:.0f} s, kills per stage {kills}", flush=True)

    problems = check(faulty, docs, args.copies)
    expected, got = outputs(clean, clean_docs), outputs(faulty, docs)
    for key, hashes in sorted(expected.items()):
        for name, digest in hashes.items():
            if got.get(key, {}).get(name) != digest:
                problems.append(f"{key} {name}: differs from the clean run")
    print(f"compared {sum(len(h) for h in expected.values())} outputs of {len(expected)} documents")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems[:50]))
        sys.exit(1)
    print(f"passed: {sum(kills.values())} kills, every document done once, outputs as the clean run, no orphans")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

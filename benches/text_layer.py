#!/usr/bin/env python3
"""The text-layer path: Lectern's ingest, render and chunk stages beside Kreuzberg's
extraction, on the same born-digital PDFs in one run, in CPU seconds per page.

Run `make bench-text-layer`: it installs Kreuzberg (scripts/peers.sh), builds Lectern and
runs this on every PDF of `../shared/corpus/pdf_text` whose pages have a text layer.

Lectern runs `lectern process` with jobs/text-layer.toml (ingest, render, chunk: no layout,
OCR, embedding or study material), all files in one process; its CPU is that process's
(user + system), start-up included, and is also given without start-up (the same process
on a one-page PDF, subtracted). Kreuzberg runs in this process with its cache off and OCR
off, one `extract_file_sync` per file. Every tool runs with OMP_THREAD_LIMIT=1.

The chunks' digest (sha256 of every document's chunks, in file order, without their ids,
which derive from the run's document ids) shows whether a change to the path changed its
output: compare it across runs.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import kreuzberg
import pypdf

from cpu import children_cpu, self_cpu

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}
# No usable text layer (vector outlines only): the OCR path, not this one.
SKIP = {"ocrmypdf-vector.pdf"}


def lectern(files, workdir):
    binary = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/lectern/target")) / "debug/lectern"

    def process(paths, data):
        cmd = [str(binary), "--data-dir", str(data), "--pipeline", str(ROOT / "jobs/text-layer.toml")]
        before = children_cpu()
        subprocess.run(cmd + ["process", *map(str, paths)], check=True, capture_output=True, env=ENV, cwd=ROOT)
        cpu = children_cpu() - before
        listing = json.loads(subprocess.run(cmd + ["documents", "--json"], check=True, capture_output=True,
                                            env=ENV, cwd=ROOT).stdout)
        return cpu, {d["filename"]: d["id"] for d in listing["documents"]}

    one_page = ROOT / "fixtures/paper.pdf"
    startup, _ = process([one_page], workdir / "startup")
    cpu, ids = process(files, workdir / "data")
    digest = hashlib.sha256()
    for f in files:
        chunks = json.loads((workdir / "data/documents" / ids[f.name] / "chunks.json").read_text())
        # Ids derive from the document's id, new on every run: the rest is the output.
        for c in chunks:
            c.pop("id"), c.pop("document_id")
        digest.update(json.dumps(chunks, sort_keys=True).encode())
    return cpu, startup, digest.hexdigest()[:16]


def kreuzberg_cpu(files):
    config = kreuzberg.ExtractionConfig(use_cache=False, force_ocr=False)
    before = self_cpu()
    for f in files:
        kreuzberg.extract_file_sync(str(f), config=config)
    return self_cpu() - before


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpus")
    args = ap.parse_args()
    files = sorted(f for f in (args.corpus / "pdf_text").glob("*.pdf") if f.name not in SKIP)
    pages = sum(len(pypdf.PdfReader(f).pages) for f in files)
    print(f"{len(files)} born-digital PDFs, {pages} pages")
    with tempfile.TemporaryDirectory() as tmp:
        cpu, startup, digest = lectern(files, Path(tmp))
    k = kreuzberg_cpu(files)
    print(f"\n## CPU s per page (lower is better)")
    print(f"{'lectern':<28} {cpu / pages:.4f}  ({cpu:.2f} s; {k and cpu / k:.2f}x Kreuzberg)")
    print(f"{'lectern without start-up':<28} {(cpu - startup) / pages:.4f}  ({cpu - startup:.2f} s; "
          f"{k and (cpu - startup) / k:.2f}x; start-up {startup:.2f} s)")
    print(f"{'kreuzberg':<28} {k / pages:.4f}  ({k:.2f} s)")
    print(f"\nLectern's chunks digest: {digest}")


if __name__ == "__main__":
    sys.exit(main())

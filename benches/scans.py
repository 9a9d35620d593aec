#!/usr/bin/env python3
"""Scans: Lectern's OCR beside OCRmyPDF (plain and with --rotate-pages --deskew), the
tesseract CLI and Kreuzberg, on the same scanned pages in one run.

Run `make bench-scans`: it installs the peers (scripts/peers.sh), makes the scans
(scripts/make_skewed.py: born-digital corpus pages rendered at 300 DPI, level, tilted
±0.5–7° and turned 90/180°, saved as JPEG scans), builds Lectern and runs this.

Per group of pages: order-aware character error rate (Levenshtein distance over the
reference's length; NFKC, quotes and dashes folded, line-end hyphens joined, spaces
collapsed) against the page's own text layer (Lectern's text is its JSON export's: running headers,
the blocks in reading order, footers), and CPU seconds per page (user + system of
the tool's processes, or of this process for Kreuzberg, which runs in it). Every tool runs
with OMP_THREAD_LIMIT=1 and English. Lectern runs its whole pipeline (render, layout, OCR,
chunking, embedding, study material) on all pages as one document; its CPU is that
pipeline's, so it is an upper bound of its OCR's. OCRmyPDF writes only its text
(`--output-type none --sidecar`) and also reads all pages as one document.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import kreuzberg
from rapidfuzz.distance import Levenshtein

from cpu import children_cpu, self_cpu

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ["level", "slight", "skewed", "steep", "turned"]
ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV, **kw).stdout


def normalise(text):
    text = unicodedata.normalize("NFKC", text or "")
    text = text.translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "−": "-"}))
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)
    return " ".join(text.split())


class Lectern:
    name = "lectern"

    def __init__(self, workdir):
        binary = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/lectern/target")) / "debug/lectern"
        self.cmd = [str(binary), "--data-dir", str(workdir / "lectern-data")]

    def read(self, scans, manifest):
        before = children_cpu()
        run(self.cmd + ["process", str(scans / "scans.pdf")], cwd=ROOT)
        cpu = children_cpu() - before
        listing = json.loads(run(self.cmd + ["documents", "--json"], cwd=ROOT))
        doc = next(d for d in listing["documents"] if d["filename"] == "scans.pdf")
        export = json.loads(run(self.cmd + ["export", doc["id"], "--format", "json"], cwd=ROOT))
        texts, self.skews, self.turns = {}, {}, {}
        for page in export["pages"]:
            # The whole page, as the others give it: running headers, the body, footers.
            furniture = page.get("furniture", [])
            parts = [f["text"] for f in furniture if f["label"] == "header"]
            parts += [b["text"] for b in page["blocks"]]
            parts += [f["text"] for f in furniture if f["label"] == "footer"]
            texts[page["number"]] = "\n".join(parts)
            self.skews[page["number"]] = page.get("skew")
            self.turns[page["number"]] = page.get("turn", 0)
        return texts, cpu


class Ocrmypdf:
    def __init__(self, name, flags):
        self.name, self.flags = name, flags

    def read(self, scans, manifest):
        with tempfile.TemporaryDirectory() as tmp:
            sidecar = Path(tmp) / "text.txt"
            before = children_cpu()
            run(["ocrmypdf", "-l", "eng", "--jobs", "1", "--output-type", "none", "--sidecar", str(sidecar),
                 *self.flags, str(scans / "scans.pdf"), "-"])
            cpu = children_cpu() - before
            pages = sidecar.read_text().split("\f")
        return {i + 1: text for i, text in enumerate(pages)}, cpu


class TesseractCli:
    name = "tesseract CLI"

    def read(self, scans, manifest):
        before = children_cpu()
        texts = {p["n"]: run(["tesseract", str(scans / f"pages/{p['n']:02}.jpg"), "-", "-l", "eng"]) for p in manifest}
        return texts, children_cpu() - before


class Kreuzberg:
    name = "kreuzberg"

    def read(self, scans, manifest):
        config = kreuzberg.ExtractionConfig(use_cache=False, ocr=kreuzberg.OcrConfig(backend="tesseract", language="eng"))
        before = self_cpu()
        texts = {
            p["n"]: kreuzberg.extract_file_sync(str(scans / f"pages/{p['n']:02}.pdf"), config=config).content
            for p in manifest
        }
        return texts, self_cpu() - before


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scans", type=Path, help="directory made by scripts/make_skewed.py")
    ap.add_argument("--only", help="comma-separated tool names to run (default: all)")
    args = ap.parse_args()
    manifest = json.loads((args.scans / "manifest.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tools = [
            Lectern(Path(tmp)),
            Ocrmypdf("ocrmypdf --deskew", ["--rotate-pages", "--deskew"]),
            Ocrmypdf("ocrmypdf", []),
            TesseractCli(),
            Kreuzberg(),
        ]
        if args.only:
            tools = [t for t in tools if t.name in args.only.split(",")]
        results = {}
        for tool in tools:
            started = time.monotonic()
            texts, cpu = tool.read(args.scans, manifest)
            results[tool.name] = (texts, cpu)
            print(f"{tool.name}: {len(manifest)} pages in {time.monotonic() - started:.0f} s, {cpu:.1f} CPU s", flush=True)

    print(f"\n## Character error rate % by group ({len(manifest)} pages; lower is better)")
    print(f"{'group':<8} {'pages':>5}" + "".join(f"{t.name:>19}" for t in tools))
    for group in GROUPS + ["all"]:
        pages = [p for p in manifest if group in ("all", p["group"])]
        cells = []
        for tool in tools:
            texts = results[tool.name][0]
            dist = sum(Levenshtein.distance(normalise(texts.get(p["n"])), normalise(p["reference"])) for p in pages)
            total = sum(len(normalise(p["reference"])) for p in pages)
            cells.append(f"{100 * dist / max(1, total):>19.2f}")
        print(f"{group:<8} {len(pages):>5}" + "".join(cells))
    print(f"\n## CPU s per page (lower is better)")
    print("".join(f"{t.name:>19}" for t in tools))
    print("".join(f"{results[t.name][1] / len(manifest):>19.2f}" for t in tools))

    lectern = next((t for t in tools if t.name == "lectern"), None)
    print("\n## Per page: the tilt and turn made, Lectern's found, and each tool's CER %")
    print(f"{'':<50} {'made':>12} {'found':>12}" + "".join(f"{t.name:>19}" for t in tools))
    for p in manifest:
        found = "-"
        if lectern:
            skew = lectern.skews.get(p["n"])
            found = f"{'-' if skew is None else f'{skew:+.2f}'} {lectern.turns.get(p['n'], 0):>3}"
        cers = []
        for tool in tools:
            text = normalise(results[tool.name][0].get(p["n"]))
            reference = normalise(p["reference"])
            cers.append(f"{100 * Levenshtein.distance(text, reference) / max(1, len(reference)):>19.2f}")
        label = f"{p['n']:02} {p['source']} p{p['page']} {p['group']}"
        print(f"{label:<50} {p['tilt']:+6.2f} {p['turn']:>3}  {found:>12}" + "".join(cers))

if __name__ == "__main__":
    sys.exit(main())

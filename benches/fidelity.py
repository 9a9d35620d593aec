#!/usr/bin/env python3
"""Export fidelity: Lectern's export beside Kreuzberg's and pdftotext's on the same files.

Run `make bench-fidelity` (installs the peers with scripts/peers.sh, builds Lectern, then runs
this with the peers' Python). Measures, on ../shared/corpus:

- text: order-aware character error rate (Levenshtein distance / reference length, spaces
  collapsed) of the plain-text output against the corpus's ground-truth text;
- columns: on two-column pages, the share of reference sentences that come out whole (not
  interleaved across columns). The reference is each column cropped alone (`pdftotext -x -y
  -W -H`), split into prose sentences of 8+ words (inline formulas are left out: tools
  order a formula's symbols differently, which says nothing about columns);
- headings: Markdown headings against the document's real outline (PDF bookmarks, DOCX
  heading styles), precision and recall after removing numbering (fuzzy match >= 90);
- tables: cells of the corpus's tabula CSVs found at their place in a row of a Markdown table.

pdftotext has no headings or tables; Kreuzberg runs with its cache off and OCR allowed
(`TESSDATA_PREFIX` from Debian's tesseract), offline its layout model is not available.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
import zipfile
from pathlib import Path

import kreuzberg
import pypdf
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parent.parent
TEXT = ["pdf_text/pypdf-crazyones.pdf", "pdf_text/pypdf-toy.pdf", "pdf_text/ocrmypdf-vector.pdf"]
COLUMNS = [("pdf_text/elsarticle-elstest-5p.pdf", [2, 3, 4])]
OUTLINED = [
    "pdf_text/acmart-sample-acmsmall.pdf",
    "pdf_text/apa7-longsample.pdf",
    "pdf_text/R-intro.pdf",
    "docx/python-docx-par-known-paragraphs.docx",
]
TABLES = ["pdf_text/tabula-data.pdf", "pdf_text/tabula-campaign_donors.pdf", "pdf_text/tabula-MultiColumn.pdf"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def collapse(text):
    return " ".join(unicodedata.normalize("NFKC", text).split())


def words(text):
    """Lower-case words of letters and digits, line-end hyphens joined, and a lone digit
    joined to the word before it (tools space a subscript differently: "δr0", "δr 0")."""
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", unicodedata.normalize("NFKC", text))
    out = []
    for w in re.sub(r"[^\w]+", " ", text.lower()).split():
        if out and len(w) == 1 and w.isdigit():
            out[-1] += w
        else:
            out.append(w)
    return out


# ---------------------------------------------------------------- the three extractors


class Lectern:
    name = "lectern"

    def __init__(self, files, workdir):
        binary = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/lectern/target")) / "debug/lectern"
        self.cmd = [str(binary), "--data-dir", str(workdir / "lectern-data")]
        self.out = workdir / "lectern-out"
        self.out.mkdir()
        started = time.monotonic()
        run(self.cmd + ["process", *map(str, files)], cwd=ROOT)
        self.seconds = time.monotonic() - started
        listing = json.loads(run(self.cmd + ["documents", "--json", "--limit", "500"], cwd=ROOT))
        self.ids = {d["filename"]: d["id"] for d in listing["documents"] if d["status"] == "done"}

    def export(self, path, fmt):
        target = self.out / f"{path.name}.{fmt}"
        if not target.exists():
            run(self.cmd + ["export", self.ids[path.name], "--format", fmt, "--out", str(target)], cwd=ROOT)
        return target.read_text()

    def text(self, path):
        return self.export(path, "text")

    def markdown(self, path):
        return self.export(path, "markdown")


class Kreuzberg:
    name = "kreuzberg"

    def __init__(self):
        self.cache = {}

    def extract(self, path, fmt):
        if (path, fmt) not in self.cache:
            config = kreuzberg.ExtractionConfig(use_cache=False, output_format=fmt)
            self.cache[(path, fmt)] = kreuzberg.extract_file_sync(str(path), config=config).content
        return self.cache[(path, fmt)]

    def text(self, path):
        return self.extract(path, "plain")

    def markdown(self, path):
        return self.extract(path, "markdown")


class Pdftotext:
    name = "pdftotext"

    def text(self, path):
        return run(["pdftotext", str(path), "-"]) if path.suffix == ".pdf" else None

    def markdown(self, path):
        return None


# ---------------------------------------------------------------- measures


def cer(hypothesis, reference):
    ref = collapse(reference)
    return Levenshtein.distance(collapse(hypothesis or ""), ref) / max(1, len(ref))


def page_size(path, page):
    info = run(["pdfinfo", "-f", str(page), "-l", str(page), str(path)])
    w, h = re.search(rf"Page\s+{page} size:\s+([\d.]+) x ([\d.]+)", info).groups()
    return float(w), float(h)


def is_prose(ws):
    """Words, not a formula: at most one in ten has a digit or is a single letter."""
    odd = sum(any(c.isdigit() for c in w) or (len(w) == 1 and w not in "ai") for w in ws)
    return odd * 10 <= len(ws)


def column_sentences(path, pages):
    """Prose sentences of 8+ words from each half of each page, cropped alone."""
    out = []
    for page in pages:
        w, h = page_size(path, page)
        for x in (0, w / 2):
            crop = run(["pdftotext", "-f", str(page), "-l", str(page), "-x", str(int(x)), "-y", "0",
                        "-W", str(int(w / 2)), "-H", str(int(h)), str(path), "-"])
            text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", crop)
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split())):
                ws = words(s)
                if len(ws) >= 8 and is_prose(ws):
                    out.append(" ".join(ws))
    return out


def whole_share(output, sentences):
    flat = " " + " ".join(words(output or "")) + " "
    return sum(f" {s} " in flat for s in sentences) / max(1, len(sentences))


def strip_numbering(title):
    """A title without its numbering: "2.1", "3.", "B.2", "Appendix C", "D Function index"
    (a bare capital letter before a capitalised word), but not a first word ("Related
    software") or an article ("A sample session")."""
    number = r"(?:\d+(?:\.\d+)*\.?|[A-Z](?:\.\d+)+\.?|[A-Z]\.)"
    pattern = rf"^\s*(?:(?i:appendix)\s+[A-Z](?:\.\d+)*\.?|{number}|[A-Z](?=\s+[A-Z]))(?:\s+|$)"
    return " ".join(words(re.sub(pattern, "", title.strip())))


def outline(path):
    if path.suffix == ".docx":
        xml = zipfile.ZipFile(path).read("word/document.xml").decode()
        titles = []
        for para in re.findall(r"<w:p[ >].*?</w:p>", xml, flags=re.S):
            if re.search(r'<w:pStyle w:val="(Heading\d|Title)"', para):
                titles.append("".join(re.findall(r"<w:t[^>]*>([^<]*)</w:t>", para)))
        return titles

    def flat(items):
        for item in items:
            if isinstance(item, list):
                yield from flat(item)
            else:
                yield item.title

    return list(flat(pypdf.PdfReader(str(path)).outline))


def headings(markdown):
    return [line.lstrip("#").strip() for line in (markdown or "").splitlines() if re.match(r"#{1,6} ", line)]


def heading_scores(found, truth):
    found = [t for t in map(strip_numbering, found) if t]
    truth = [t for t in map(strip_numbering, truth) if t]
    match = lambda a, b: a == b or fuzz.ratio(a, b) >= 90
    precision = sum(any(match(f, t) for t in truth) for f in found) / max(1, len(found))
    recall = sum(any(match(t, f) for f in found) for t in truth) / max(1, len(truth))
    return precision, recall, len(found), len(truth)


def markdown_rows(markdown):
    rows = []
    for line in (markdown or "").splitlines():
        line = line.strip()
        if line.startswith("|") and not re.match(r"^\|[\s:|-]+\|$", line):
            rows.append([" ".join(words(c)) for c in line.strip("|").split("|")])
    return rows


def cell_accuracy(markdown, truth_csv):
    """Share of non-empty truth cells equal to the cell at their place in the best-matching
    output row (rows may be shifted by one column, e.g. a missing row-label column)."""
    truth = [[" ".join(words(c)) for c in row] for row in csv.reader(open(truth_csv, newline=""))]
    rows = markdown_rows(markdown)
    right = total = 0
    for row in truth:
        cells = [(i, c) for i, c in enumerate(row) if c]
        total += len(cells)
        best = 0
        for out in rows:
            for shift in (-1, 0, 1):
                hits = sum(0 <= i + shift < len(out) and out[i + shift] == c for i, c in cells)
                best = max(best, hits)
        right += best
    return right / max(1, total)


# ---------------------------------------------------------------- report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpus"))
    args = ap.parse_args()
    corpus = Path(args.corpus)
    truth = corpus / "ground_truth"
    files = sorted({corpus / f for f in TEXT + [c[0] for c in COLUMNS] + OUTLINED + TABLES})
    with tempfile.TemporaryDirectory() as tmp:
        lectern = Lectern(files, Path(tmp))
        print(f"lectern processed {len(files)} files in {lectern.seconds:.0f} s (full pipeline)")
        tools = [lectern, Kreuzberg(), Pdftotext()]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"

        print("\n## Text: character error rate vs ground truth (lower is better)")
        print(f"{'file':<34}" + "".join(f"{t.name:>11}" for t in tools))
        sums = [0.0] * len(tools)
        for f in TEXT:
            path = corpus / f
            ref = (truth / (path.stem + ".gt.txt")).read_text()
            row = [cer(t.text(path), ref) for t in tools]
            sums = [a + b for a, b in zip(sums, row)]
            print(f"{path.name:<34}" + "".join(f"{v:>11.3f}" for v in row))
        print(f"{'mean':<34}" + "".join(f"{v / len(TEXT):>11.3f}" for v in sums))

        print("\n## Two columns: reference sentences that come out whole (higher is better)")
        for f, pages in COLUMNS:
            path = corpus / f
            sentences = column_sentences(path, pages)
            row = [whole_share(t.text(path), sentences) for t in tools]
            print(f"{path.name} pages {pages}, {len(sentences)} sentences: "
                  + ", ".join(f"{t.name} {v:.3f}" for t, v in zip(tools, row)))

        print("\n## Headings vs the outline: precision / recall (found, outline)")
        # Per tool: right headings found, headings found, outline entries found, outline entries.
        pooled = {t.name: [0.0, 0, 0.0, 0] for t in tools}
        for f in OUTLINED:
            path = corpus / f
            cells = []
            for t in tools:
                md = t.markdown(path)
                if md is None:
                    cells.append("n/a")
                    continue
                p, r, n, m = heading_scores(headings(md), outline(path))
                cells.append(f"{p:.2f}/{r:.2f} ({n},{m})")
                for i, v in enumerate((p * n, n, r * m, m)):
                    pooled[t.name][i] += v
            print(f"{path.name:<44}" + "".join(f"{c:>22}" for c in cells))
        cells = [f"{a / n:.2f}/{b / m:.2f} ({n},{m})" if n and m else "n/a" for a, n, b, m in pooled.values()]
        print(f"{'all documents pooled':<44}" + "".join(f"{c:>22}" for c in cells))
        print(f"{'':<44}" + "".join(f"{t.name:>22}" for t in tools))

        print("\n## Tables: cell accuracy vs the tabula CSVs (higher is better)")
        for f in TABLES:
            path = corpus / f
            gt = truth / (path.stem + ".gt.csv")
            row = [fmt(None if t.markdown(path) is None else cell_accuracy(t.markdown(path), gt)) for t in tools]
            print(f"{path.name:<34}" + "".join(f"{v:>11}" for v in row))
        print(f"{'':<34}" + "".join(f"{t.name:>11}" for t in tools))


if __name__ == "__main__":
    sys.exit(main())

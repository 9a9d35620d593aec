#!/usr/bin/env python3
"""Field extraction quality: Lectern's extract stage against labels, on born-digital PDFs and
on the same pages rendered to images and OCR'd, beside invoice2data in the same run.

The labelled set, laid out under ~/.cache/lectern/fields-set/ on first use:
  - the five invoices of invoice2data 0.3.6's sdist (PyPI, sha256-pinned), tests/compare/*.pdf
    with the JSON invoice2data's own templates produce for them;
  - ../shared/corpus's pypdf-SF424_page2.pdf with benches/quality/fields/sf424.json (by hand).
Scanned copies: every page rendered at 200 dpi grey (pdftoppm) into an image-only PDF.

Scores: a labelled field is right when Lectern's value equals the label (ids without a
leading '#' and spaces, amounts to the cent, dates as ISO). Precision = right / fields Lectern
gave that have a label; recall = right / labelled fields; a label of null (an empty form box)
makes any value given for it wrong. Keys of invoice2data's labels that no schema has (issuer,
hotel details…) are listed, not scored. Line items, on the documents whose labels list them: a
labelled line is found when an item's first description line equals the label's (case and
spacing aside) and its unit price or amount equals the label's price, to the cent. Also: the
extract stage's share of the pipeline's job time per document.

Run with the peers' Python (scripts/peers.sh installs invoice2data, Pillow):
  $(scripts/peers.sh) benches/fields.py --lectern ~/.cache/lectern/target/debug/lectern
"""

import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SET = pathlib.Path.home() / ".cache/lectern/fields-set"
I2D = ("invoice2data==0.3.6", "invoice2data-0.3.6.tar.gz", "59d4c9e72cfb1577a74f25dd004c8d5d222bd3f82457489293c093bbec099761")
SF424 = ROOT.parent / "shared/corpus/pdf_text/pypdf-SF424_page2.pdf"
# invoice2data's keys → Lectern's fields.
MAPPING = {
    "invoice_number": "number",
    "date": ("issue_date", "date"),
    "date_due": "due_date",
    "amount": "total",
    "amount_untaxed": "subtotal",
    "currency": "currency",
    "vat": "vat_id",
    "order_id": "order_id",
    "client_id": "customer_id",
}


def lay_out() -> list:
    """(name, pdf, labels) for every labelled document."""
    born, labels = SET / "born", SET / "labels"
    if not (SET / ".done").exists():
        shutil.rmtree(SET, ignore_errors=True)
        born.mkdir(parents=True)
        labels.mkdir()
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            I2D[0], "-d", tmp], check=True)
            sdist = pathlib.Path(tmp) / I2D[1]
            if hashlib.sha256(sdist.read_bytes()).hexdigest() != I2D[2]:
                sys.exit(f"{sdist.name}: sha256 mismatch")
            with tarfile.open(sdist) as tar:
                for m in tar.getmembers():
                    p = pathlib.PurePosixPath(m.name)
                    if p.parent.name == "compare" and p.suffix in (".pdf", ".json"):
                        target = (born if p.suffix == ".pdf" else labels) / p.name
                        target.write_bytes(tar.extractfile(m).read())
        for f in labels.glob("*.json"):
            f.write_text(json.dumps(json.loads(f.read_text())[0], indent=1))
        if SF424.exists():
            shutil.copy(SF424, born / "sf424.pdf")
            shutil.copy(ROOT / "benches/quality/fields/sf424.json", labels / "sf424.json")
        (SET / ".done").touch()
    return [(p.stem, p, json.loads((labels / f"{p.stem}.json").read_text())) for p in sorted(born.glob("*.pdf"))]


def scanned(pdf: pathlib.Path) -> pathlib.Path:
    """The pages of `pdf` as a 200-dpi grey image-only PDF, and beside it the same pages
    stacked in one PNG for invoice2data's tesseract reader (cached)."""
    from PIL import Image

    out = SET / "scanned" / pdf.name
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["pdftoppm", "-r", "200", "-gray", "-png", str(pdf), f"{tmp}/p"], check=True)
            pages = [Image.open(p) for p in sorted(pathlib.Path(tmp).glob("p*.png"))]
            pages[0].save(out, save_all=True, append_images=pages[1:], resolution=200)
            stacked = Image.new("L", (max(p.width for p in pages), sum(p.height for p in pages)), 255)
            y = 0
            for p in pages:
                stacked.paste(p, (0, y))
                y += p.height
            stacked.save(out.with_suffix(".png"), dpi=(200, 200))
    return out


def norm(field: str, value):
    if value is None:
        return None
    if hasattr(value, "strftime"):
        value = value.strftime("%Y-%m-%d")
    if isinstance(value, dict):
        value = value.get("amount")
    if field in ("total", "subtotal", "tax") or isinstance(value, float):
        try:
            return round(float(value), 2)
        except (TypeError, ValueError):
            return value
    return str(value).lstrip("#").replace(" ", "").strip().lower()


def expected(labels: dict, fields: dict) -> dict:
    """Lectern field → expected value, for the labels a schema has a field for."""
    if "_source" in labels:  # labelled in Lectern's own field names
        return {k: v for k, v in labels.items() if not k.startswith("_")}
    out = {}
    for key, value in labels.items():
        target = MAPPING.get(key)
        if isinstance(target, tuple):
            target = next((t for t in target if t in fields), target[0])
        if target:
            out[target] = value
    return out


def lectern_run(lectern: str, files: list) -> dict:
    """file name → (status JSON, extract seconds, pipeline seconds)."""
    with tempfile.TemporaryDirectory() as data:
        subprocess.run([lectern, "--data-dir", data, "process", *map(str, files)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        listing = json.loads(subprocess.run([lectern, "--data-dir", data, "documents", "--json", "--limit", "1000"],
                                            check=True, capture_output=True, text=True).stdout)
        out = {}
        for d in listing["documents"]:
            status = json.loads(subprocess.run([lectern, "--data-dir", data, "status", d["id"], "--json"],
                                               check=True, capture_output=True, text=True).stdout)
            took = lambda jobs: sum((j["finished_at"] - j["started_at"]) / 1000 for j in jobs if j.get("started_at") and j.get("finished_at"))
            out[d["filename"]] = (status, took([j for j in status["jobs"] if j["stage"] == "extract"]), took(status["jobs"]))
        return out


def invoice2data_run(files: list, reader: str) -> dict:
    """file stem → invoice2data's fields with its own templates ({} where none matched), by
    its Python API, one file at a time (its CLI writes nothing when one value is a list)."""
    import contextlib
    import importlib
    import io
    import logging

    from invoice2data import extract_data
    from invoice2data.extract.loader import read_templates

    logging.disable(logging.CRITICAL)
    module = importlib.import_module(f"invoice2data.input.{reader}")
    templates = read_templates()
    found = {}
    for f in files:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                result = extract_data(str(f), templates=templates, input_module=module)
            except Exception:  # noqa: BLE001 - a peer's crash is its miss, not ours
                result = None
        if result:
            found[f.stem] = {k: (None if isinstance(v, list) and not v else v) for k, v in result.items()}
    return found


def line_key(description: str, prices) -> tuple:
    first = " ".join((description or "").split("\n")[0].split()).lower()
    return first, {round(float(p), 2) for p in prices if p is not None}


def line_counts(labelled: list, given: list) -> tuple:
    """(right, given, labelled) for line items, each (first description line, prices)."""
    left = list(given)
    right = 0
    for desc, prices in labelled:
        hit = next((g for g in left if g[0] == desc and g[1] & prices), None)
        if hit:
            left.remove(hit)
            right += 1
    return right, len(given), len(labelled)


def label_lines(lines) -> list:
    """invoice2data's lines (keys desc/description, price/price_unit) as line keys."""
    return [line_key(l.get("description") or l.get("desc"), [l.get("price"), l.get("price_unit")])
            for l in lines or [] if isinstance(l, dict)]


def score(rows: list) -> tuple:
    """rows of (expected, given) per field → precision, recall, F1, counts."""
    right = sum(1 for e, g in rows if g is not None and e is not None and g == e)
    given = sum(1 for _, g in rows if g is not None)
    labelled = sum(1 for e, _ in rows if e is not None)
    p = right / given if given else 0.0
    r = right / labelled if labelled else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), right, given, labelled


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lectern", default=str(pathlib.Path.home() / ".cache/lectern/target/debug/lectern"))
    args = ap.parse_args()
    docs = lay_out()
    born = [pdf for _, pdf, _ in docs]
    scans = [scanned(pdf) for pdf in born]
    print(f"labelled set: {len(docs)} documents ({', '.join(n for n, _, _ in docs)})\n")
    for kind, files, reader in (("born-digital", born, "pdftotext"), ("scanned (200 dpi, OCR)", scans, "tesseract")):
        ours = lectern_run(args.lectern, files)
        theirs = invoice2data_run([f.with_suffix(".png") if reader == "tesseract" else f for f in files], reader)
        rows, peer_rows, shares, unscored = [], [], [], set()
        item_counts, peer_item_counts = [0, 0, 0], [0, 0, 0]
        print(f"== {kind}")
        for name, pdf, labels in docs:
            status, extract_s, total_s = ours.get(pdf.name, ({}, 0, 0))
            x = status.get("fields") or {}
            fields = x.get("fields", {})
            want = expected(labels, fields)
            unscored |= {k for k in labels if k not in MAPPING and k != "lines" and not k.startswith("_") and "_source" not in labels}
            doc_rows = []
            for field, value in want.items():
                got = fields.get(field, {}).get("value")
                doc_rows.append((norm(field, value), norm(field, got)))
                peer_key = next((k for k, t in MAPPING.items() if t == field or (isinstance(t, tuple) and field in t)), None)
                peer = theirs.get(name, {}).get(peer_key) if peer_key else None
                peer_rows.append((norm(field, value), norm(field, peer)))
            rows += doc_rows
            if labels.get("lines"):
                want_lines = label_lines(labels["lines"])
                ours_lines = [line_key(i["description"], [i.get("unit_price"), i.get("amount")])
                              for i in x.get("items", [])]
                counts = line_counts(want_lines, ours_lines)
                peer_counts = line_counts(want_lines, label_lines(theirs.get(name, {}).get("lines")))
                item_counts = [a + b for a, b in zip(item_counts, counts)]
                peer_item_counts = [a + b for a, b in zip(peer_item_counts, peer_counts)]
                print(f"  {name:<20} line items: {counts[0]} of {counts[2]} labelled found, {counts[1]} given;"
                      f" rule {next((r for r in x.get('rules', []) if r['rule'].startswith('items')), {}).get('detail', '-')}")
            elif x.get("items"):
                print(f"  {name:<20} line items (not labelled): {len(x['items'])} given; "
                      + "; ".join(f"{i['description'].splitlines()[0][:40]!r} {i['amount'] or i['unit_price']}" for i in x["items"]))
            if total_s:
                shares.append(extract_s / total_s)
            p, r, f1, *_ = score(doc_rows)
            wrong = [f"{f}: {g!r} (want {e!r})" for f, (e, g) in zip(want, doc_rows) if e != g]
            print(f"  {name:<20} type {status.get('doc_type') or '-':<8} schema {x.get('schema', '-'):<8} "
                  f"P {p:.2f} R {r:.2f} F1 {f1:.2f}  review {x.get('review_needed', '-')}"
                  + (f"\n      {'; '.join(wrong)}" if wrong else ""))
        p, r, f1, right, given, labelled = score(rows)
        pp, pr, pf1, *_ = score(peer_rows)
        print(f"  Lectern       P {p:.3f}  R {r:.3f}  F1 {f1:.3f}  ({right} right of {given} given, {labelled} labelled)")
        print(f"  invoice2data  P {pp:.3f}  R {pr:.3f}  F1 {pf1:.3f}  (its own templates, --input-reader {reader};"
              f" the invoice labels are its own output)")
        for who, (right, given, labelled) in (("Lectern", item_counts), ("invoice2data", peer_item_counts)):
            p, r = (right / given if given else 0.0), (right / labelled if labelled else 0.0)
            print(f"  line items, {who:<12} P {p:.3f}  R {r:.3f}  ({right} right of {given} given, {labelled} labelled)")
        if shares:
            print(f"  extract stage: {100 * sum(shares) / len(shares):.2f}% of the pipeline's job time per document"
                  f" (max {100 * max(shares):.2f}%)")
        print()
    print("invoice2data label keys no schema has (not scored): " + ", ".join(sorted(unscored)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Makes scans of born-digital corpus pages, level, tilted and turned, for `benches/scans.py`.

Each chosen page is rendered at 300 DPI in grey (pdftoppm), turned by the angle of its group
(Pillow, bicubic, white where the paper was), softened a little and saved as a JPEG at
quality 70, as a cheap office scanner would. The page's own text layer (pdftotext, reading
order) is its reference. Groups, with a fixed seed so every run makes the same files:

  level    0°               slight  ±0.5–1.5°       skewed  ±2–4°
  steep    ±5–7°            turned  90° or 180° plus ±2–4°

Writes to OUT: `scans.pdf` (every page, one document), `pages/NN.jpg` and `pages/NN.pdf`
(one page each) and `manifest.json` (page, source, group, angle, reference text).

  python3 scripts/make_skewed.py --corpus ../shared/corpus OUT

Needs pdftoppm/pdftotext (poppler-utils) and Pillow: `scripts/peers.sh` installs both.
"""
import argparse
import json
import random
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter

# Born-digital pages of prose (one two-column), from ../shared/corpus/pdf_text.
PAGES = [
    ("pdf_text/R-intro.pdf", 12),
    ("pdf_text/gnuplot.pdf", 25),
    ("pdf_text/apa7-longsample.pdf", 4),
    ("pdf_text/elsarticle-elstest-5p.pdf", 2),
    ("pdf_text/acmart-sample-acmsmall.pdf", 3),
    ("pdf_text/asymptote.pdf", 10),
]
GROUPS = [("level", 0.0, 0.0), ("slight", 0.5, 1.5), ("skewed", 2.0, 4.0), ("steep", 5.0, 7.0), ("turned", 2.0, 4.0)]
DPI = 300
SEED = 21


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def render(pdf, page, workdir):
    stem = workdir / f"render-{page}"
    run(["pdftoppm", "-gray", "-r", str(DPI), "-f", str(page), "-l", str(page), "-singlefile", "-png", str(pdf), str(stem)])
    return Image.open(f"{stem}.png").convert("L")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared/corpus")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    rng = random.Random(SEED)
    pages_dir = args.out / "pages"
    pages_dir.mkdir(parents=True, exist_ok=True)
    manifest, scans = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for source, page in PAGES:
            pdf = args.corpus / source
            original = render(pdf, page, Path(tmp))
            reference = run(["pdftotext", "-f", str(page), "-l", str(page), str(pdf), "-"])
            for group, low, high in GROUPS:
                tilt = rng.uniform(low, high) * rng.choice([-1, 1]) if high else 0.0
                turn = rng.choice([90, 180]) if group == "turned" else 0
                # PIL turns counter-clockwise for positive angles; the manifest gives the
                # tilt clockwise (lines descending to the right), as Lectern reports it.
                image = original.rotate(-tilt, resample=Image.BICUBIC, fillcolor=255)
                if turn:
                    image = image.rotate(-turn, expand=True)
                image = image.filter(ImageFilter.GaussianBlur(0.6))
                n = len(manifest) + 1
                image.save(pages_dir / f"{n:02}.jpg", quality=70, dpi=(DPI, DPI))
                image.save(pages_dir / f"{n:02}.pdf", resolution=DPI, quality=70)
                scans.append(image)
                manifest.append(
                    {"n": n, "source": source, "page": page, "group": group, "tilt": round(tilt, 2), "turn": turn, "reference": reference}
                )
                print(f"{n:02} {source} p{page} {group:<7} tilt {tilt:+.2f}° turn {turn}°")
    scans[0].save(args.out / "scans.pdf", resolution=DPI, quality=70, save_all=True, append_images=scans[1:])
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} pages in {args.out}")


if __name__ == "__main__":
    main()

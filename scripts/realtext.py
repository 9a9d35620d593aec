#!/usr/bin/env python3
"""Real English text for the search bench's `--text-dir`: the HTML manuals of seven Debian
documentation packages (Python 3.11, Linux 6.1, PostgreSQL 15, Django, SQLite, LLVM 15,
pandas: 11.8 M words, well over 100k chunks of up to 150 words), fetched with
`apt-get download` (no install), pinned by version and sha256, and written as one text
file per page, paragraphs separated by blank lines.

    scripts/realtext.py OUT_DIR    # idempotent; the .debs are kept in OUT_DIR/debs
"""

import hashlib
import html.parser
import subprocess
import sys
from pathlib import Path

PACKAGES = [
    ("python3.11-doc", "3.11.2-6+deb12u9", "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"),
    ("linux-doc-6.1", "6.1.192-3", "f18dfe28dcab7bdbf9185be16b9521f5841277a6a96c374a6683a648d5d5fa4f"),
    ("postgresql-doc-15", "15.20-0+deb12u1", "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7"),
    ("python-django-doc", "3:3.2.25-0+deb12u7", "87307f067916df72e17180d35b7cde5c7ea6080336cda518efd7f6e66988a7ca"),
    ("sqlite3-doc", "3.40.1-2+deb12u2", "466e30d7066e2641fa13e56bc662a2ad521b8cc9c17dde9c9dac3d4f105e32f2"),
    ("llvm-15-doc", "1:15.0.6-4", "613d2f6c303411508b28775269d4f6c35498905d0f3e2dd39f862191a1faf564"),
    ("python-pandas-doc", "1.5.3+dfsg-2", "4998405ff6b12432f46594963e95554ade1104705795428396345fca58d853f8"),
]

# Tags that end a paragraph; text inside the skipped ones is not prose.
BLOCK = {"p", "div", "li", "dd", "dt", "pre", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "br", "section"}
SKIP = {"script", "style", "nav", "head"}


class Paragraphs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.paragraphs, self.current, self.skipping = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIP:
            self.skipping += 1
        elif tag in BLOCK:
            self.end()

    def handle_endtag(self, tag):
        if tag in SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in BLOCK:
            self.end()

    def handle_data(self, data):
        if not self.skipping:
            self.current.append(data)

    def end(self):
        text = " ".join(" ".join(self.current).split())
        if text:
            self.paragraphs.append(text)
        self.current = []


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    debs = out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pages = words = 0
    for name, version, sha in PACKAGES:
        deb = debs / f"{name}_{version.replace(':', '%3a')}_all.deb"
        if not deb.exists():
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, check=True)
        if hashlib.sha256(deb.read_bytes()).hexdigest() != sha:
            sys.exit(f"{deb}: sha256 differs from the pinned {sha}")
        tree = debs / name
        if not tree.exists():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        for page in sorted(tree.rglob("*.html")):
            parser = Paragraphs()
            parser.feed(page.read_text(errors="replace"))
            parser.end()
            if not parser.paragraphs:
                continue
            target = out / name / page.relative_to(tree).with_suffix(".txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n\n".join(parser.paragraphs) + "\n")
            pages += 1
            words += sum(len(p.split()) for p in parser.paragraphs)
    print(f"[realtext] {pages} pages, {words} words in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

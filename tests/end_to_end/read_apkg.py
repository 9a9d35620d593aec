#!/usr/bin/env python3
"""Reads an Anki package (.apkg) the way an importer sees it, independently of Lectern's
writer: unzips it, opens collection.anki2 with Python's sqlite3, and prints what it holds
as JSON (decks, note types with their fields, notes, cards, media map, media files)."""
import json
import sqlite3
import sys
import tempfile
import zipfile

with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(sys.argv[1]) as z:
    names = z.namelist()
    z.extract("collection.anki2", tmp)
    media = json.loads(z.read("media"))
    files = {number: len(z.read(number)) for number in media}
    pngs = sum(1 for number in media if z.read(number)[:8] == b"\x89PNG\r\n\x1a\n")
    db = sqlite3.connect(f"{tmp}/collection.anki2")
    db.execute("PRAGMA integrity_check")
    ver, models, decks = db.execute("SELECT ver, models, decks FROM col").fetchone()
    models, decks = json.loads(models), json.loads(decks)
    notes = [
        {"id": nid, "mid": mid, "fields": flds.split("\x1f"), "sfld": sfld, "csum": csum, "tags": tags.split()}
        for nid, mid, flds, sfld, csum, tags in db.execute("SELECT id, mid, flds, sfld, csum, tags FROM notes")
    ]
    cards = [
        {"id": cid, "nid": nid, "did": did, "type": t, "queue": q}
        for cid, nid, did, t, q in db.execute("SELECT id, nid, did, type, queue FROM cards")
    ]
    print(json.dumps({
        "files": names,
        "version": ver,
        "decks": {k: v["name"] for k, v in decks.items()},
        "models": {k: {"name": v["name"], "fields": [f["name"] for f in v["flds"]]} for k, v in models.items()},
        "notes": notes,
        "cards": cards,
        "media": media,
        "media_sizes": files,
        "png_files": pngs,
    }))

#!/usr/bin/env python3
"""Imports an Anki package (.apkg) with Anki's own importer (the `anki` package from PyPI,
the library the desktop app runs on; scripts/peers.sh installs it) into a new, empty
collection, runs Anki's integrity check, and prints what landed as JSON: decks, notes,
cards, the note type's fields, media files, the import log's counts."""
import json
import os
import sys
import tempfile

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest

with tempfile.TemporaryDirectory() as tmp:
    col = Collection(os.path.join(tmp, "collection.anki2"))
    options = ImportAnkiPackageOptions(with_scheduling=False, with_deck_configs=False)
    log = col.import_anki_package(ImportAnkiPackageRequest(package_path=sys.argv[1], options=options)).log
    notes = col.find_notes("")
    fields = col.models.field_names(col.get_note(notes[0]).note_type()) if notes else []
    message, ok = col.fix_integrity()
    print(json.dumps({
        "decks": sorted(d.name for d in col.decks.all_names_and_ids()),
        "notes": col.note_count(),
        "cards": col.card_count(),
        "fields": fields,
        "media": sorted(os.listdir(col.media.dir())),
        "imported": {"new": len(log.new), "duplicate": len(log.duplicate), "conflicting": len(log.conflicting)},
        "integrity_ok": ok,
        "integrity": message,
    }))
    col.close()

-- Flashcards and their SM-2 review state (the deck in flashcards.json is as generated).
CREATE TABLE flashcards (
    id            TEXT PRIMARY KEY,
    document_id   TEXT NOT NULL REFERENCES documents (id),
    front         TEXT NOT NULL,
    back          TEXT NOT NULL,
    page          INTEGER NOT NULL,
    ease          REAL NOT NULL,
    interval_days INTEGER NOT NULL,
    repetitions   INTEGER NOT NULL,
    due           INTEGER NOT NULL
);
CREATE INDEX flashcards_document ON flashcards (document_id);

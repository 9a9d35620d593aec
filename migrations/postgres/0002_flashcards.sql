-- Flashcards and their SM-2 review state (the deck in flashcards.json is as generated).
CREATE TABLE flashcards (
    id            TEXT PRIMARY KEY,
    document_id   TEXT NOT NULL REFERENCES documents (id),
    front         TEXT NOT NULL,
    back          TEXT NOT NULL,
    page          BIGINT NOT NULL,
    ease          DOUBLE PRECISION NOT NULL,
    interval_days BIGINT NOT NULL,
    repetitions   BIGINT NOT NULL,
    due           BIGINT NOT NULL
);
CREATE INDEX flashcards_document ON flashcards (document_id);

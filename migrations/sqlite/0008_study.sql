-- FSRS review state beside SM-2's (each scheduler keeps its own; the collection's setting
-- picks which one reviews and which due date the study queue reads).
ALTER TABLE flashcards ADD COLUMN fsrs_stability REAL;
ALTER TABLE flashcards ADD COLUMN fsrs_difficulty REAL;
ALTER TABLE flashcards ADD COLUMN fsrs_interval_days INTEGER;
ALTER TABLE flashcards ADD COLUMN fsrs_reviewed_at INTEGER;
ALTER TABLE flashcards ADD COLUMN fsrs_due INTEGER;

-- Per-collection settings; a collection without a row uses SM-2.
CREATE TABLE collection_settings (
    collection        TEXT PRIMARY KEY,
    scheduler         TEXT NOT NULL,     -- sm2 | fsrs
    desired_retention REAL NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- Study material generated on request over a collection; its job runs on the generate queue.
CREATE TABLE study_sets (
    id          TEXT PRIMARY KEY,
    collection  TEXT NOT NULL,
    request     TEXT NOT NULL,           -- JSON: kinds, documents, pages, questions, cards, seed
    job_id      INTEGER NOT NULL,
    steps_done  INTEGER NOT NULL DEFAULT 0,
    steps_total INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX study_sets_collection ON study_sets (collection);

CREATE TABLE study_artifacts (
    study_id    TEXT NOT NULL REFERENCES study_sets (id),
    name        TEXT NOT NULL,
    path        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    PRIMARY KEY (study_id, name)
);

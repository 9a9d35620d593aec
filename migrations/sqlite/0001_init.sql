-- Lectern job store, SQLite backend. Times are Unix milliseconds.
CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    filename    TEXT NOT NULL,
    media_type  TEXT,
    size_bytes  INTEGER NOT NULL,
    status      TEXT NOT NULL,           -- queued | running | done | failed | cancelled
    stage       TEXT,                    -- stage of the newest job
    pages       INTEGER,
    pages_done  INTEGER NOT NULL DEFAULT 0,  -- pages through the per-page stages
    error       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX documents_sha256 ON documents (sha256);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    stage         TEXT NOT NULL,
    document_id   TEXT REFERENCES documents (id),
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL,         -- available | running | done | failed | dead | cancelled
    priority      INTEGER NOT NULL DEFAULT 0,
    attempt       INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    locked_by     TEXT,
    lease_until   INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
-- Claim order: highest priority first, then FIFO.
CREATE INDEX jobs_available ON jobs (queue, priority DESC, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_running ON jobs (queue, lease_until) WHERE state = 'running';
CREATE INDEX jobs_document ON jobs (document_id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'cancelled');

CREATE TABLE figures (
    document_id TEXT NOT NULL REFERENCES documents (id),
    page        INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    label       TEXT NOT NULL,
    score       REAL NOT NULL,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    path        TEXT NOT NULL,
    PRIMARY KEY (document_id, page, idx)
);

CREATE TABLE artifacts (
    document_id TEXT NOT NULL REFERENCES documents (id),
    name        TEXT NOT NULL,
    path        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    PRIMARY KEY (document_id, name)
);

-- Lectern job store, PostgreSQL backend. Times are Unix milliseconds.
CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    filename    TEXT NOT NULL,
    media_type  TEXT,
    size_bytes  BIGINT NOT NULL,
    status      TEXT NOT NULL,           -- queued | running | done | failed | cancelled
    stage       TEXT,                    -- stage of the newest job
    pages       BIGINT,
    pages_done  BIGINT NOT NULL DEFAULT 0,  -- pages through the per-page stages
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX documents_sha256 ON documents (sha256);

CREATE TABLE jobs (
    id            BIGSERIAL PRIMARY KEY,
    queue         TEXT NOT NULL,
    stage         TEXT NOT NULL,
    document_id   TEXT REFERENCES documents (id),
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL,         -- available | running | done | failed | dead | cancelled
    priority      INTEGER NOT NULL DEFAULT 0,
    attempt       INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        BIGINT NOT NULL,
    locked_by     TEXT,
    lease_until   BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT
);
-- Claim order: highest priority first, then FIFO.
CREATE INDEX jobs_available ON jobs (queue, priority DESC, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_running ON jobs (queue, lease_until) WHERE state = 'running';
CREATE INDEX jobs_document ON jobs (document_id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'cancelled');

CREATE TABLE figures (
    document_id TEXT NOT NULL REFERENCES documents (id),
    page        BIGINT NOT NULL,
    idx         BIGINT NOT NULL,
    label       TEXT NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    x0 DOUBLE PRECISION NOT NULL, y0 DOUBLE PRECISION NOT NULL,
    x1 DOUBLE PRECISION NOT NULL, y1 DOUBLE PRECISION NOT NULL,
    path        TEXT NOT NULL,
    PRIMARY KEY (document_id, page, idx)
);

CREATE TABLE artifacts (
    document_id TEXT NOT NULL REFERENCES documents (id),
    name        TEXT NOT NULL,
    path        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    PRIMARY KEY (document_id, name)
);

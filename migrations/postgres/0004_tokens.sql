-- Bearer API tokens: only the sha256 of a token is stored. `collections` is a JSON array of
-- the collections the token may use, or ["*"] for all.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    collections TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Per-upload options: which artifacts to generate (JSON array; NULL = all), where to send
-- the signed webhook, and the job (JSON) the store enqueues when the document finishes.
ALTER TABLE documents ADD COLUMN artifacts TEXT;
ALTER TABLE documents ADD COLUMN callback_url TEXT;
ALTER TABLE documents ADD COLUMN finish_job TEXT;

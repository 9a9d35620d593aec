-- Collections (one LanceDB table each) and the document type found by classification.
ALTER TABLE documents ADD COLUMN collection TEXT NOT NULL DEFAULT 'default';
ALTER TABLE documents ADD COLUMN doc_type TEXT;
ALTER TABLE documents ADD COLUMN doc_type_score REAL;

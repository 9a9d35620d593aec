-- The document's main language (ISO 639-3), detected from its text layer or OCR.
ALTER TABLE documents ADD COLUMN language TEXT;

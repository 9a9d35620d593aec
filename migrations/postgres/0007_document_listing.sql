-- Keyset paging of document listings: (created_at, id) in order.
CREATE INDEX documents_listing ON documents (created_at, id);

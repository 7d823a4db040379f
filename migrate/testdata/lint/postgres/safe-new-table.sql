-- expect: none
-- A table created in the same script is new: no reader, no lock queue.
CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz NOT NULL, body text NOT NULL);
CREATE INDEX audit_at_idx ON audit (at);
ALTER TABLE audit ADD COLUMN who text NOT NULL;

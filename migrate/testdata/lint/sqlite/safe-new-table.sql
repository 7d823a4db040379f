-- expect: none
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX audit_body ON audit (body);

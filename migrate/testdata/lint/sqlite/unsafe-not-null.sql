-- expect: add-column-not-null-without-default
PRAGMA busy_timeout = 500;
ALTER TABLE users ADD COLUMN tenant_id INTEGER NOT NULL;

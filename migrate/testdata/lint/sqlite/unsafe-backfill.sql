-- expect: backfill-in-ddl-transaction
PRAGMA busy_timeout = 500;
ALTER TABLE users ADD COLUMN full_name TEXT;
UPDATE users SET full_name = first_name || ' ' || last_name;

-- expect: backfill-in-ddl-transaction
SET lock_timeout = '1s';
BEGIN;
ALTER TABLE users ADD COLUMN full_name text;
UPDATE users SET full_name = first_name || ' ' || last_name;
COMMIT;

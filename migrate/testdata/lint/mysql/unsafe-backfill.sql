-- expect: backfill-in-ddl-transaction, no-lock-timeout
ALTER TABLE users ADD COLUMN full_name VARCHAR(200);
UPDATE users SET full_name = CONCAT(first_name, ' ', last_name);

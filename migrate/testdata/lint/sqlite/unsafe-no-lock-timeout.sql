-- expect: no-lock-timeout
ALTER TABLE users ADD COLUMN nickname TEXT;

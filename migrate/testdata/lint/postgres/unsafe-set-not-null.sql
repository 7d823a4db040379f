-- expect: set-not-null
SET lock_timeout = '1s';
ALTER TABLE users ALTER COLUMN email SET NOT NULL;

-- expect: drop-column
SET lock_timeout = '1s';
ALTER TABLE users DROP COLUMN legacy;

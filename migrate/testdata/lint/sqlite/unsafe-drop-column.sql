-- expect: drop-column
PRAGMA busy_timeout = 500;
ALTER TABLE users DROP COLUMN legacy;

-- expect: drop-table
SET lock_timeout = '1s';
DROP TABLE IF EXISTS sessions;

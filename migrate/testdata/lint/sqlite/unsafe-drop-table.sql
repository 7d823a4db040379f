-- expect: drop-table
PRAGMA busy_timeout = 500;
DROP TABLE sessions;

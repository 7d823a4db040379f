-- expect: drop-table, no-lock-timeout
DROP TABLE sessions;

-- expect: rename-column, rename-table
SET SESSION lock_wait_timeout = 1;
ALTER TABLE users RENAME COLUMN login TO username;
RENAME TABLE users TO accounts;

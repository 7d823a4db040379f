-- expect: rename-column, rename-table
PRAGMA busy_timeout = 500;
ALTER TABLE users RENAME COLUMN login TO username;
ALTER TABLE users RENAME TO accounts;

-- expect: rename-column
SET lock_timeout = '1s';
ALTER TABLE users RENAME COLUMN login TO username;

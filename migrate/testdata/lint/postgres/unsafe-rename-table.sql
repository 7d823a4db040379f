-- expect: rename-table
SET lock_timeout = '1s';
ALTER TABLE users RENAME TO accounts;

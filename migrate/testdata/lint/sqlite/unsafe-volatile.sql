-- expect: volatile-default
PRAGMA busy_timeout = 500;
ALTER TABLE users ADD COLUMN token BLOB DEFAULT (randomblob(16));

-- expect: volatile-default
SET SESSION lock_wait_timeout = 1;
ALTER TABLE users ADD COLUMN token CHAR(36) DEFAULT (UUID());

-- expect: none
SET lock_timeout = '1s';
ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;

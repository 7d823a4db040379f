-- expect: volatile-default
SET lock_timeout = '1s';
ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();

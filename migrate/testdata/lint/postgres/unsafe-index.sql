-- expect: index-without-concurrently, drop-index-without-concurrently
SET lock_timeout = '1s';
CREATE INDEX users_email_idx ON users (email);
DROP INDEX users_old_idx;

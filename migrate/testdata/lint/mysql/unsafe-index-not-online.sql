-- expect: index-not-online
SET SESSION lock_wait_timeout = 1;
CREATE INDEX users_email_idx ON users (email);
ALTER TABLE users ADD INDEX users_login (login);

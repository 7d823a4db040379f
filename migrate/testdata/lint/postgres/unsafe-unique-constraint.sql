-- expect: unique-constraint-without-index
SET lock_timeout = '1s';
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

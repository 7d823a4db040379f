-- expect: none
SET SESSION lock_wait_timeout = 1;
CREATE INDEX users_email_idx ON users (email) ALGORITHM=INPLACE LOCK=NONE;
ALTER TABLE users ADD UNIQUE INDEX users_login_uq (login), ALGORITHM=INPLACE, LOCK=NONE;

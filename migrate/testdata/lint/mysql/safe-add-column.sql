-- expect: none
SET SESSION lock_wait_timeout = 1;
ALTER TABLE users ADD COLUMN nickname VARCHAR(50), ALGORITHM=INSTANT;

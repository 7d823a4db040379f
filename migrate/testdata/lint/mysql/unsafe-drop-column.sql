-- expect: drop-column
SET SESSION lock_wait_timeout = 1;
ALTER TABLE users DROP COLUMN legacy, ALGORITHM=INPLACE, LOCK=NONE;

-- expect: change-column-type, rename-column
SET SESSION lock_wait_timeout = 1;
ALTER TABLE users CHANGE login username VARCHAR(100);

-- expect: check-without-not-valid
SET SESSION lock_wait_timeout = 1;
ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0);

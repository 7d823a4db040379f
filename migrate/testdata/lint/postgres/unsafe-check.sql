-- expect: check-without-not-valid
SET lock_timeout = '1s';
ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0);

-- expect: change-column-type
SET SESSION lock_wait_timeout = 1;
ALTER TABLE orders MODIFY COLUMN total DECIMAL(12,2) NOT NULL;

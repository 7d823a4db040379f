-- expect: change-column-type
SET lock_timeout = '1s';
ALTER TABLE orders ALTER COLUMN total TYPE numeric(12,2);

-- expect: add-column-not-null-without-default
SET SESSION lock_wait_timeout = 1;
ALTER TABLE users ADD COLUMN tenant_id BIGINT NOT NULL;

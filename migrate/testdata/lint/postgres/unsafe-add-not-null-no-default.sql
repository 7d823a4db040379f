-- expect: add-column-not-null-without-default
SET lock_timeout = '1s';
ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;

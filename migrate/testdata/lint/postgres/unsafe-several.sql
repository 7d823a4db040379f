-- expect: no-lock-timeout, drop-column, rename-column, set-not-null
ALTER TABLE users DROP COLUMN a, RENAME COLUMN b TO c;
ALTER TABLE ONLY public.users ALTER COLUMN d SET NOT NULL;

-- expect: none
SET lock_timeout = '500ms';
ALTER TABLE users ADD COLUMN nickname text;

-- expect: none
SET lock_timeout = '1s';
/* DROP TABLE users; ALTER TABLE users DROP COLUMN name; */
COMMENT ON TABLE users IS 'we never DROP COLUMN here; ALTER TABLE x RENAME TO y';

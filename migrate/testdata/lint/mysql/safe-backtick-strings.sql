-- expect: none
SET lock_wait_timeout = 1;
# DROP TABLE users;
ALTER TABLE `users` ADD COLUMN `note` VARCHAR(20) DEFAULT 'it''s \' DROP TABLE x';

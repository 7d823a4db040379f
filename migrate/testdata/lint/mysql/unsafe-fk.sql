-- expect: foreign-key-without-not-valid
SET SESSION lock_wait_timeout = 1;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);

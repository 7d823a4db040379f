-- expect: none
CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX audit_body ON audit (body(20));

-- expect: none
PRAGMA busy_timeout = 500;
CREATE TRIGGER t AFTER INSERT ON users BEGIN UPDATE users SET n = 1 WHERE id = NEW.id; END;

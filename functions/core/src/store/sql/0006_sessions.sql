-- People's sessions in the UI: the SHA-256 (hex) of the cookie's value, the token
-- every form of the session carries (CSRF), and when it ends. Times in Unix ms.
CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Personal API tokens (docs/tokens.md): a credential a user makes for a script, sent as
-- `Authorization: Bearer vsp_...`. Only the SHA-256 of the secret is kept, as for
-- sessions; the user's current level and activity are read with it on every call.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id      INTEGER NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    -- 'read' or 'write'
    scope        TEXT NOT NULL,
    -- SHA-256 of the secret; the secret itself is never stored
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    -- touched at most once a minute
    last_used_at INTEGER,
    expires_at   INTEGER
);
CREATE INDEX tokens_user ON tokens (workspace_id, user_id, id);

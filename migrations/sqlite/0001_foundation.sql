-- Foundation: workspaces, users, sessions, login throttling, project groups.
-- Every row belongs to a workspace. Dates are Unix seconds, UTC.

CREATE TABLE workspaces (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
INSERT INTO workspaces (id, name, created_at) VALUES (1, 'default', CAST(strftime('%s', 'now') AS INTEGER));

CREATE TABLE users (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces (id),
    email             TEXT NOT NULL,
    -- lower-cased email: uniqueness and look-up are case-insensitive
    email_key         TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    title             TEXT,
    first_name        TEXT,
    last_name         TEXT,
    address           TEXT,
    work_phone        TEXT,
    cell_phone        TEXT,
    company           TEXT,
    comment           TEXT,
    avatar            TEXT,
    security_level    INTEGER NOT NULL,
    can_view_profiles INTEGER NOT NULL,
    active            INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
-- A removed user keeps its email, which may then be given to a new user.
CREATE UNIQUE INDEX users_email ON users (workspace_id, email_key) WHERE active = 1;
CREATE INDEX users_workspace ON users (workspace_id, id);

CREATE TABLE sessions (
    -- SHA-256 of the session id; the id itself is never stored
    token_hash   BLOB PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id      INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_last_used ON sessions (last_used_at);

CREATE TABLE login_failures (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    -- 'login:<lower-cased login>' or 'addr:<client address>'
    subject      TEXT NOT NULL,
    failed_at    INTEGER NOT NULL,
    -- 1 while the attempt's password is being checked; 0 once it failed
    pending      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX login_failures_subject ON login_failures (workspace_id, subject, failed_at);

CREATE TABLE project_groups (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX project_groups_workspace ON project_groups (workspace_id, id);

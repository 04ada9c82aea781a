-- Projects, tasks with sub-tasks and teams, activities and their files.
-- Dates are Unix seconds, UTC; closed_at records when status became done (30).

CREATE TABLE projects (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces (id),
    name                TEXT NOT NULL,
    description         TEXT,
    tags                TEXT,
    owner_id            INTEGER NOT NULL REFERENCES users (id),
    group_id            INTEGER REFERENCES project_groups (id) ON DELETE SET NULL,
    start_date          INTEGER,
    end_date            INTEGER,
    priority            INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    closed_at           INTEGER,
    hidden              INTEGER NOT NULL,
    flag                INTEGER NOT NULL,
    notify_project_team INTEGER NOT NULL,
    notify_client       INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX projects_workspace ON projects (workspace_id, id);
CREATE INDEX projects_group ON projects (workspace_id, group_id, id);
CREATE INDEX projects_owner ON projects (workspace_id, owner_id, id);
CREATE INDEX projects_updated ON projects (workspace_id, updated_at);

CREATE TABLE project_team (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (project_id, user_id)
) WITHOUT ROWID;
CREATE INDEX project_team_user ON project_team (user_id, project_id);

CREATE TABLE tasks (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces (id),
    project_id          INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    parent_id           INTEGER REFERENCES tasks (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    description         TEXT,
    tags                TEXT,
    owner_id            INTEGER NOT NULL REFERENCES users (id),
    group_id            INTEGER REFERENCES project_groups (id) ON DELETE SET NULL,
    start_date          INTEGER,
    end_date            INTEGER,
    priority            INTEGER NOT NULL,
    progress            INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    closed_at           INTEGER,
    hidden              INTEGER NOT NULL,
    flag                INTEGER NOT NULL,
    hours_done          REAL NOT NULL DEFAULT 0,
    estimated_time      REAL,
    notify_project_team INTEGER NOT NULL,
    notify_task_team    INTEGER NOT NULL,
    notify_client       INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX tasks_workspace ON tasks (workspace_id, id);
CREATE INDEX tasks_project ON tasks (workspace_id, project_id, id);
CREATE INDEX tasks_parent ON tasks (parent_id);
CREATE INDEX tasks_owner ON tasks (workspace_id, owner_id, id);
CREATE INDEX tasks_group ON tasks (workspace_id, group_id, id);
CREATE INDEX tasks_end_date ON tasks (workspace_id, end_date);
CREATE INDEX tasks_start_date ON tasks (workspace_id, start_date);
CREATE INDEX tasks_created ON tasks (workspace_id, created_at);
CREATE INDEX tasks_updated ON tasks (workspace_id, updated_at);

CREATE TABLE task_team (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (task_id, user_id)
) WITHOUT ROWID;
CREATE INDEX task_team_user ON task_team (user_id, task_id);

CREATE TABLE activities (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces (id),
    project_id          INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    task_id             INTEGER REFERENCES tasks (id) ON DELETE CASCADE,
    type                TEXT NOT NULL,
    text                TEXT,
    owner_id            INTEGER NOT NULL REFERENCES users (id),
    progress            INTEGER,
    hours_done          REAL,
    hide_from_clients   INTEGER NOT NULL,
    date                INTEGER NOT NULL,
    notify_project_team INTEGER NOT NULL,
    notify_task_team    INTEGER NOT NULL,
    notify_client       INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX activities_workspace ON activities (workspace_id, id);
CREATE INDEX activities_project ON activities (workspace_id, project_id, id);
CREATE INDEX activities_task ON activities (task_id, id);
CREATE INDEX activities_updated ON activities (workspace_id, updated_at);

CREATE TABLE files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    activity_id  INTEGER NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    task_id      INTEGER,
    project_id   INTEGER,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mime_type    TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    -- the blob's server-made name in file storage
    storage_key  TEXT NOT NULL UNIQUE,
    owner_id     INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL
);
CREATE INDEX files_workspace ON files (workspace_id, id);
CREATE INDEX files_activity ON files (activity_id);
CREATE INDEX files_project ON files (workspace_id, project_id, id);
CREATE INDEX files_task ON files (workspace_id, task_id, id);

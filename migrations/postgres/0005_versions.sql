-- Versions: every write of a project, task, activity, user or group adds one to its
-- version, which answers carry as their ETag. An update names the version it read and
-- changes nothing when another writer came first (api-decisions.md, "Versions").
ALTER TABLE projects ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE activities ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE project_groups ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- One login's failures from every address are counted as a range of subjects compared
-- byte by byte (COLLATE "C"), whatever the database's collation: an index for that range.
CREATE INDEX login_failures_subject_bytes ON login_failures (workspace_id, (subject COLLATE "C"), failed_at);

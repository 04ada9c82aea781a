-- The newest progress note of a task, found without reading its other activities: a
-- task's progress is looked up again only when one of its progress notes is written.
CREATE INDEX activities_progress_notes ON activities (task_id, date, id) WHERE type = 'progress';

-- A task list filtered by project and status (active, say) counted from the index alone,
-- without reading every task of the project: with what a non-admin's visibility reads of
-- each task (hidden, owner) too. Hidden comes before status so that a user's count of the
-- hidden tasks they may see reads only the hidden ones (store/sql.rs, counted_task_total).
CREATE INDEX tasks_project_status ON tasks (workspace_id, project_id, hidden, status, owner_id);

-- How many tasks each project (0: none) holds in each status, hidden or not, kept by the
-- trigger below in the transaction that changes the tasks: a list of a project's (active)
-- tasks takes its total from here instead of counting every task (store/sql.rs,
-- counted_task_total).
-- Writers of one project's tasks queue briefly on its rows here.
CREATE TABLE task_counts (
    workspace_id BIGINT NOT NULL,
    project_id   BIGINT NOT NULL,
    status       BIGINT NOT NULL,
    hidden       BIGINT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, project_id, status, hidden)
);

INSERT INTO task_counts (workspace_id, project_id, status, hidden, n)
    SELECT workspace_id, COALESCE(project_id, 0), status, hidden, COUNT(*) FROM tasks
    GROUP BY 1, 2, 3, 4;

CREATE FUNCTION task_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE task_counts SET n = n - 1 WHERE workspace_id = OLD.workspace_id
            AND project_id = COALESCE(OLD.project_id, 0) AND status = OLD.status
        AND hidden = OLD.hidden;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO task_counts (workspace_id, project_id, status, hidden, n)
            VALUES (NEW.workspace_id, COALESCE(NEW.project_id, 0), NEW.status, NEW.hidden, 1)
            ON CONFLICT (workspace_id, project_id, status, hidden) DO UPDATE SET n = task_counts.n + 1;
    END IF;
    RETURN NULL;
END $$;

-- Also fired by the cascades that delete a project's or a parent's tasks.
CREATE TRIGGER task_counts_insert_delete AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_counts_follow();
CREATE TRIGGER task_counts_update AFTER UPDATE OF project_id, status, hidden ON tasks
    FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.status <> NEW.status
        OR OLD.hidden <> NEW.hidden)
    EXECUTE FUNCTION task_counts_follow();

-- How many tasks each user owns or is in the team of (each task once, however both),
-- per project (0: none), status and hidden, kept by the triggers below in the
-- transaction that changes the tasks or their teams: the total of a list of "the
-- caller's own tasks" of a project (an external outside the project's team, a user's
-- hidden tasks) is read from here instead of looking up each of those tasks
-- (store/sql.rs, counted_task_total; docs/performance.md, "An external's total kept").
-- SQLite's 0009; PostgreSQL has no 0008 of SQLite's (the project's index).
CREATE TABLE own_task_counts (
    workspace_id BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,
    project_id   BIGINT NOT NULL,
    status       BIGINT NOT NULL,
    hidden       BIGINT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id, project_id, status, hidden)
);

INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
    SELECT t.workspace_id, o.user_id, COALESCE(t.project_id, 0), t.status, t.hidden, COUNT(*)
    FROM (SELECT id AS task_id, owner_id AS user_id FROM tasks
          UNION SELECT task_id, user_id FROM task_team) o
    JOIN tasks t ON t.id = o.task_id
    GROUP BY 1, 2, 3, 4, 5;

-- A task's owner and team leave its old counts and join its new ones. The team is the
-- same before and after an update (it changes in statements of its own); a deleted task
-- leaves before the row goes, while its team is still there: the cascade deletes the
-- team's rows after the task's, when own_task_counts_team no longer finds the task. A
-- new task has no team yet.
CREATE FUNCTION own_task_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE own_task_counts SET n = n - 1 WHERE workspace_id = OLD.workspace_id
            AND project_id = COALESCE(OLD.project_id, 0) AND status = OLD.status
            AND hidden = OLD.hidden
            AND user_id IN (SELECT OLD.owner_id UNION SELECT user_id FROM task_team
                            WHERE task_id = OLD.id);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
            SELECT NEW.workspace_id, o.user_id, COALESCE(NEW.project_id, 0), NEW.status,
                   NEW.hidden, 1
            FROM (SELECT NEW.owner_id AS user_id UNION SELECT user_id FROM task_team
                  WHERE task_id = NEW.id) o
            ORDER BY o.user_id
            ON CONFLICT (workspace_id, user_id, project_id, status, hidden)
            DO UPDATE SET n = own_task_counts.n + 1;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER own_task_counts_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION own_task_counts_follow();
CREATE TRIGGER own_task_counts_delete BEFORE DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION own_task_counts_follow();
CREATE TRIGGER own_task_counts_update AFTER UPDATE OF owner_id, project_id, status, hidden
    ON tasks
    FOR EACH ROW WHEN (OLD.owner_id <> NEW.owner_id
        OR OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.status <> NEW.status
        OR OLD.hidden <> NEW.hidden)
    EXECUTE FUNCTION own_task_counts_follow();

-- A team member who owns the task is counted once, as its owner.
CREATE FUNCTION own_task_counts_team() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
            SELECT t.workspace_id, NEW.user_id, COALESCE(t.project_id, 0), t.status,
                   t.hidden, 1
            FROM tasks t WHERE t.id = NEW.task_id AND t.owner_id <> NEW.user_id
            ON CONFLICT (workspace_id, user_id, project_id, status, hidden)
            DO UPDATE SET n = own_task_counts.n + 1;
    ELSE
        UPDATE own_task_counts SET n = n - 1
            WHERE (workspace_id, user_id, project_id, status, hidden) =
                (SELECT t.workspace_id, OLD.user_id, COALESCE(t.project_id, 0), t.status,
                        t.hidden
                 FROM tasks t WHERE t.id = OLD.task_id AND t.owner_id <> OLD.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER own_task_counts_team AFTER INSERT OR DELETE ON task_team
    FOR EACH ROW EXECUTE FUNCTION own_task_counts_team();

-- How many tasks each user owns or is in the team of (each task once, however both),
-- per project (0: none), status and hidden, kept by the triggers below in the
-- transaction that changes the tasks or their teams: the total of a list of "the
-- caller's own tasks" of a project (an external outside the project's team, a user's
-- hidden tasks) is read from here instead of looking up each of those tasks
-- (store/sql.rs, counted_task_total; docs/performance.md, "An external's total kept").
CREATE TABLE own_task_counts (
    workspace_id INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    project_id   INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    hidden       INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id, project_id, status, hidden)
) WITHOUT ROWID;

INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
    SELECT t.workspace_id, o.user_id, COALESCE(t.project_id, 0), t.status, t.hidden, COUNT(*)
    FROM (SELECT id AS task_id, owner_id AS user_id FROM tasks
          UNION SELECT task_id, user_id FROM task_team) o
    JOIN tasks t ON t.id = o.task_id
    GROUP BY 1, 2, 3, 4, 5;

-- A new task has no team yet: its team's rows come after it (task_team's triggers).
CREATE TRIGGER own_task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
        VALUES (NEW.workspace_id, NEW.owner_id, COALESCE(NEW.project_id, 0), NEW.status,
                NEW.hidden, 1)
        ON CONFLICT (workspace_id, user_id, project_id, status, hidden) DO UPDATE SET n = n + 1;
END;

-- Before the row goes, while its team is still there: the cascade deletes the team's
-- rows after the task's, when task_team's trigger no longer finds the task.
CREATE TRIGGER own_task_counts_delete BEFORE DELETE ON tasks BEGIN
    UPDATE own_task_counts SET n = n - 1 WHERE workspace_id = OLD.workspace_id
        AND project_id = COALESCE(OLD.project_id, 0) AND status = OLD.status
        AND hidden = OLD.hidden
        AND user_id IN (SELECT OLD.owner_id UNION SELECT user_id FROM task_team
                        WHERE task_id = OLD.id);
END;

-- The team is the same before and after: it changes in statements of its own.
CREATE TRIGGER own_task_counts_update AFTER UPDATE OF owner_id, project_id, status, hidden
    ON tasks
    WHEN OLD.owner_id <> NEW.owner_id OR OLD.project_id IS NOT NEW.project_id
        OR OLD.status <> NEW.status OR OLD.hidden <> NEW.hidden
BEGIN
    UPDATE own_task_counts SET n = n - 1 WHERE workspace_id = OLD.workspace_id
        AND project_id = COALESCE(OLD.project_id, 0) AND status = OLD.status
        AND hidden = OLD.hidden
        AND user_id IN (SELECT OLD.owner_id UNION SELECT user_id FROM task_team
                        WHERE task_id = OLD.id);
    INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
        SELECT NEW.workspace_id, o.user_id, COALESCE(NEW.project_id, 0), NEW.status,
               NEW.hidden, 1
        FROM (SELECT NEW.owner_id AS user_id UNION SELECT user_id FROM task_team
              WHERE task_id = NEW.id) o
        WHERE true
        ON CONFLICT (workspace_id, user_id, project_id, status, hidden) DO UPDATE SET n = n + 1;
END;

-- A team member who owns the task is counted once, as its owner.
CREATE TRIGGER own_task_counts_team_insert AFTER INSERT ON task_team BEGIN
    INSERT INTO own_task_counts (workspace_id, user_id, project_id, status, hidden, n)
        SELECT t.workspace_id, NEW.user_id, COALESCE(t.project_id, 0), t.status, t.hidden, 1
        FROM tasks t WHERE t.id = NEW.task_id AND t.owner_id <> NEW.user_id
        ON CONFLICT (workspace_id, user_id, project_id, status, hidden) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER own_task_counts_team_delete AFTER DELETE ON task_team BEGIN
    UPDATE own_task_counts SET n = n - 1
        WHERE (workspace_id, user_id, project_id, status, hidden) =
            (SELECT t.workspace_id, OLD.user_id, COALESCE(t.project_id, 0), t.status, t.hidden
             FROM tasks t WHERE t.id = OLD.task_id AND t.owner_id <> OLD.user_id);
END;

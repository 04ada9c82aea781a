-- The newest progress note of a task, found without reading its other activities: a
-- task's progress is looked up again only when one of its progress notes is written.
CREATE INDEX activities_progress_notes ON activities (task_id, date, id) WHERE type = 'progress';

-- The total of a task list filtered by project and status (active, say) counted from the
-- index alone, without reading every task of the project.
CREATE INDEX tasks_project_status ON tasks (workspace_id, project_id, status);

-- A task's activities and a task's sub-tasks, counted and paged from an index of their
-- own: without statistics the planner otherwise walks the workspace's whole activity or
-- task index (9-12 ms for a task page with 55,000 activities; docs/performance.md,
-- "Web pages"). The older single-column indexes stay for the cascades and lineage walks.
CREATE INDEX activities_task_list ON activities (workspace_id, task_id, id);
CREATE INDEX tasks_parent_list ON tasks (workspace_id, parent_id, id);

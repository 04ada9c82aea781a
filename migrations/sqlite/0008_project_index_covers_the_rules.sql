-- A project's tasks by id, with what a list's filters and visibility test of each task
-- (hidden, status, workspace) in the index itself. It starts with the project, not the
-- workspace: a list of the tasks a caller owns or is in the team of tests the workspace
-- with a unary plus (store/sql.rs, `TaskVisibility::workspace_term`), so an index that
-- starts with the workspace cannot take those tasks; this one looks each of them up as
-- (project, id) and counts them without reading their rows. At 1,000,000 tasks an
-- external's count of the 1,000 tasks they see read 1,000 rows scattered over the table,
-- each a page read of its own (docs/performance.md, "An external's list at 1,000,000
-- tasks from the index"). PostgreSQL keeps (workspace_id, project_id, id): there the
-- same count by primary key measured faster than from this index.
DROP INDEX tasks_project;
CREATE INDEX tasks_project ON tasks (project_id, id, hidden, status, workspace_id);

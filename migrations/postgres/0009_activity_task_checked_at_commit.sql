-- An activity's task is checked at COMMIT, not as each activity is inserted. The check
-- share-locks the task's row; made while another transaction holds the row for its
-- hours roll-up, it turned the row's lock into a MultiXact, and every read of the busy
-- task's row then looked up the MultiXacts of each of its versions (activity adds to one
-- task fell from 5,600/s to 2,200/s within 24 s). At COMMIT the transaction has already
-- locked the rows whose hours it rolls up, and the check finds its own lock. Removing a
-- task still removes its activities at once: only the check is deferred, not the
-- cascade (docs/performance.md, "Activity adds to one busy task"). PostgreSQL only:
-- SQLite's checks take no row locks.
ALTER TABLE activities ALTER CONSTRAINT activities_task_id_fkey DEFERRABLE INITIALLY DEFERRED;

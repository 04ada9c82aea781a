//! A consistent copy of the SQLite database while the server writes to it, for
//! `vesper backup`, and the file rows of such a copy.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

/// A file row as a backup needs it: which blob, and what its bytes must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub storage_key: String,
    pub sha256: String,
    pub size: u64,
}

/// Copies the database at `source` into a new file `dest` with SQLite's online backup
/// API, every page in one step: one read transaction, so the copy is the database as
/// one commit left it. In WAL mode the server's writer goes on meanwhile (a checkpoint
/// waits for the copy). The copy is a single file in rollback-journal mode (the server
/// turns WAL on when it opens it), synced, and passes `PRAGMA integrity_check`; answers
/// its file rows.
pub fn snapshot(source: &Path, dest: &Path) -> anyhow::Result<Vec<FileRow>> {
    // No SQLITE_OPEN_CREATE: a wrong path is an error, not a new empty database.
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening the database {}", source.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    src.pragma_update(None, "query_only", "ON")?;
    create_private(dest)?;
    let mut dst = Connection::open(dest).with_context(|| format!("creating {}", dest.display()))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                // The writer held a lock a moment (a checkpoint, a schema change).
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => anyhow::bail!("the database copy did not finish: {other:?}"),
            }
        }
    }
    drop(src);
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        anyhow::bail!("the database copy fails its integrity check: {check}");
    }
    let rows = rows_of(&dst)?;
    dst.close().map_err(|(_, e)| e)?;
    std::fs::File::open(dest)?.sync_all()?;
    Ok(rows)
}

/// The file rows of a database copy, opened read-only: nothing is written next to it.
pub fn file_rows(db: &Path) -> anyhow::Result<Vec<FileRow>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", db.display()))?;
    rows_of(&conn).with_context(|| format!("reading the file rows of {}", db.display()))
}

fn rows_of(conn: &Connection) -> anyhow::Result<Vec<FileRow>> {
    let mut stmt = conn.prepare("SELECT id, storage_key, sha256, size FROM files ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(FileRow {
                id: r.get(0)?,
                storage_key: r.get(1)?,
                sha256: r.get(2)?,
                size: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// An empty file readable by its owner alone (SQLite keeps the mode of a file it opens).
fn create_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::files::PRIVATE_FILE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    crate::files::correct_mode(path, crate::files::PRIVATE_FILE)?;
    Ok(())
}

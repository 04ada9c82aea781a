//! `vesper backup` and `vesper restore`: a copy of an SQLite server's data taken while it
//! runs, and a data folder laid out again from one.
//!
//! A backup folder is a data folder plus its manifest:
//!
//! ```text
//! vesper.sqlite3   the database, one consistent snapshot (rollback-journal mode)
//! files/<key>      every blob a file row of that snapshot names, and no other
//! manifest.json    every file above with its size and SHA-256; written last
//! ```
//!
//! The snapshot comes first (SQLite's online backup API, one read transaction), then the
//! blobs its file rows name, each checked against its row's size and SHA-256. Blobs never
//! change once their row commits, so a copy made after the snapshot is the blob the row
//! names. A blob can only vanish because its row was removed after the snapshot (removing
//! a file, an activity, a workspace; the server removes a blob only once its row's removal
//! has committed): the backup then takes a fresh snapshot and copies what is new (blobs
//! already copied are kept, by key). A blob that cannot be read under two snapshots in a
//! row that both name it, or whose bytes are not its row's, is a damaged blob store: the
//! backup fails saying which file. After [`ATTEMPTS`] snapshots with files removed under
//! each, it gives up. Either way a finished backup holds the bytes of every file row it
//! has. Blobs copied for an earlier snapshot that the last one no longer names are left
//! out.
//!
//! Everything is written private (0700 folders, 0600 files) and synced; the manifest is
//! written last, so a folder without one is an incomplete backup, and `restore` refuses
//! it. PostgreSQL has its own tools: see `docs/deploy.md`.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::files::{correct_mode, create_private_dir, private_file, Blobs, PRIVATE_DIR};
use crate::store::sqlite::snapshot::{self, FileRow};

/// The manifest's name in a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// The database's name, in a backup folder as in a data folder.
pub const DATABASE: &str = "vesper.sqlite3";
/// The blobs' folder, in a backup folder as in a data folder.
pub const FILES: &str = "files";
/// What a manifest's `format` says.
const FORMAT: &str = "vesper-backup";
const FORMAT_VERSION: u32 = 1;
/// Snapshots taken before a backup gives up on files being removed under it.
pub const ATTEMPTS: usize = 10;
/// Blobs copied at once (several help with a bucket; a folder hardly minds).
const PARALLEL_COPIES: usize = 4;

const POSTGRES_REFUSAL: &str = "vesper backup and restore copy the embedded SQLite database; \
    on PostgreSQL use pg_dump and pg_restore and copy the files folder, as docs/deploy.md \
    (Backups) shows";

/// `manifest.json`: what the backup holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `vesper-backup`.
    pub format: String,
    pub version: u32,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The version of vesper that wrote it.
    pub vesper_version: String,
    /// The database's entry in `files` (`vesper.sqlite3`).
    pub database: String,
    /// Every file of the backup but the manifest: the database, then the blobs by path.
    pub files: Vec<Entry>,
}

/// One file of a backup, by its path relative to the backup folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// The SQLite database file the configuration names; PostgreSQL is refused.
fn database_path(config: &Config) -> anyhow::Result<PathBuf> {
    match config.database_url.as_deref() {
        None | Some("") => Ok(config.data_dir.join(DATABASE)),
        Some(url) if url.starts_with("sqlite://") => {
            Ok(PathBuf::from(url.trim_start_matches("sqlite://")))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            anyhow::bail!("{POSTGRES_REFUSAL}")
        }
        Some(_) => anyhow::bail!("unsupported database URL: use sqlite:///path or leave it empty"),
    }
}

/// A storage key as the server makes them (hex): anything else cannot be a path in a
/// backup folder.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `vesper backup --to DIR`.
pub async fn backup(config: Config, to: &Path, files_url: Option<&str>) -> anyhow::Result<()> {
    let source = database_path(&config)?;
    if !source.is_file() {
        anyhow::bail!("no database at {}", source.display());
    }
    let created = prepare_target(to)?;
    let files_url = files_url.or(config.files_url.as_deref());
    let blobs = Blobs::open(files_url, &config.data_dir)?;
    match write_backup(&source, &blobs, to, |_| {}).await {
        Ok(manifest) => {
            let bytes: u64 = manifest.files.iter().map(|e| e.size).sum();
            println!(
                "Backed up the database and {} files ({bytes} bytes in all) to {}",
                manifest.files.len() - 1,
                to.display()
            );
            Ok(())
        }
        Err(e) => {
            // Nothing of a failed backup is kept: the folder was new or empty.
            let cleaned = if created {
                std::fs::remove_dir_all(to)
            } else {
                empty_folder(to)
            };
            if let Err(c) = cleaned {
                tracing::warn!(error = %c, folder = %to.display(), "could not remove an incomplete backup");
            }
            Err(e.context(format!("backing up to {}", to.display())))
        }
    }
}

/// The target must be missing (it is made) or an empty folder; either way it ends up
/// private. Answers whether it was made.
fn prepare_target(to: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!(
                    "{} is not empty: a backup goes into a new or empty folder",
                    to.display()
                );
            }
            correct_mode(to, PRIVATE_DIR)?;
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(to).with_context(|| format!("creating {}", to.display()))?;
            if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", to.display())),
    }
}

fn empty_folder(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Writes the backup; `after_snapshot` runs after each snapshot (with its attempt number)
/// before the blobs are copied: where the tests remove a file under the backup.
async fn write_backup(
    source: &Path,
    blobs: &Blobs,
    to: &Path,
    mut after_snapshot: impl FnMut(usize),
) -> anyhow::Result<Manifest> {
    let files_dir = to.join(FILES);
    create_private_dir(&files_dir)?;
    let partial = to.join(format!("{DATABASE}.partial"));
    // Blobs copied so far, by key: their size and SHA-256 as read.
    let mut copied: BTreeMap<String, (u64, String)> = BTreeMap::new();
    // The blobs the last snapshot named and the copy could not read.
    let mut unread: HashSet<String> = HashSet::new();
    let mut attempt = 0;
    let (rows, created_at) = loop {
        attempt += 1;
        let created_at = chrono::Utc::now();
        let rows = {
            let (source, partial) = (source.to_owned(), partial.clone());
            tokio::task::spawn_blocking(move || snapshot::snapshot(&source, &partial)).await??
        };
        after_snapshot(attempt);
        if let Some(bad) = rows.iter().find(|r| !valid_key(&r.storage_key)) {
            anyhow::bail!("file {} has an unusable storage key", bad.id);
        }
        let wanted: Vec<FileRow> = rows
            .iter()
            .filter(|r| !copied.contains_key(&r.storage_key))
            .cloned()
            .collect();
        let results: Vec<(FileRow, anyhow::Result<(u64, String)>)> =
            futures_util::stream::iter(wanted)
                .map(|row| async {
                    let done = copy_blob(blobs, &row, &files_dir).await;
                    (row, done)
                })
                .buffer_unordered(PARALLEL_COPIES)
                .collect()
                .await;
        let mut missing = Vec::new();
        for (row, done) in results {
            match done {
                Ok((size, sha256))
                    if size == row.size && sha256.eq_ignore_ascii_case(&row.sha256) =>
                {
                    copied.insert(row.storage_key, (size, sha256));
                }
                // Blobs never change: bytes that are not the row's are damage, not a race.
                Ok((size, sha256)) => anyhow::bail!(
                    "file {} (blob {}): the blob store holds {size} bytes with SHA-256 \
                     {sha256}, its row says {} bytes with {}: the blob store is damaged",
                    row.id,
                    row.storage_key,
                    row.size,
                    row.sha256
                ),
                Err(e) => {
                    // A part written before the blob went away is no part of the backup.
                    let _ = std::fs::remove_file(files_dir.join(&row.storage_key));
                    missing.push((row, e));
                }
            }
        }
        if missing.is_empty() {
            break (rows, created_at);
        }
        // Unread before, and named again by a snapshot taken after that read: its row
        // outlived its blob, which the server never does.
        if let Some(i) = missing
            .iter()
            .position(|(row, _)| unread.contains(&row.storage_key))
        {
            let (row, e) = missing.swap_remove(i);
            return Err(e.context(format!(
                "file {} (blob {}) is missing or unreadable in the blob store while the \
                 database still names it: the blob store is damaged",
                row.id, row.storage_key
            )));
        }
        if attempt >= ATTEMPTS {
            anyhow::bail!(
                "files kept being removed under the backup ({ATTEMPTS} snapshots): try again \
                 when the server is quieter"
            );
        }
        for (row, e) in &missing {
            tracing::info!(file = row.id, error = %e,
                "a blob went away after the snapshot (its row was removed): taking a new snapshot");
        }
        unread = missing
            .into_iter()
            .map(|(row, _)| row.storage_key)
            .collect();
    };
    // Blobs an earlier snapshot named and the last one does not.
    let named: HashSet<&str> = rows.iter().map(|r| r.storage_key.as_str()).collect();
    for key in copied.keys().filter(|k| !named.contains(k.as_str())) {
        std::fs::remove_file(files_dir.join(key))?;
    }
    sync_dir(&files_dir)?;
    let database = to.join(DATABASE);
    std::fs::rename(&partial, &database)?;
    sync_dir(to)?;

    let (size, sha256) = {
        let database = database.clone();
        tokio::task::spawn_blocking(move || sum_of(&database)).await??
    };
    let mut files = vec![Entry {
        path: DATABASE.into(),
        size,
        sha256,
    }];
    let mut blob_entries: Vec<Entry> = named
        .iter()
        .map(|key| {
            let (size, sha256) = copied[*key].clone();
            Entry {
                path: format!("{FILES}/{key}"),
                size,
                sha256,
            }
        })
        .collect();
    blob_entries.sort_by(|a, b| a.path.cmp(&b.path));
    files.extend(blob_entries);
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        vesper_version: env!("CARGO_PKG_VERSION").into(),
        database: DATABASE.into(),
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest)?;
    let pending = to.join(format!("{MANIFEST}.partial"));
    let mut file = private_file().open(&pending).await?;
    file.write_all(&text).await?;
    file.sync_all().await?;
    drop(file);
    std::fs::rename(&pending, to.join(MANIFEST))?;
    sync_dir(to)?;
    Ok(manifest)
}

/// Copies one blob into the backup, synced, and answers the size and SHA-256 of what it
/// read.
async fn copy_blob(blobs: &Blobs, row: &FileRow, dir: &Path) -> anyhow::Result<(u64, String)> {
    let mut stream = blobs.read(&row.storage_key, 0, row.size).await?;
    let path = dir.join(&row.storage_key);
    let mut out = private_file().open(&path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await?;
    }
    out.sync_all().await?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Syncs a folder, so that the names just made in it survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A file's size and SHA-256.
fn sum_of(path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Copies a file, synced and private, and answers the size and SHA-256 of what it read.
fn copy_summed(from: &Path, to: &Path) -> io::Result<(u64, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut input = std::fs::File::open(from)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::files::PRIVATE_FILE)
        .open(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    out.sync_all()?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// `vesper restore --from DIR`: checks the whole backup, then lays out the data folder.
pub async fn restore(config: Config, from: &Path, overwrite: bool) -> anyhow::Result<()> {
    match config.database_url.as_deref() {
        None | Some("") => {}
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            anyhow::bail!("{POSTGRES_REFUSAL}")
        }
        Some(_) => anyhow::bail!(
            "vesper restore lays out a data folder (vesper.sqlite3 and files/): \
             give --data-dir, not --database-url"
        ),
    }
    let (from, target) = (from.to_owned(), config.data_dir.clone());
    let restored =
        tokio::task::spawn_blocking(move || restore_blocking(&from, &target, overwrite)).await??;
    println!(
        "Restored the database and {restored} files into {}",
        config.data_dir.display()
    );
    Ok(())
}

fn restore_blocking(from: &Path, target: &Path, overwrite: bool) -> anyhow::Result<usize> {
    let manifest = read_manifest(from)?;
    if !overwrite && !is_empty_or_missing(target)? {
        anyhow::bail!(
            "{} is not empty; add --overwrite to replace its database and files \
             (stop the server first)",
            target.display()
        );
    }
    // Every sum before anything is written.
    for entry in &manifest.files {
        let path = from.join(&entry.path);
        let (size, sha256) =
            sum_of(&path).with_context(|| format!("reading {}", path.display()))?;
        if size != entry.size || sha256 != entry.sha256 {
            anyhow::bail!(
                "{} does not match the manifest ({size} bytes with SHA-256 {sha256}, the \
                 manifest says {} bytes with {}): the backup is damaged; nothing was restored",
                path.display(),
                entry.size,
                entry.sha256
            );
        }
    }
    // And every file row of the database has its blob, with the row's sum.
    let by_path: BTreeMap<&str, &Entry> = manifest
        .files
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    for row in snapshot::file_rows(&from.join(DATABASE))? {
        let path = format!("{FILES}/{}", row.storage_key);
        match by_path.get(path.as_str()) {
            Some(e) if e.size == row.size && e.sha256.eq_ignore_ascii_case(&row.sha256) => {}
            _ => anyhow::bail!(
                "file {} of the database has no blob with its SHA-256 in the backup: \
                 the backup is damaged; nothing was restored",
                row.id
            ),
        }
    }

    crate::files::make_private(target)
        .with_context(|| format!("making {} private", target.display()))?;
    let staging = target.join(".vesper-restore");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    create_private_dir(&staging.join(FILES))?;
    let copied = (|| -> anyhow::Result<()> {
        for entry in &manifest.files {
            let (size, sha256) = copy_summed(&from.join(&entry.path), &staging.join(&entry.path))?;
            if size != entry.size || sha256 != entry.sha256 {
                anyhow::bail!("{} changed while it was restored", entry.path);
            }
        }
        sync_dir(&staging.join(FILES))?;
        sync_dir(&staging)?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }

    // Into place: a WAL or journal of the database replaced would be applied to the
    // restored one, so they go first.
    for suffix in ["-wal", "-shm", "-journal"] {
        match std::fs::remove_file(target.join(format!("{DATABASE}{suffix}"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::rename(staging.join(DATABASE), target.join(DATABASE))?;
    let files = target.join(FILES);
    let old = target.join(".vesper-restore-old-files");
    if files.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&files, &old)?;
    }
    std::fs::rename(staging.join(FILES), &files)?;
    sync_dir(target)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    std::fs::remove_dir(&staging)?;
    sync_dir(target)?;
    Ok(manifest.files.len() - 1)
}

fn is_empty_or_missing(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// The manifest of a backup folder, with every path one a backup writes.
pub fn read_manifest(from: &Path) -> anyhow::Result<Manifest> {
    let path = from.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => anyhow::bail!(
            "{} has no {MANIFEST}: it is not a backup, or an incomplete one (a backup \
             writes its manifest last)",
            from.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a vesper backup manifest", path.display()))?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        anyhow::bail!(
            "{} is a {} manifest of version {}; this vesper reads {FORMAT} version {FORMAT_VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        );
    }
    let mut seen = HashSet::new();
    for entry in &manifest.files {
        let ok = entry.path == DATABASE || entry.path.strip_prefix("files/").is_some_and(valid_key);
        if !ok || !seen.insert(entry.path.as_str()) {
            anyhow::bail!(
                "{} names an unexpected file {:?}",
                path.display(),
                entry.path
            );
        }
    }
    if manifest.database != DATABASE || !seen.contains(DATABASE) {
        anyhow::bail!("{} lists no database", path.display());
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with a files table alone (what a backup reads of it), in WAL mode as
    /// the server keeps it, and a blob folder holding the blobs its rows name.
    async fn source(dir: &Path, blobs: &Blobs, count: usize) -> PathBuf {
        let db = dir.join(DATABASE);
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE files (id INTEGER PRIMARY KEY, storage_key TEXT NOT NULL, \
             sha256 TEXT NOT NULL, size INTEGER NOT NULL)",
        )
        .unwrap();
        for i in 0..count {
            let bytes = format!("blob number {i}").repeat(i + 1);
            let mut staging = blobs.stage().await.unwrap();
            staging.write(bytes.as_bytes()).await.unwrap();
            let mut blob = staging.finish().await.unwrap();
            blob.persist().await.unwrap();
            conn.execute(
                "INSERT INTO files (storage_key, sha256, size) VALUES (?1, ?2, ?3)",
                rusqlite::params![blob.key, blob.sha256, blob.size as i64],
            )
            .unwrap();
        }
        db
    }

    fn remove_row(db: &Path, id: i64) -> String {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row(
            "DELETE FROM files WHERE id = ?1 RETURNING storage_key",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn files_removed_after_a_snapshot_make_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::folder(&dir.path().join("files")).unwrap();
        let db = source(dir.path(), &blobs, 3).await;
        let to = dir.path().join("backup");
        prepare_target(&to).unwrap();
        // After the first snapshot, file 2 goes as the server removes one (row, then
        // blob) and file 4 comes; after the second, file 4 goes before it was copied.
        let mut snapshots = 0;
        let manifest = write_backup(&db, &blobs, &to, |attempt| {
            snapshots += 1;
            let remove = |id| {
                let key = remove_row(&db, id);
                std::fs::remove_file(dir.path().join("files").join(key)).unwrap();
            };
            if attempt == 1 {
                remove(2);
                let key = "00aa11bb";
                std::fs::write(dir.path().join("files").join(key), "four").unwrap();
                let sum = hex::encode(Sha256::digest(b"four"));
                rusqlite::Connection::open(&db)
                    .unwrap()
                    .execute(
                        "INSERT INTO files (id, storage_key, sha256, size) VALUES (4, ?1, ?2, 4)",
                        rusqlite::params![key, sum],
                    )
                    .unwrap();
            } else if attempt == 2 {
                remove(4);
            }
        })
        .await
        .unwrap();
        assert_eq!(snapshots, 3);
        let rows = snapshot::file_rows(&to.join(DATABASE)).unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 3]);
        let mut listed: Vec<String> = manifest.files.iter().map(|e| e.path.clone()).collect();
        let mut expected = vec![DATABASE.to_owned()];
        expected.extend(rows.iter().map(|r| format!("{FILES}/{}", r.storage_key)));
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected);
        // No blob of the first snapshot's is left over, and the manifest is there.
        assert_eq!(std::fs::read_dir(to.join(FILES)).unwrap().count(), 2);
        assert!(to.join(MANIFEST).exists());
        assert!(!to.join(format!("{DATABASE}.partial")).exists());
        read_manifest(&to).unwrap();
    }

    #[tokio::test]
    async fn a_blob_missing_under_two_snapshots_fails_the_backup_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::folder(&dir.path().join("files")).unwrap();
        let db = source(dir.path(), &blobs, 2).await;
        let key = snapshot::file_rows(&db).unwrap()[1].storage_key.clone();
        std::fs::remove_file(dir.path().join("files").join(&key)).unwrap();
        let to = dir.path().join("backup");
        prepare_target(&to).unwrap();
        let mut snapshots = 0;
        let failed = write_backup(&db, &blobs, &to, |_| snapshots += 1)
            .await
            .unwrap_err();
        // The second snapshot names it again: no third.
        assert_eq!(snapshots, 2);
        let text = format!("{failed:#}");
        assert!(text.contains("file 2") && text.contains(&key), "{text}");
        assert!(!to.join(MANIFEST).exists());
    }

    #[tokio::test]
    async fn a_blob_whose_bytes_are_not_its_rows_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::folder(&dir.path().join("files")).unwrap();
        let db = source(dir.path(), &blobs, 2).await;
        let key = snapshot::file_rows(&db).unwrap()[0].storage_key.clone();
        std::fs::write(dir.path().join("files").join(&key), "blob number X").unwrap();
        let to = dir.path().join("backup");
        prepare_target(&to).unwrap();
        let failed = write_backup(&db, &blobs, &to, |_| {}).await.unwrap_err();
        let text = format!("{failed:#}");
        assert!(text.contains("the blob store is damaged"), "{text}");
        assert!(!to.join(MANIFEST).exists());
    }

    #[test]
    fn a_manifest_names_only_what_a_backup_writes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |files: serde_json::Value| {
            let manifest = serde_json::json!({
                "format": FORMAT, "version": FORMAT_VERSION, "created_at": "",
                "vesper_version": "", "database": DATABASE, "files": files,
            });
            std::fs::write(dir.path().join(MANIFEST), manifest.to_string()).unwrap();
        };
        let entry = |path: &str| serde_json::json!({"path": path, "size": 0, "sha256": ""});
        write(serde_json::json!([entry(DATABASE), entry("files/00ff")]));
        read_manifest(dir.path()).unwrap();
        for bad in [
            "files/../../etc/passwd",
            "/etc/passwd",
            "files/",
            "other",
            "files/a/b",
        ] {
            write(serde_json::json!([entry(DATABASE), entry(bad)]));
            assert!(read_manifest(dir.path()).is_err(), "{bad}");
        }
        write(serde_json::json!([entry("files/00ff")]));
        assert!(read_manifest(dir.path()).is_err(), "no database");
        write(serde_json::json!([entry(DATABASE), entry(DATABASE)]));
        assert!(read_manifest(dir.path()).is_err(), "twice");
    }
}

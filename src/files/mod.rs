//! Blob storage for attached files, under server-made keys: a local (or shared) folder,
//! or an S3-compatible bucket.
//!
//! In a folder an upload is written to `tmp/`, synced, then renamed to its key and the
//! folder synced; in a bucket it is uploaded under its key (a completed upload is
//! durable). Either way this happens before the file's row is committed, so no row ever
//! names a missing blob. A crash leaves at most an orphan, which [`Blobs::sweep`] removes
//! once it is older than [`SWEEP_GRACE`] (younger ones may belong to another node's
//! upload in flight).
//!
//! It also keeps the data folder private: what the server writes there (the database, the
//! blobs, the mail folder, the TLS key) is readable by the server's account alone,
//! whatever the umask; see [`make_private`].

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The mode of every folder the server makes: its account alone may list and enter it.
pub const PRIVATE_DIR: u32 = 0o700;
/// The mode of every file the server writes: its account alone may read it.
pub const PRIVATE_FILE: u32 = 0o600;

/// Creates a folder and its missing parents with [`PRIVATE_DIR`]; folders that exist
/// already are left as they are.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Options that create (or truncate) a file with [`PRIVATE_FILE`] for writing.
pub fn private_file() -> tokio::fs::OpenOptions {
    let mut options = tokio::fs::OpenOptions::new();
    options
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE);
    options
}

/// The data folder's entries that hold the server's own folders and files. Others
/// (something an administrator keeps there) are left alone.
const DATA_ENTRIES: &[&str] = &["files", "mail", "tls"];

/// Creates the data folder if needed, then makes it and the server's folders and files in
/// it private: earlier versions left them 0755 and 0644 (readable by every local
/// account, password hashes included). The database's own files are SQLite's to fix
/// (when storage opens them), wherever they are.
pub fn make_private(data_dir: &Path) -> io::Result<()> {
    create_private_dir(data_dir)?;
    correct_mode(data_dir, PRIVATE_DIR)?;
    for name in DATA_ENTRIES {
        make_private_tree(&data_dir.join(name))?;
    }
    Ok(())
}

/// Makes a folder and everything in it private; a missing path is nothing to do.
/// Symbolic links are not followed: changing a mode would change their target's.
fn make_private_tree(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        if mode != PRIVATE_DIR {
            correct_mode(path, PRIVATE_DIR)?;
        }
        for entry in std::fs::read_dir(path)? {
            make_private_tree(&entry?.path())?;
        }
    } else if meta.is_file() && mode != PRIVATE_FILE {
        correct_mode(path, PRIVATE_FILE)?;
    }
    Ok(())
}

/// Sets a path's permission bits exactly (the umask plays no part in chmod). A path
/// another account owns is left as it is, with a warning: the server cannot change it,
/// and refusing to start over it would break a setup that works.
pub fn correct_mode(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), error = %e,
                "could not make a path of the data folder private");
            Ok(())
        }
        done => done,
    }
}

/// How old an unreferenced blob must be before the sweep removes it.
pub const SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// Where blobs live.
#[derive(Clone)]
enum Backend {
    Folder(PathBuf),
    Bucket {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// The blob storage.
#[derive(Clone)]
pub struct Blobs {
    backend: Backend,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Folder(dir) => write!(f, "Blobs(folder {})", dir.display()),
            Backend::Bucket { prefix, .. } => write!(f, "Blobs(bucket, prefix {prefix:?})"),
        }
    }
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Blobs {
    /// A folder of blobs (a shared mount when several nodes run).
    pub fn folder(dir: &Path) -> io::Result<Blobs> {
        create_private_dir(&dir.join("tmp"))?;
        Ok(Blobs {
            backend: Backend::Folder(dir.to_path_buf()),
        })
    }

    /// Storage from a URL: `file:///path`, or `s3://bucket/prefix` with the options
    /// `endpoint`, `region` and `allow_http` as query parameters; credentials come from
    /// the usual `AWS_*` environment variables. `None`: the data folder's `files/`.
    pub fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Blobs> {
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return Ok(Blobs::folder(&data_dir.join("files"))?);
        };
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Blobs::folder(Path::new(path))?);
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!("the files URL must start with file:// or s3://");
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            builder = match k.as_ref() {
                "endpoint" => builder.with_endpoint(v.as_ref()),
                "region" => builder.with_region(v.as_ref()),
                "allow_http" => builder.with_allow_http(v == "true" || v == "1"),
                other => anyhow::bail!("unknown files URL option {other:?}"),
            };
        }
        let store = builder
            .build()
            .map_err(|e| anyhow::anyhow!("the S3 files URL is not usable: {e}"))?;
        Ok(Blobs {
            backend: Backend::Bucket {
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_owned(),
            },
        })
    }

    fn object(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    /// Starts a new blob under a fresh key.
    pub async fn stage(&self) -> io::Result<Staging> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let key = hex::encode(raw);
        let sink = match &self.backend {
            Backend::Folder(dir) => {
                Sink::File(private_file().open(dir.join("tmp").join(&key)).await?)
            }
            Backend::Bucket { store, prefix } => {
                let upload = store
                    .put_multipart(&Self::object(prefix, &key))
                    .await
                    .map_err(io_error)?;
                Sink::Upload(WriteMultipart::new(upload))
            }
        };
        Ok(Staging {
            blob: StagedBlob {
                key,
                size: 0,
                sha256: String::new(),
                blobs: self.clone(),
                persisted: false,
            },
            sink,
            hasher: Sha256::new(),
        })
    }

    /// Reads `len` bytes from `first`, as a stream.
    pub async fn read(
        &self,
        key: &str,
        first: u64,
        len: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        match &self.backend {
            Backend::Folder(dir) => {
                let mut file = tokio::fs::File::open(dir.join(key)).await?;
                if first > 0 {
                    file.seek(io::SeekFrom::Start(first)).await?;
                }
                // Large chunks: fewer TLS records and system calls per file.
                Ok(tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024).boxed())
            }
            Backend::Bucket { store, prefix } => {
                if len == 0 {
                    return Ok(futures_util::stream::empty().boxed());
                }
                let options = object_store::GetOptions {
                    range: Some((first..first + len).into()),
                    ..Default::default()
                };
                let got = store
                    .get_opts(&Self::object(prefix, key), options)
                    .await
                    .map_err(io_error)?;
                Ok(got.into_stream().map_err(io_error).boxed())
            }
        }
    }

    /// Removes blobs whose rows are gone; a failure is logged, not returned: the sweep
    /// catches what is left.
    pub async fn remove_all(&self, keys: &[String]) {
        for key in keys {
            let removed = match &self.backend {
                Backend::Folder(dir) => match tokio::fs::remove_file(dir.join(key)).await {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
                Backend::Bucket { store, prefix } => store
                    .delete(&Self::object(prefix, key))
                    .await
                    .map_err(io_error),
            };
            if let Err(e) = removed {
                tracing::warn!(error = %e, "could not remove a file blob");
            }
        }
    }

    /// Removes every blob no row names and every unfinished upload, once older than
    /// `grace`.
    pub async fn sweep(&self, known: &HashSet<String>, grace: Duration) -> io::Result<usize> {
        let cutoff = SystemTime::now() - grace;
        let mut removed = 0;
        match &self.backend {
            Backend::Folder(dir) => {
                for folder in [dir.join("tmp"), dir.clone()] {
                    let in_tmp = folder.ends_with("tmp");
                    let mut entries = tokio::fs::read_dir(&folder).await?;
                    while let Some(entry) = entries.next_entry().await? {
                        let meta = entry.metadata().await?;
                        if !meta.is_file() || meta.modified()? > cutoff {
                            continue;
                        }
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if in_tmp || !known.contains(&name) {
                            tokio::fs::remove_file(entry.path()).await?;
                            removed += 1;
                        }
                    }
                }
            }
            Backend::Bucket { store, prefix } => {
                let base = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let mut listing = store.list(base.as_ref());
                let mut orphans = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(io_error)?;
                    let key = meta.location.filename().unwrap_or("").to_owned();
                    if !known.contains(&key) && SystemTime::from(meta.last_modified) <= cutoff {
                        orphans.push(meta.location);
                    }
                }
                for location in orphans {
                    store.delete(&location).await.map_err(io_error)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

enum Sink {
    File(tokio::fs::File),
    Upload(WriteMultipart),
}

/// A blob being written.
pub struct Staging {
    blob: StagedBlob,
    sink: Sink,
    hasher: Sha256,
}

impl Staging {
    pub fn size(&self) -> u64 {
        self.blob.size
    }

    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.blob.size += chunk.len() as u64;
        match &mut self.sink {
            Sink::File(file) => file.write_all(chunk).await,
            Sink::Upload(upload) => {
                // Bounds the parts in flight, so memory stays bounded too.
                upload.wait_for_capacity(2).await.map_err(io_error)?;
                upload.write(chunk);
                Ok(())
            }
        }
    }

    /// Makes the bytes durable: synced to disk, or the upload completed.
    pub async fn finish(mut self) -> io::Result<StagedBlob> {
        match self.sink {
            Sink::File(mut file) => {
                file.flush().await?;
                file.sync_all().await?;
            }
            Sink::Upload(upload) => {
                upload.finish().await.map_err(io_error)?;
            }
        }
        self.blob.sha256 = hex::encode(self.hasher.finalize());
        Ok(self.blob)
    }
}

/// A complete, durable blob, not yet given to a row. Dropped without
/// [`StagedBlob::persist`], it is deleted.
pub struct StagedBlob {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    blobs: Blobs,
    persisted: bool,
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StagedBlob({}, {} bytes)", self.key, self.size)
    }
}

impl StagedBlob {
    /// Puts the blob under its key for good: after this it survives a crash.
    pub async fn persist(&mut self) -> io::Result<()> {
        if let Backend::Folder(dir) = &self.blobs.backend {
            tokio::fs::rename(dir.join("tmp").join(&self.key), dir.join(&self.key)).await?;
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(io::Error::other)??;
        }
        self.persisted = true;
        crate::metrics::METRICS.file_bytes_stored.add(self.size);
        Ok(())
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if self.persisted {
            return;
        }
        match &self.blobs.backend {
            Backend::Folder(dir) => {
                let _ = std::fs::remove_file(dir.join("tmp").join(&self.key));
            }
            Backend::Bucket { .. } => {
                // Uploaded under its key already: delete it in the background; the
                // sweep removes it if this fails.
                let blobs = self.blobs.clone();
                let key = self.key.clone();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { blobs.remove_all(&[key]).await });
                }
            }
        }
    }
}

/// A file name safe to store and to show: no folders, no control characters, at most
/// 255 characters; "file" when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '\u{FFFE}' && *c != '\u{FFFF}')
        .take(255)
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        "file".into()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_folders_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name("  "), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name("résumé \"final\".txt"), "résumé \"final\".txt");
    }

    #[tokio::test]
    async fn unpersisted_blobs_vanish_and_the_sweep_removes_old_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::folder(dir.path()).unwrap();
        let mut s = blobs.stage().await.unwrap();
        s.write(b"hello").await.unwrap();
        let staged = s.finish().await.unwrap();
        assert_eq!(staged.size, 5);
        assert_eq!(
            staged.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        drop(staged);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let mut kept = blobs.stage().await.unwrap();
        kept.write(b"a").await.unwrap();
        let mut kept = kept.finish().await.unwrap();
        kept.persist().await.unwrap();
        let mut orphan = blobs.stage().await.unwrap();
        orphan.write(b"b").await.unwrap();
        let mut orphan = orphan.finish().await.unwrap();
        orphan.persist().await.unwrap();
        let known: HashSet<String> = [kept.key.clone()].into();
        // Young orphans may be another node's upload in flight: kept.
        assert_eq!(blobs.sweep(&known, SWEEP_GRACE).await.unwrap(), 0);
        assert_eq!(blobs.sweep(&known, Duration::ZERO).await.unwrap(), 1);
        let read: Vec<Bytes> = blobs
            .read(&kept.key, 0, 1)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(read.concat(), b"a");
        let dir_path = dir.path().to_path_buf();
        assert!(dir_path.join(&kept.key).exists());
        assert!(!dir_path.join(&orphan.key).exists());
    }
}

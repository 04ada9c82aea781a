//! Blob storage for attached files: a local folder under server-made keys.
//!
//! An upload is written to `tmp/`, synced, then renamed to its key and the folder
//! synced, all before its row is committed, so no row ever names a missing blob. A crash
//! leaves at most an orphan, which [`Blobs::sweep`] removes at start.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The folder of blobs.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn open(dir: &Path) -> io::Result<Blobs> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(Blobs {
            dir: dir.to_path_buf(),
        })
    }

    /// Where a blob lives.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Starts a new blob under a fresh key.
    pub async fn stage(&self) -> io::Result<Staging> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let key = hex::encode(raw);
        let tmp = self.dir.join("tmp").join(&key);
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Staging {
            blob: StagedBlob {
                key,
                size: 0,
                sha256: String::new(),
                tmp,
                dir: self.dir.clone(),
                persisted: false,
            },
            file,
            hasher: Sha256::new(),
        })
    }

    /// Removes blobs whose rows are gone; a failure is logged, not returned: the sweep
    /// at the next start catches what is left.
    pub async fn remove_all(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = tokio::fs::remove_file(self.path(key)).await {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "could not remove a file blob");
                }
            }
        }
    }

    /// Removes every blob no row names, and every unfinished upload.
    pub async fn sweep(&self, known: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for dir in [self.dir.join("tmp"), self.dir.clone()] {
            let mut entries = tokio::fs::read_dir(&dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                if !entry.file_type().await?.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if dir.ends_with("tmp") || !known.contains(&name) {
                    tokio::fs::remove_file(entry.path()).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// A blob being written.
pub struct Staging {
    blob: StagedBlob,
    file: tokio::fs::File,
    hasher: Sha256,
}

impl Staging {
    pub fn size(&self) -> u64 {
        self.blob.size
    }

    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.blob.size += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Syncs the bytes to disk.
    pub async fn finish(mut self) -> io::Result<StagedBlob> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        self.blob.sha256 = hex::encode(self.hasher.finalize());
        Ok(self.blob)
    }
}

/// A complete blob, synced, not yet under its key. Dropped without
/// [`StagedBlob::persist`], it is deleted.
#[derive(Debug)]
pub struct StagedBlob {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    tmp: PathBuf,
    dir: PathBuf,
    persisted: bool,
}

impl StagedBlob {
    /// Moves the blob under its key and syncs the folder: after this it survives a crash.
    pub async fn persist(&mut self) -> io::Result<()> {
        tokio::fs::rename(&self.tmp, self.dir.join(&self.key)).await?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
            .await
            .map_err(io::Error::other)??;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.tmp);
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
    async fn unpersisted_blobs_vanish_and_the_sweep_removes_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
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
        assert_eq!(blobs.sweep(&known).await.unwrap(), 1);
        assert!(blobs.path(&kept.key).exists());
        assert!(!blobs.path(&orphan.key).exists());
    }
}

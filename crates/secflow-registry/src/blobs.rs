//! Content-addressed package files on disk: `blobs/sha256/ab/abcdef…`, named by the SHA-256
//! of their bytes, written whole or not at all, and checked against their name on every read.

use crate::RegistryError;
use std::path::{Path, PathBuf};

/// The blob directory of a registry.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// SHA-256 of `bytes`, hex: a blob's name.
pub fn blob_name(bytes: &[u8]) -> String {
    secflow_io::sha256_hex(bytes)
}

fn valid_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf, RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::Blob {
                name: name.to_string(),
                reason: "not a SHA-256 blob name".into(),
            });
        }
        Ok(self.root.join("sha256").join(&name[..2]).join(name))
    }

    fn io(&self, path: &Path, e: std::io::Error) -> RegistryError {
        RegistryError::Io(format!("{}: {e}", path.display()))
    }

    /// Stores `bytes` and returns their name. Idempotent. The bytes go to a temporary file
    /// in the same directory, are synced, renamed into place and the directory synced, so a
    /// crash leaves either no blob or the whole blob (and at worst a stray temporary file,
    /// which [`BlobStore::sweep_temporaries`] removes).
    pub fn put(&self, bytes: &[u8]) -> Result<String, RegistryError> {
        let name = blob_name(bytes);
        let path = self.path(&name)?;
        if let Ok(existing) = std::fs::read(&path)
            && blob_name(&existing) == name
        {
            return Ok(name);
        }
        let dir = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir).map_err(|e| self.io(dir, e))?;
        // Temporary files start with `.tmp-`, which `sweep` removes after a crash.
        secflow_io::write_atomic(&path, bytes, secflow_io::Mode::Shared)
            .map_err(|e| self.io(&path, e))?;
        Ok(name)
    }

    /// Reads a blob and checks that its bytes still hash to its name.
    pub fn get(&self, name: &str) -> Result<Vec<u8>, RegistryError> {
        let path = self.path(name)?;
        let bytes = std::fs::read(&path).map_err(|e| RegistryError::Blob {
            name: name.to_string(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        if blob_name(&bytes) != name {
            return Err(RegistryError::Blob {
                name: name.to_string(),
                reason: format!(
                    "{} was modified on disk (its SHA-256 no longer matches); reinstall the plugin",
                    path.display()
                ),
            });
        }
        Ok(bytes)
    }

    /// Deletes every blob not in `keep`; returns how many were removed. Call it only while
    /// holding the registry's write lock, so no blob of an install in progress is taken.
    pub fn retain(&self, keep: &std::collections::HashSet<String>) -> Result<usize, RegistryError> {
        let mut removed = 0;
        let top = self.root.join("sha256");
        let Ok(dirs) = std::fs::read_dir(&top) else {
            return Ok(0);
        };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().to_string();
                if name.starts_with(".tmp-") || (valid_name(&name) && !keep.contains(&name)) {
                    std::fs::remove_file(file.path()).map_err(|e| self.io(&file.path(), e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_detect_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let name = store.put(b"package bytes").unwrap();
        assert_eq!(store.put(b"package bytes").unwrap(), name, "idempotent");
        assert_eq!(store.get(&name).unwrap(), b"package bytes");
        let path = store.path(&name).unwrap();
        std::fs::write(&path, b"package bytez").unwrap();
        let err = store.get(&name).unwrap_err().to_string();
        assert!(err.contains("modified on disk"), "{err}");
        // A corrupted blob is replaced by a fresh put of the right bytes.
        store.put(b"package bytes").unwrap();
        assert_eq!(store.get(&name).unwrap(), b"package bytes");
    }

    #[test]
    fn hostile_blob_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        // Without the name check `../secret` would be read from blobs/sha256/../../secret,
        // which is a real file.
        assert!(dir.path().join("blobs/sha256/../../secret").is_file());
        let upper = "A".repeat(64);
        let not_hex = "g".repeat(64);
        for name in ["../secret", "", "ABCDEF", upper.as_str(), not_hex.as_str()] {
            match store.get(name) {
                Err(RegistryError::Blob { reason, .. }) => {
                    assert_eq!(reason, "not a SHA-256 blob name", "{name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn retain_removes_unreferenced_blobs_and_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let keep = store.put(b"keep").unwrap();
        let drop = store.put(b"drop").unwrap();
        let stray = store.path(&keep).unwrap().with_file_name(".tmp-crashed");
        std::fs::write(&stray, b"half").unwrap();
        let removed = store.retain(&[keep.clone()].into_iter().collect()).unwrap();
        assert_eq!(removed, 2);
        assert!(store.get(&keep).is_ok());
        assert!(matches!(
            store.get(&drop),
            Err(RegistryError::Blob { reason, .. }) if reason.starts_with("cannot read")
        ));
        assert!(!stray.exists());
    }
}

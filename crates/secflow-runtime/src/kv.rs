//! The per-plugin key-value store: one JSON file per plugin id, written atomically, with a
//! size quota. Plugins never see the path; they address keys only.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 256;
/// Default quota when the capability does not set `max-kib`.
pub const DEFAULT_QUOTA_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    entries: BTreeMap<String, Vec<u8>>,
}

/// A plugin's store, opened for one invocation.
#[derive(Debug)]
pub struct KvStore {
    path: PathBuf,
    quota: u64,
    contents: Contents,
}

#[derive(Debug, thiserror::Error)]
pub enum KvFailure {
    #[error("store quota of {quota} bytes would be exceeded")]
    Quota { quota: u64 },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("store I/O failed: {0}")]
    Io(String),
}

impl KvStore {
    /// Opens (or starts) the store of `plugin_id` under `dir`.
    pub fn open(dir: &Path, plugin_id: &str, quota: u64) -> Result<KvStore, KvFailure> {
        let path = dir.join(format!("{plugin_id}.json"));
        let contents = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| KvFailure::Io(format!("{} is corrupt: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::default(),
            Err(e) => return Err(KvFailure::Io(e.to_string())),
        };
        Ok(KvStore {
            path,
            quota,
            contents,
        })
    }

    fn check_key(key: &str) -> Result<(), KvFailure> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(KvFailure::InvalidKey(format!(
                "keys must be 1 to {MAX_KEY_BYTES} bytes"
            )));
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.contents
            .entries
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        Self::check_key(key)?;
        Ok(self.contents.entries.get(key).cloned())
    }

    pub fn set(&mut self, key: &str, value: Vec<u8>) -> Result<(), KvFailure> {
        Self::check_key(key)?;
        let old = self
            .contents
            .entries
            .get(key)
            .map_or(0, |v| (key.len() + v.len()) as u64);
        let new_size = self.size() - old + (key.len() + value.len()) as u64;
        if new_size > self.quota {
            return Err(KvFailure::Quota { quota: self.quota });
        }
        self.contents.entries.insert(key.to_string(), value);
        self.save()
    }

    pub fn delete(&mut self, key: &str) -> Result<(), KvFailure> {
        Self::check_key(key)?;
        if self.contents.entries.remove(key).is_some() {
            self.save()?;
        }
        Ok(())
    }

    pub fn list_keys(&self, prefix: &str) -> Vec<String> {
        self.contents
            .entries
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Writes to a temporary file and renames it over the old one, so a crash leaves either
    /// the old or the new store, never a torn one.
    fn save(&self) -> Result<(), KvFailure> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| KvFailure::Io(e.to_string()))?;
        let bytes = serde_json::to_vec(&self.contents).map_err(|e| KvFailure::Io(e.to_string()))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| KvFailure::Io(e.to_string()))?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| KvFailure::Io(e.to_string()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| KvFailure::Io(e.to_string()))?;
        tmp.persist(&self.path)
            .map_err(|e| KvFailure::Io(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_round_trips_and_enforces_quota() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = KvStore::open(dir.path(), "p", 64).unwrap();
        kv.set("a", b"1".to_vec()).unwrap();
        assert!(matches!(
            kv.set("big", vec![0; 100]),
            Err(KvFailure::Quota { .. })
        ));
        assert!(matches!(kv.set("", vec![]), Err(KvFailure::InvalidKey(_))));
        let kv = KvStore::open(dir.path(), "p", 64).unwrap();
        assert_eq!(kv.get("a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.list_keys(""), vec!["a".to_string()]);
        let other = KvStore::open(dir.path(), "q", 64).unwrap();
        assert_eq!(
            other.get("a").unwrap(),
            None,
            "stores are private per plugin"
        );
    }
}

//! Policies loaded once and reloaded when their files change. Parsing and validating Cedar
//! takes milliseconds; checking a directory's file names, sizes and modification times takes
//! a few stat calls. So a long-running host (the server, `sync --watch`) still judges every
//! operation with the policies as they are on disk, at the cost of the stat calls.

use crate::Result;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a directory holds: each file's name, size and modification time.
type DirStamp = Vec<(String, u64, Option<SystemTime>)>;

/// One policy set per directory, reloaded when the directory's stamp changes.
#[derive(Debug)]
pub(crate) struct PolicyCache<T> {
    slot: Mutex<Option<(std::path::PathBuf, DirStamp, Arc<T>)>>,
}

impl<T> Default for PolicyCache<T> {
    fn default() -> Self {
        PolicyCache {
            slot: Mutex::new(None),
        }
    }
}

impl<T> PolicyCache<T> {
    /// The policies of `dir`, loaded with `load` when first asked or when a file changed.
    /// A failed load is not cached: the next operation tries again (and fails the same way
    /// until the files are fixed).
    pub(crate) fn get(&self, dir: &Path, load: impl FnOnce(&Path) -> Result<T>) -> Result<Arc<T>> {
        let stamp = dir_stamp(dir);
        {
            let slot = self.slot.lock().expect("policy cache");
            if let Some((cached_dir, seen, value)) = slot.as_ref()
                && cached_dir == dir
                && *seen == stamp
            {
                return Ok(value.clone());
            }
        }
        let value = Arc::new(load(dir)?);
        *self.slot.lock().expect("policy cache") = Some((dir.to_path_buf(), stamp, value.clone()));
        Ok(value)
    }
}

fn dir_stamp(dir: &Path) -> DirStamp {
    let mut stamp: DirStamp = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta.len(),
                meta.modified().ok(),
            ))
        })
        .collect();
    stamp.sort();
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_when_a_file_changes_and_not_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let cache: PolicyCache<String> = PolicyCache::default();
        let loads = std::cell::Cell::new(0);
        let load = |d: &Path| {
            loads.set(loads.get() + 1);
            Ok(std::fs::read_to_string(d.join("p.cedar")).unwrap_or_default())
        };
        assert_eq!(*cache.get(dir.path(), load).unwrap(), "");
        assert_eq!(*cache.get(dir.path(), load).unwrap(), "");
        assert_eq!(loads.get(), 1);
        std::fs::write(dir.path().join("p.cedar"), "permit").unwrap();
        assert_eq!(*cache.get(dir.path(), load).unwrap(), "permit");
        std::fs::write(dir.path().join("p.cedar"), "forbid!").unwrap();
        assert_eq!(*cache.get(dir.path(), load).unwrap(), "forbid!");
        assert_eq!(loads.get(), 3);
    }
}

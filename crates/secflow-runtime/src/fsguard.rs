//! Write quotas and link rules for the plugin's filesystem grants.
//!
//! wasmtime-wasi confines a preopened directory (no path leaves it, read-only grants refuse
//! writes), but it lets a plugin fill a writable grant without bound, create symlinks that
//! point anywhere on the host (harmless to the plugin, a trap for whoever reads the
//! directory later), and hard-link files between grants. The glue in `fsglue.rs` replaces
//! the write-side `wasi:filesystem` functions with checks against this module, before the
//! write happens:
//!
//! - each writable grant holds at most `limits.write-mib` bytes and `limits.write-files`
//!   entries (files, directories, links). Usage is measured once per runtime and directory,
//!   then kept up to date by every write, truncation, creation and removal of every
//!   invocation of this runtime, so a write that would cross the quota is refused (error
//!   `quota`) and the quota is never exceeded, not even by one call;
//! - a symlink must be relative and without `..`, so it can only point inside the grant;
//! - hard links are refused (`link-at`), so no file of one grant appears in another;
//! - a write-side call on a read-only grant is recorded as a capability denial (wasmtime
//!   refuses it too);
//! - a rename between two grants is `cross-device`, like a rename between two mounts.

use crate::guard::{Guard, HostViolation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a writable grant holds: bytes (file sizes, so a sparse file counts its length) and
/// entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub files: u64,
}

/// Live usage of one host directory, shared by every invocation of one runtime.
pub type SharedUsage = Arc<Mutex<Usage>>;

/// Measures what `dir` holds, stopping once either count passes its limit (the grant is full
/// then anyway). Symlinks count as entries and are not followed.
pub fn measure(dir: &Path, max_bytes: u64, max_files: u64) -> std::io::Result<Usage> {
    let mut usage = Usage::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            usage.files += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                usage.bytes = usage.bytes.saturating_add(meta.len());
            }
            if usage.files > max_files || usage.bytes > max_bytes {
                return Ok(usage);
            }
        }
    }
    Ok(usage)
}

/// One grant as the guard sees it.
#[derive(Debug, Clone)]
pub struct GrantQuota {
    pub guest: String,
    pub host: PathBuf,
    pub write: bool,
    /// Present for writable grants.
    pub usage: Option<SharedUsage>,
    pub max_bytes: u64,
    pub max_files: u64,
}

/// What this invocation wrote, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteTally {
    /// Bytes by which the plugin grew files in writable grants.
    pub bytes: u64,
    /// Entries it created.
    pub files: u64,
}

/// The filesystem side of one invocation: which descriptor belongs to which grant, the
/// quotas, and the tally.
#[derive(Debug, Clone)]
pub struct FsGuard {
    pub grants: Arc<Vec<GrantQuota>>,
    /// Resource index of a descriptor -> index into `grants`. Every descriptor comes from a
    /// preopen or an `open-at` on one, so every live descriptor has an entry; an index
    /// reused after a drop is overwritten when the new descriptor is created.
    descriptors: Arc<Mutex<HashMap<u32, usize>>>,
    tally: Arc<Mutex<WriteTally>>,
    pub guard: Guard,
}

/// A refusal, as the error code the plugin gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Read-only grant, hard link, or a symlink that could leave the grant.
    NotPermitted,
    /// The write would cross the quota.
    Quota,
    /// A rename between two grants.
    CrossDevice,
}

impl FsGuard {
    pub fn new(grants: Vec<GrantQuota>, guard: Guard) -> FsGuard {
        FsGuard {
            grants: Arc::new(grants),
            descriptors: Arc::default(),
            tally: Arc::default(),
            guard,
        }
    }

    pub fn tally(&self) -> WriteTally {
        *self.tally.lock().unwrap()
    }

    /// Binds a descriptor to a grant (preopens by guest path, opened files by their parent).
    pub fn bind(&self, rep: u32, grant: usize) {
        self.descriptors.lock().unwrap().insert(rep, grant);
    }

    pub fn grant_index(&self, guest: &str) -> Option<usize> {
        self.grants.iter().position(|g| g.guest == guest)
    }

    /// The grant a descriptor belongs to.
    pub fn grant_of(&self, rep: u32) -> Option<usize> {
        self.descriptors.lock().unwrap().get(&rep).copied()
    }

    /// Refuses a write-side call on a read-only grant (and records the denial).
    pub fn check_writable(&self, rep: u32, what: &str) -> Result<usize, Refusal> {
        let Some(index) = self.grant_of(rep) else {
            // Not a descriptor we handed out: let wasmtime report `bad-descriptor`.
            return Ok(usize::MAX);
        };
        let grant = &self.grants[index];
        if grant.write {
            return Ok(index);
        }
        self.guard.deny(
            "filesystem",
            format!("{what} in {}, which is granted read-only", grant.guest),
        );
        Err(Refusal::NotPermitted)
    }

    /// Reserves `bytes` more and `files` more in a grant, or records the violation and
    /// refuses. A reservation that the write did not use is given back with
    /// [`FsGuard::release`].
    pub fn reserve(&self, grant: usize, bytes: u64, files: u64) -> Result<(), Refusal> {
        let Some(g) = self.grants.get(grant) else {
            return Ok(());
        };
        let Some(usage) = &g.usage else {
            return Ok(());
        };
        let mut u = usage.lock().unwrap();
        if files > 0 && u.files.saturating_add(files) > g.max_files {
            drop(u);
            self.guard.violate(HostViolation::FsQuota {
                grant: g.guest.clone(),
                what: format!("more than {} files and directories", g.max_files),
                limit: g.max_files,
            });
            return Err(Refusal::Quota);
        }
        if bytes > 0 && u.bytes.saturating_add(bytes) > g.max_bytes {
            let wanted = u.bytes.saturating_add(bytes);
            drop(u);
            self.guard.violate(HostViolation::FsQuota {
                grant: g.guest.clone(),
                what: format!("a write would make it hold {wanted} bytes"),
                limit: g.max_bytes,
            });
            return Err(Refusal::Quota);
        }
        u.bytes += bytes;
        u.files += files;
        drop(u);
        let mut t = self.tally.lock().unwrap();
        t.bytes += bytes;
        t.files += files;
        Ok(())
    }

    /// Gives back the part of a reservation the write did not use.
    pub fn unreserve(&self, grant: usize, bytes: u64, files: u64) {
        if bytes == 0 && files == 0 {
            return;
        }
        self.release(grant, bytes, files);
        let mut t = self.tally.lock().unwrap();
        t.bytes = t.bytes.saturating_sub(bytes);
        t.files = t.files.saturating_sub(files);
    }

    /// Gives back what a removal or truncation freed.
    pub fn release(&self, grant: usize, bytes: u64, files: u64) {
        if let Some(usage) = self.grants.get(grant).and_then(|g| g.usage.as_ref()) {
            let mut u = usage.lock().unwrap();
            u.bytes = u.bytes.saturating_sub(bytes);
            u.files = u.files.saturating_sub(files);
        }
    }

    /// The guest path of the grant a descriptor belongs to, for messages.
    fn guest_of(&self, rep: u32) -> &str {
        self.grant_of(rep)
            .map_or("a granted directory", |i| self.grants[i].guest.as_str())
    }

    /// Refuses a hard link.
    pub fn refuse_hard_link(&self, rep: u32, new_path: &str) -> Refusal {
        let guest = self.guest_of(rep);
        self.guard.deny(
            "filesystem",
            format!(
                "hard link `{new_path}` in {guest}: plugins may not create hard links, so no \
                 file is shared between grants"
            ),
        );
        Refusal::NotPermitted
    }

    /// Allows a symlink only when its target stays inside the directory it is created in:
    /// relative, without `..`.
    pub fn check_symlink(&self, rep: u32, target: &str, link: &str) -> Result<(), Refusal> {
        if symlink_stays_inside(target) {
            return Ok(());
        }
        let guest = self.guest_of(rep);
        self.guard.deny(
            "filesystem",
            format!(
                "symlink `{link}` -> `{target}` in {guest}: a plugin's symlinks must be relative \
                 and without `..`, so they cannot point outside the grant"
            ),
        );
        Err(Refusal::NotPermitted)
    }
}

/// True for a target that can only resolve inside the link's own directory.
pub fn symlink_stays_inside(target: &str) -> bool {
    !target.is_empty()
        && !target.starts_with('/')
        && !target.contains('\\')
        && !target.contains('\0')
        && target.split('/').all(|c| c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writable(max_bytes: u64, max_files: u64) -> FsGuard {
        FsGuard::new(
            vec![GrantQuota {
                guest: "/out".into(),
                host: PathBuf::from("/tmp/x"),
                write: true,
                usage: Some(Arc::default()),
                max_bytes,
                max_files,
            }],
            Guard::default(),
        )
    }

    #[test]
    fn reservations_stop_at_the_quota_and_record_it() {
        let fs = writable(100, 2);
        fs.reserve(0, 60, 1).unwrap();
        assert_eq!(fs.reserve(0, 41, 0), Err(Refusal::Quota));
        fs.reserve(0, 40, 1).unwrap();
        assert_eq!(fs.reserve(0, 0, 1), Err(Refusal::Quota));
        assert!(matches!(
            fs.guard.first_violation(),
            Some(HostViolation::FsQuota { limit: 100, .. })
        ));
        fs.release(0, 50, 1);
        fs.reserve(0, 50, 1).unwrap();
        assert_eq!(
            fs.tally(),
            WriteTally {
                bytes: 150,
                files: 3
            }
        );
    }

    #[test]
    fn read_only_grants_refuse_and_record() {
        let fs = FsGuard::new(
            vec![GrantQuota {
                guest: "/data".into(),
                host: PathBuf::from("/tmp/y"),
                write: false,
                usage: None,
                max_bytes: 0,
                max_files: 0,
            }],
            Guard::default(),
        );
        fs.bind(7, 0);
        assert_eq!(fs.check_writable(7, "create"), Err(Refusal::NotPermitted));
        assert_eq!(fs.guard.take_denials().len(), 1);
    }

    #[test]
    fn only_inward_relative_symlinks_are_allowed() {
        for ok in ["a", "a/b", "./a", "dir/./file"] {
            assert!(symlink_stays_inside(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "..",
            "a\\..\\b",
        ] {
            assert!(!symlink_stays_inside(bad), "{bad}");
        }
    }

    #[test]
    fn measuring_counts_files_dirs_and_links_and_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0; 10]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), vec![0; 5]).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let u = measure(dir.path(), u64::MAX, u64::MAX).unwrap();
        assert_eq!(u.bytes, 15);
        assert_eq!(u.files, if cfg!(unix) { 4 } else { 3 });
        let early = measure(dir.path(), u64::MAX, 1).unwrap();
        assert_eq!(early.files, 2, "stops once over the limit");
    }
}

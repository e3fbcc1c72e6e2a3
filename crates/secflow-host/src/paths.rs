//! The state directory (`--home` / `SECFLOW_HOME`): the registry, blobs, keys, trust store,
//! policies, audit log, key-value stores and caches of one SecFlow host.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
    /// Where the policies live when not in the state directory (`--policy-dir`).
    pub policy_dir: Option<PathBuf>,
}

impl StateDir {
    /// `dir` if given, else the platform data directory (`$XDG_DATA_HOME/secflow` or
    /// `~/.local/share/secflow`).
    pub fn resolve(dir: Option<&Path>) -> StateDir {
        let root = dir.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(|| PathBuf::from("."))
                .join("secflow")
        });
        StateDir {
            root,
            policy_dir: None,
        }
    }

    pub fn component_cache(&self) -> PathBuf {
        self.root.join("cache/components")
    }

    pub fn kv(&self) -> PathBuf {
        self.root.join("kv")
    }

    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn trust_store(&self) -> PathBuf {
        secflow_trust::TrustStore::path(&self.root)
    }

    /// Admission policies and their schema.
    pub fn policy(&self) -> PathBuf {
        self.policy_dir
            .clone()
            .unwrap_or_else(|| self.root.join("policy"))
    }

    /// The audit log database.
    pub fn audit_db(&self) -> PathBuf {
        self.root.join("audit.db")
    }

    /// The registry database; absent until something is installed.
    pub fn registry_db(&self) -> PathBuf {
        self.root.join("registry.db")
    }

    /// The guest SDK copy `plugin new` points plugin crates at.
    pub fn sdk(&self) -> PathBuf {
        self.root.join("sdk")
    }
}

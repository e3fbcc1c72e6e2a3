//! The SecFlow home directory (`--home` / `SECFLOW_HOME`): caches, stores and keys.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
    /// `--policy-dir` / `SECFLOW_POLICY_DIR`, when the policies live elsewhere.
    pub policy_dir: Option<PathBuf>,
}

impl Home {
    /// `--home` / `SECFLOW_HOME` if given, else the platform data directory
    /// (`$XDG_DATA_HOME/secflow` or `~/.local/share/secflow`).
    pub fn resolve(flag: Option<&Path>) -> Home {
        let root = flag.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(|| PathBuf::from("."))
                .join("secflow")
        });
        Home {
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

    pub fn sdk(&self) -> PathBuf {
        self.root.join("sdk")
    }
}

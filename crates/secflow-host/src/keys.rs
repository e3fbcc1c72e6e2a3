//! Signing keys in the state directory's key directory (private keys 0600).

use crate::{Host, Result};
use secflow_trust::{KeyDir, PublicKeyFile};

impl Host {
    fn key_dir(&self) -> KeyDir {
        KeyDir::new(self.paths().keys())
    }

    /// Generates a key pair named `name`; returns its public half.
    pub fn generate_key(&self, name: &str) -> Result<PublicKeyFile> {
        Ok(self.key_dir().generate(name)?)
    }

    /// The public halves of every local key.
    pub fn list_keys(&self) -> Result<Vec<PublicKeyFile>> {
        Ok(self.key_dir().list()?)
    }

    /// The public half of the local key `name`.
    pub fn public_key(&self, name: &str) -> Result<PublicKeyFile> {
        Ok(self.key_dir().public(name)?)
    }

    /// Where the key files live.
    pub fn key_files(&self, name: &str) -> std::path::PathBuf {
        self.key_dir().dir.join(format!("{name}.{{key,pub}}"))
    }
}

//! Trust for SecFlow packages: Ed25519 keys, signed statements, the trust store, and
//! verification on raw bytes before anything inside the package is parsed.
//!
//! Beats the source specifications' schemes: a bare SHA-256 in the manifest can be changed by
//! whoever changes the plugin, and a shared HMAC secret lets every verifier forge. Here a
//! signature binds the package digest, id, version, kind and declared capabilities to a key
//! the admin trusts for that plugin id, with thresholds, expiry against a monotonic clock,
//! revocation, rotation and rollback protection. See `docs/security-model.md`.
//!
//! Depends on `secflow-package` (framing and reading) and `secflow-manifest`; used by the CLI
//! and, later, the registry.

pub mod keys;
pub mod lists;
pub mod signature;
pub mod store;
pub mod verify;

pub use keys::{KeyDir, PublicKeyFile, key_id};
pub use signature::{SignatureBlock, SignatureEntry, Statement, add_signature};
pub use store::{Revocation, RevokedItem, Role, TrustStore};
pub use verify::{SignatureStatus, Verification, VerifyOptions, verify};

/// Why a trust operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    BadKey(String),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Package(#[from] secflow_package::PackageError),
}

/// Seconds since the Unix epoch, from the system clock.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

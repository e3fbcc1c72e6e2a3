//! The local plugin registry under `SECFLOW_HOME`: which plugins are installed, at which
//! versions, with which grants, and how they have behaved.
//!
//! - `registry.db` (SQLite through sqlx, WAL, `synchronous=FULL`) holds plugins, versions,
//!   grants, run records and health checks.
//! - `blobs/sha256/..` holds every installed package file, named by its SHA-256 and checked
//!   against that name on every read ([`blobs`]).
//!
//! Every change (install, upgrade, uninstall, enable, quarantine) is one `BEGIN IMMEDIATE`
//! transaction, and the blob it needs is written and synced inside that transaction before
//! the commit: a crash at any point leaves the database at the old state or the new one, and
//! every version the database names has its blob. A blob without a row (a crash between
//! the blob and the commit) is garbage, swept under the same lock. Concurrent processes
//! serialize on SQLite's write lock.
//!
//! Admission (signatures, policy) is in [`admission`]; the registry stores what was
//! admitted and approved.

pub mod admission;
pub mod blobs;
pub mod deps;
pub mod grants;
mod runs;
mod store;

pub use admission::Signer;
pub use grants::Grant;
pub use runs::{Run, RunLog};
pub use store::{
    Health, InstallMode, InstallOutcome, InstalledPlugin, NewVersion, PluginUsage, Registry,
    RunRecord, RunStats, SearchQuery, VersionRecord, package_in,
};

/// Why a registry operation failed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0} is not installed; see `secflow plugin list`")]
    NotInstalled(String),
    #[error(
        "{id} is already installed at {version}; upgrade it with `secflow plugin upgrade FILE`"
    )]
    AlreadyInstalled { id: String, version: String },
    #[error(
        "{id} {version} is already installed with another digest ({existing}); versions are immutable: publish the change as a new version"
    )]
    DigestConflict {
        id: String,
        version: String,
        existing: String,
    },
    #[error(
        "{id} {version} is not newer than the installed {current}; pass --allow-rollback to go back to an older version"
    )]
    NotNewer {
        id: String,
        version: String,
        current: String,
    },
    #[error("{}", .0.join("; "))]
    Dependencies(Vec<String>),
    #[error(
        "{0} was changed by another secflow process meanwhile; look again (`secflow plugin info {0}`) and repeat the command"
    )]
    Changed(String),
    #[error("package blob {name}: {reason}")]
    Blob { name: String, reason: String },
    #[error("registry database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Io(String),
    #[error("registry record is unreadable: {0}; the database was edited outside SecFlow")]
    Corrupt(String),
}

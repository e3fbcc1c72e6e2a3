//! The SecFlow plugin marketplace, served by `secflow serve --marketplace`.
//!
//! Publishers own namespaces (plugin id prefixes) that an admin grants them, and publish
//! packages they signed with keys registered to them. Every upload is vetted
//! ([`vetting`]): signature, namespace, manifest, the component's imports against its
//! declared capabilities, the capability diff against the previous version, SecFlow's own
//! secrets detector over the payload, the health check in the sandbox under tight limits,
//! and a look-alike check against other publishers' ids. The marketplace policies (Cedar)
//! approve it at once or send it to review; an approved version is countersigned with the
//! marketplace key, which clients pin. Versions are immutable. A yank stops new
//! resolutions; a revoke puts the digest on a signed revocation list that clients apply.
//! The index of what can be installed is signed, versioned and expiring
//! ([`documents::Index`]). Installs are counted from receipts signed by the installing
//! host's key, one per host and version; only a host that sent one may rate the plugin.
//!
//! Every change is an audit event in the host's log, by the actor given to each operation.

mod browse;
mod distribute;
pub mod documents;
mod publish;
mod publishers;
mod receipts;
mod review;
pub mod similar;
mod store;
pub mod vetting;

pub use browse::{Downloads, Listing, PluginPage, Query, SearchResult, Sort, VersionSummary};
pub use documents::{HostSigned, Index, SignedDocument};
pub use publish::Published;
pub use review::Pending;
pub use store::{PublisherKey, PublisherRow, RatingRow, State, VersionRow};
pub use vetting::Report;

use documents::{INDEX_TYPE, IndexPlugin, IndexVersion};
use ed25519_dalek::SigningKey;
use secflow_audit::{Action, Event, PluginRef};
use secflow_host::Host;
use secflow_manifest::Capabilities;
use secflow_package::PackageLimits;
use secflow_trust::lists::Signed;
use secflow_trust::{PublicKeyFile, Role, TrustStore};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use store::Store;
use vetting::Status;

/// Why a marketplace operation failed. Each kind maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this to this resource (403).
    #[error("{0}")]
    Forbidden(String),
    /// It contradicts what is stored: an immutable version, a decided review (409).
    #[error("{0}")]
    Conflict(String),
    /// Vetting refused the upload; the report says why (422).
    #[error("{message}")]
    Refused {
        message: String,
        report: Box<Report>,
    },
    #[error(transparent)]
    Host(#[from] secflow_host::HostError),
    #[error("marketplace database: {0}")]
    Store(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, MarketError>;

/// How a marketplace runs.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// Its database and package files.
    pub dir: PathBuf,
    /// The name of the marketplace's signing key among the host's keys (created if absent).
    pub key: String,
    /// How long a signed index is valid; it is re-signed (a new version) when half of that
    /// has passed.
    pub index_lifetime: Duration,
}

impl MarketConfig {
    /// The defaults for a host: `market/` in its state directory, the key `marketplace`,
    /// an index valid for 7 days.
    pub fn of(host: &Host) -> MarketConfig {
        MarketConfig {
            dir: host.paths().root.join("market"),
            key: "marketplace".into(),
            index_lifetime: Duration::from_secs(7 * 86_400),
        }
    }
}

/// An open marketplace. Cheap to clone.
#[derive(Clone)]
pub struct Market {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("dir", &self.inner.config.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    host: Host,
    store: Store,
    key: SigningKey,
    public: PublicKeyFile,
    config: MarketConfig,
    /// One signing of the index at a time (its version counter must not fork).
    signing: tokio::sync::Mutex<()>,
    /// The signed revocation list, for the number of revocations it holds.
    revocations: Mutex<Option<(usize, Signed)>>,
    secrets: OnceLock<secflow_secrets::Scanner>,
}

/// An id is in a namespace when it is the namespace or starts with it and a `-`.
pub fn in_namespace(plugin_id: &str, namespace: &str) -> bool {
    plugin_id == namespace
        || plugin_id
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Orders version strings by semver (unparsable ones last, by text).
pub(crate) fn semver_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn now() -> u64 {
    secflow_trust::now()
}

/// A reason people give (review, yank, revoke, moderation): 1 to 2000 characters.
pub(crate) fn check_reason(what: &str, reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.chars().count() > 2000 {
        return Err(MarketError::Invalid(format!(
            "{what} needs a reason (1 to 2000 characters)"
        )));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(MarketError::Invalid(format!(
            "{what} `{}` is not valid: 1 to 64 of a-z, 0-9 and `-`, not starting with `-`",
            name.escape_debug()
        )))
    }
}

impl Market {
    /// Opens (creating) the marketplace of `host`: its database, and its signing key among
    /// the host's keys.
    pub async fn open(host: Host, config: MarketConfig) -> Result<Market> {
        let store = Store::open(&config.dir).await?;
        std::fs::create_dir_all(config.dir.join("packages")).map_err(|e| {
            secflow_host::HostError::internal(format!(
                "cannot create {}: {e}",
                config.dir.join("packages").display()
            ))
        })?;
        let public = match host.public_key(&config.key) {
            Ok(public) => public,
            Err(_) => host.generate_key(&config.key)?,
        };
        let key = secflow_trust::KeyDir::new(host.paths().keys())
            .signing_key(&config.key)
            .map_err(secflow_host::HostError::from)?;
        Ok(Market {
            inner: Arc::new(Inner {
                host,
                store,
                key,
                public,
                config,
                signing: tokio::sync::Mutex::new(()),
                revocations: Mutex::new(None),
                secrets: OnceLock::new(),
            }),
        })
    }

    /// The marketplace's public key file: what clients pin.
    pub fn public_key(&self) -> &PublicKeyFile {
        &self.inner.public
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    async fn audit(
        &self,
        actor: &str,
        action: Action,
        plugin: Option<PluginRef>,
        decision: &str,
        reason: String,
        details: serde_json::Value,
    ) -> Result<()> {
        self.inner
            .host
            .record(vec![Event {
                plugin,
                decision: Some(decision.into()),
                reason,
                details,
                ..Event::new(actor, action)
            }])
            .await?;
        Ok(())
    }

    fn package_path(&self, file_sha256: &str) -> PathBuf {
        self.inner
            .config
            .dir
            .join("packages")
            .join(format!("{file_sha256}.sfpkg"))
    }

    fn write_package(&self, bytes: &[u8]) -> Result<String> {
        let sha = secflow_io::sha256_hex(bytes);
        let path = self.package_path(&sha);
        if !path.exists() {
            secflow_host::write_file(&path, bytes, false)?;
        }
        Ok(sha)
    }

    fn read_package(&self, file_sha256: &str) -> Result<Vec<u8>> {
        let path = self.package_path(file_sha256);
        let bytes = std::fs::read(&path).map_err(|e| {
            secflow_host::HostError::internal(format!("cannot read {}: {e}", path.display()))
        })?;
        // A package file changed on disk is never served.
        if secflow_io::sha256_hex(&bytes) != file_sha256 {
            return Err(secflow_host::HostError::internal(format!(
                "{} does not match its digest: the marketplace's storage was changed",
                path.display()
            ))
            .into());
        }
        Ok(bytes)
    }
}

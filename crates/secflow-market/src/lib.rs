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

pub mod documents;
pub mod similar;
mod store;
pub mod vetting;

pub use documents::{HostSigned, Index, SignedDocument};
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

/// The result of a publish.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    pub plugin_id: String,
    pub version: String,
    pub state: State,
    /// The same package was already published: nothing changed.
    pub unchanged: bool,
    pub report: Report,
}

/// Search parameters for browsing.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Words matched against id, name, description and tags.
    pub text: Option<String>,
    pub kind: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub sort: Sort,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most installs first.
    #[default]
    Downloads,
    /// Best average rating first.
    Rating,
    /// Most recently published first.
    Recent,
}

/// One plugin in search results.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub publisher: String,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// Newest approved, unyanked version (else the newest approved one).
    pub latest_version: String,
    pub updated_at: u64,
    pub downloads: u64,
    /// Average of visible ratings, if any.
    pub rating: Option<f64>,
    pub ratings: u64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResult {
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub plugins: Vec<Listing>,
}

/// Everything the plugin page shows.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginPage {
    pub listing: Listing,
    /// The latest version in full.
    pub latest: VersionRow,
    /// What the latest version asks for, with the author's reasons.
    pub capabilities: Vec<vetting::Capability>,
    /// Every approved, unrevoked version, newest first.
    pub versions: Vec<VersionSummary>,
    /// The latest version's vetting report.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: serde_json::Value,
    pub downloads: Downloads,
    pub ratings: Vec<RatingRow>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionSummary {
    pub version: String,
    pub published_at: u64,
    pub yanked: bool,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Downloads {
    /// Distinct hosts and versions, ever.
    pub total: u64,
    pub last_90_days: u64,
}

/// A version waiting for review, with its report.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pending {
    pub version: VersionRow,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: serde_json::Value,
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

    // ---- publishers -----------------------------------------------------------------

    /// Creates a publisher, or grants an existing one more namespaces. A namespace owned
    /// by another publisher is refused.
    pub async fn grant_namespaces(
        &self,
        publisher: &str,
        namespaces: &[String],
        actor: &str,
    ) -> Result<PublisherRow> {
        check_name("publisher name", publisher)?;
        for ns in namespaces {
            check_name("namespace", ns)?;
        }
        let mut tx = self.store().pool.begin().await?;
        sqlx::query(
            "INSERT INTO publishers (name, created_at, created_by) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(publisher)
        .bind(now() as i64)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        for ns in namespaces {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT publisher FROM namespaces WHERE prefix = ?")
                    .bind(ns)
                    .fetch_optional(&mut *tx)
                    .await?;
            match owner {
                Some(owner) if owner == publisher => {}
                Some(owner) => {
                    return Err(MarketError::Conflict(format!(
                        "namespace `{ns}` belongs to publisher `{owner}`"
                    )));
                }
                None => {
                    sqlx::query(
                        "INSERT INTO namespaces (prefix, publisher, granted_at, granted_by) VALUES (?, ?, ?, ?)",
                    )
                    .bind(ns)
                    .bind(publisher)
                    .bind(now() as i64)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketPublisher,
            None,
            "ok",
            format!(
                "publisher {publisher} owns namespaces {}",
                namespaces.join(", ")
            ),
            serde_json::json!({"publisher": publisher, "namespaces": namespaces}),
        )
        .await?;
        self.publisher(publisher).await
    }

    /// Registers a publisher's signing key (a SecFlow public key file).
    pub async fn add_publisher_key(
        &self,
        publisher: &str,
        public_key_file: &str,
        actor: &str,
    ) -> Result<PublisherRow> {
        let (file, _) = PublicKeyFile::parse(public_key_file)
            .map_err(|e| MarketError::Invalid(format!("public key: {e}")))?;
        self.publisher(publisher).await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT publisher FROM publisher_keys WHERE key_id = ?")
                .bind(&file.key_id)
                .fetch_optional(&self.store().pool)
                .await?;
        match owner {
            Some(owner) if owner == publisher => return self.publisher(publisher).await,
            Some(owner) => {
                return Err(MarketError::Conflict(format!(
                    "key {} is registered to publisher `{owner}`",
                    file.key_id
                )));
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO publisher_keys (key_id, publisher, public_key, name, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&file.key_id)
        .bind(publisher)
        .bind(&file.public)
        .bind(&file.name)
        .bind(now() as i64)
        .bind(actor)
        .execute(&self.store().pool)
        .await?;
        self.audit(
            actor,
            Action::MarketPublisher,
            None,
            "ok",
            format!("key {} registered to publisher {publisher}", file.key_id),
            serde_json::json!({"publisher": publisher, "key_id": file.key_id}),
        )
        .await?;
        self.publisher(publisher).await
    }

    pub async fn publisher(&self, name: &str) -> Result<PublisherRow> {
        self.store().publisher(name).await?.ok_or_else(|| {
            MarketError::NotFound(format!(
                "no publisher `{}`; an admin creates it by granting it a namespace",
                name.escape_debug()
            ))
        })
    }

    pub async fn publishers(&self) -> Result<Vec<PublisherRow>> {
        Ok(self.store().publishers().await?)
    }

    // ---- publish and vetting ------------------------------------------------------------

    /// Vets an upload by `publisher` and stores it approved or pending review; refuses it
    /// (with the report) when a check fails. The same version with the same payload again
    /// changes nothing; with another payload it is refused.
    pub async fn publish(&self, publisher: &str, bytes: &[u8], actor: &str) -> Result<Published> {
        let result = self.vet_and_store(publisher, bytes).await;
        let (decision, reason, plugin, details) = match &result {
            Ok(p) => (
                if p.unchanged {
                    "unchanged"
                } else {
                    p.state.as_str()
                },
                p.report
                    .decision
                    .as_ref()
                    .map(|d| d.policies.join(", "))
                    .unwrap_or_default(),
                Some(PluginRef {
                    id: p.plugin_id.clone(),
                    version: p.version.clone(),
                    digest: p.report.sha256.clone(),
                }),
                summary(&p.report),
            ),
            Err(MarketError::Refused { message, report }) => (
                "refused",
                message.clone(),
                (!report.plugin_id.is_empty()).then(|| PluginRef {
                    id: report.plugin_id.clone(),
                    version: report.version.clone(),
                    digest: report.sha256.clone(),
                }),
                summary(report),
            ),
            Err(e) => ("refused", e.to_string(), None, serde_json::json!({})),
        };
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("publisher".into(), publisher.into());
            map.insert("upload_sha256".into(), secflow_io::sha256_hex(bytes).into());
        }
        self.audit(
            actor,
            Action::MarketPublish,
            plugin,
            decision,
            reason,
            details,
        )
        .await?;
        result
    }

    async fn vet_and_store(&self, publisher_name: &str, bytes: &[u8]) -> Result<Published> {
        let publisher = self.publisher(publisher_name).await.map_err(|_| {
            MarketError::Forbidden(format!(
                "`{}` is not a publisher of this marketplace; an admin grants a namespace first (POST /v1/market/publishers)",
                publisher_name.escape_debug()
            ))
        })?;
        let limits = PackageLimits::default();
        let envelope = secflow_package::Envelope::split(bytes, &limits)
            .map_err(|e| MarketError::Invalid(format!("not a SecFlow package: {e}")))?;
        let mut report = Report {
            plugin_id: String::new(),
            version: String::new(),
            kind: String::new(),
            publisher: publisher_name.to_string(),
            sha256: envelope.digest(),
            size: bytes.len() as u64,
            vetted_at: now(),
            checks: Vec::new(),
            signed_by: Vec::new(),
            capabilities: Vec::new(),
            previous_version: None,
            escalation: Vec::new(),
            imports: Vec::new(),
            secrets: Vec::new(),
            health: None,
            similar_ids: Vec::new(),
            decision: None,
        };
        let refuse = |report: Report| {
            let message = report
                .failure()
                .map_or_else(String::new, |c| format!("{}: {}", c.name, c.summary));
            Err(MarketError::Refused {
                message,
                report: Box::new(report),
            })
        };

        // Signature: by a key registered to this publisher, verified before parsing.
        if publisher.keys.is_empty() {
            report.check(
                "signature",
                Status::Fail,
                format!(
                    "publisher `{publisher_name}` has no registered key; register one (POST /v1/market/publishers/{publisher_name}/keys) and sign with it"
                ),
            );
            return refuse(report);
        }
        let mut trust = TrustStore::default();
        for key in &publisher.keys {
            let file = PublicKeyFile {
                kind: "ed25519".into(),
                key_id: key.key_id.clone(),
                public: key.public_key.clone(),
                name: key.name.clone(),
            };
            trust
                .add_key(&file, Role::Publisher, vec!["*".into()], 0)
                .map_err(secflow_host::HostError::from)?;
        }
        let verification = match secflow_trust::verify(
            bytes,
            &mut trust,
            now(),
            &limits,
            secflow_trust::VerifyOptions {
                allow_rollback: true,
            },
        ) {
            Ok(v) => v,
            Err(e) => {
                report.check(
                    "signature",
                    Status::Fail,
                    format!("unreadable package: {e}"),
                );
                return refuse(report);
            }
        };
        report.signed_by = verification
            .signatures
            .iter()
            .filter(|s| s.status == secflow_trust::SignatureStatus::Valid)
            .map(|s| s.key_id.clone())
            .collect();
        let Some(package) = verification
            .package
            .clone()
            .filter(|_| verification.accepted())
        else {
            report.check(
                "signature",
                Status::Fail,
                format!(
                    "not signed by a key of `{publisher_name}`: {}",
                    verification.refusals.join("; ")
                ),
            );
            return refuse(report);
        };
        report.check(
            "signature",
            Status::Pass,
            format!("signed by {}", report.signed_by.join(", ")),
        );
        let manifest = package.manifest.clone();
        let id = manifest.id.to_string();
        report.plugin_id = id.clone();
        report.version = manifest.version.to_string();
        report.kind = manifest.kind.to_string();
        report.capabilities = secflow_registry::grants::asks(&manifest.capabilities)
            .into_iter()
            .map(|a| vetting::Capability {
                label: a.label,
                reason: a.reason,
            })
            .collect();

        // Namespace: the id is in one of the publisher's namespaces, and no longer prefix
        // owned by someone else claims it.
        match self.store().owner_of(&id).await? {
            Some((owner, ns)) if owner == publisher_name => report.check(
                "namespace",
                Status::Pass,
                format!("{id} is in namespace `{ns}` of {publisher_name}"),
            ),
            Some((owner, ns)) => {
                report.check(
                    "namespace",
                    Status::Fail,
                    format!("{id} is in namespace `{ns}`, which belongs to `{owner}`"),
                );
                return refuse(report);
            }
            None => {
                report.check(
                    "namespace",
                    Status::Fail,
                    format!(
                        "{id} is outside the namespaces of `{publisher_name}` ({}); ids must be a namespace or start with one and `-`",
                        publisher.namespaces.join(", ")
                    ),
                );
                return refuse(report);
            }
        }

        // Immutable versions.
        if let Some(existing) = self.store().version(&id, &report.version).await? {
            if existing.sha256 == report.sha256 {
                let stored: Option<Report> = self
                    .store()
                    .report(&id, &existing.version)
                    .await?
                    .and_then(|v| serde_json::from_value(v).ok());
                return Ok(Published {
                    plugin_id: id,
                    version: existing.version.clone(),
                    state: existing.state,
                    unchanged: true,
                    report: stored.unwrap_or(report),
                });
            }
            return Err(MarketError::Conflict(format!(
                "{id} {} is already published with other contents (payload {}); versions are immutable: publish a new version",
                existing.version, existing.sha256
            )));
        }
        report.check(
            "manifest",
            Status::Pass,
            format!(
                "{id} {} ({}), host {}",
                report.version, report.kind, manifest.host
            ),
        );

        // The component as the host will load it: imports against declared capabilities,
        // exports against the kind.
        match self
            .inner
            .host
            .validate_component(manifest.clone(), &package.component)
        {
            Ok(plugin) => {
                report.imports = plugin.imports.clone();
                report.check(
                    "component",
                    Status::Pass,
                    format!(
                        "loads as a {}; imports only what it declares ({} interfaces)",
                        report.kind,
                        plugin.imports.len()
                    ),
                );
            }
            Err(e) => {
                report.check("component", Status::Fail, e.to_string());
                return refuse(report);
            }
        }

        // Capability diff against the previous version.
        let existing = self.store().versions(&id).await?;
        let previous = existing
            .iter()
            .filter(|v| v.state != State::Rejected)
            .rfind(|v| semver_order(&v.version, &report.version).is_lt())
            .or_else(|| existing.iter().find(|v| v.state != State::Rejected));
        let first_version = existing.iter().all(|v| v.state == State::Rejected);
        if let Some(previous) = previous {
            report.previous_version = Some(previous.version.clone());
            let before: Capabilities =
                serde_json::from_value(previous.capabilities.clone()).unwrap_or_default();
            report.escalation = secflow_registry::grants::increase(&before, &manifest.capabilities);
            if report.escalation.is_empty() {
                report.check(
                    "capability-diff",
                    Status::Pass,
                    format!("asks for nothing beyond {}", previous.version),
                );
            } else {
                report.check(
                    "capability-diff",
                    Status::Warn,
                    format!(
                        "escalation over {}: {}",
                        previous.version,
                        report.escalation.join(", ")
                    ),
                );
            }
        } else {
            report.check(
                "capability-diff",
                Status::Pass,
                "first version: nothing to compare",
            );
        }

        // Secrets in the payload, by SecFlow's own detector.
        let scanner = self
            .inner
            .secrets
            .get_or_init(secflow_secrets::Scanner::builtin);
        for (path, content) in &package.files {
            for m in scanner.scan(path, content) {
                report.secrets.push(vetting::SecretFound {
                    file: path.clone(),
                    rule_id: m.rule_id,
                    line: m.line,
                    snippet: m.snippet,
                });
            }
        }
        if report.secrets.is_empty() {
            report.check(
                "secrets",
                Status::Pass,
                format!("no secrets in {} files", package.files.len()),
            );
        } else {
            report.check(
                "secrets",
                Status::Warn,
                format!(
                    "{} secret(s): {}",
                    report.secrets.len(),
                    report
                        .secrets
                        .iter()
                        .map(|s| format!("{} in {}:{}", s.rule_id, s.file, s.line))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }

        // The health check in the sandbox, granted nothing, under the trial limits.
        let mut trial = manifest.clone();
        vetting::trial_limits(&mut trial);
        let resolved = trial.limits.resolve();
        let cleared =
            secflow_host::Cleared::trial(trial, package.component.clone(), &report.sha256);
        let (inv, _) = self
            .inner
            .host
            .invoke(
                &cleared,
                secflow_runtime::Call::Health,
                &serde_json::json!({}),
                &[],
            )
            .await?;
        let outcome = secflow_host::RunOutcome::of(&inv, true);
        let (ok, message) = outcome.health.clone().unwrap_or((false, String::new()));
        report.health = Some(vetting::Health {
            ok,
            message: message.clone(),
            duration_us: inv.report.wall_time_us,
            fuel_used: inv.report.fuel_used,
            peak_memory_bytes: inv.report.peak_memory_bytes,
            memory_mib: resolved.memory_bytes >> 20,
            timeout_ms: resolved.timeout_ms,
            fuel: resolved.fuel.unwrap_or(0),
        });
        report.check(
            "health",
            if ok { Status::Pass } else { Status::Warn },
            if ok {
                format!("healthy in the sandbox with nothing granted ({message})")
            } else {
                format!("the health check failed in the sandbox: {message}")
            },
        );

        // A new id that looks like an established id of another publisher. Updates of an
        // id the publisher already has are not new names.
        if first_version {
            let others = self.store().ids_not_of(publisher_name).await?;
            report.similar_ids = similar::look_alikes(&id, others.iter().map(String::as_str));
        }
        if !first_version {
            report.check(
                "name-similarity",
                Status::Pass,
                "not a new name: the publisher's own id",
            );
        } else if report.similar_ids.is_empty() {
            report.check("name-similarity", Status::Pass, "no look-alike ids");
        } else {
            report.check(
                "name-similarity",
                Status::Warn,
                format!(
                    "looks like {} of another publisher",
                    report.similar_ids.join(", ")
                ),
            );
        }

        // The policies decide: approve now, or review.
        let policy = secflow_policy::market::MarketPolicy::load(
            &self.inner.host.paths().policy().join("market"),
        )
        .map_err(|e| secflow_host::HostError::invalid(format!("marketplace policies: {e}")))?;
        let facts = secflow_policy::market::UploadFacts {
            publisher: publisher_name.to_string(),
            id: id.clone(),
            version: report.version.clone(),
            kind: report.kind.clone(),
            first_version,
            escalation: !report.escalation.is_empty(),
            secrets: report.secrets.len() as u64,
            health_ok: ok,
            typosquat: !report.similar_ids.is_empty(),
            capabilities: secflow_policy::PluginFacts::from_manifest(
                &manifest,
                true,
                ["publisher"],
            )
            .capabilities,
        };
        let decision = policy.decide(&facts);
        report.decision = Some(vetting::Decision {
            auto_approved: decision.allowed,
            policies: decision.policies.clone(),
            errors: decision.errors.clone(),
        });

        // Store: the upload always; the countersigned file when approved.
        let upload_sha256 = self.write_package(bytes)?;
        let (state, file_sha256) = if decision.allowed {
            (
                State::Approved,
                self.write_package(&self.countersign(bytes)?)?,
            )
        } else {
            (State::Pending, upload_sha256.clone())
        };
        let mut tx = self.store().pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO versions (plugin_id, version, publisher, sha256, upload_sha256, file_sha256, size, kind, name, description, categories, tags, capabilities, dependencies, state, report, decided_by, decided_at, decision_reason, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(&report.version)
        .bind(publisher_name)
        .bind(&report.sha256)
        .bind(&upload_sha256)
        .bind(&file_sha256)
        .bind(bytes.len() as i64)
        .bind(&report.kind)
        .bind(&manifest.name)
        .bind(&manifest.description)
        .bind(serde_json::to_string(&manifest.categories).expect("strings"))
        .bind(serde_json::to_string(&manifest.tags).expect("strings"))
        .bind(serde_json::to_string(&manifest.capabilities).expect("capabilities"))
        .bind(
            serde_json::to_string(
                &manifest
                    .dependencies
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
            .expect("strings"),
        )
        .bind(state.as_str())
        .bind(serde_json::to_string(&report).expect("a report serializes"))
        .bind(decision.allowed.then(|| format!("policy:{}", decision.policies.join(","))))
        .bind(decision.allowed.then(|| now() as i64))
        .bind(decision.allowed.then(|| "approved by the marketplace policies".to_string()))
        .bind(report.vetted_at as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Another upload of the same version won the race.
            return Err(MarketError::Conflict(format!(
                "{id} {} was published at the same moment by another upload; versions are immutable",
                report.version
            )));
        }
        if state == State::Approved {
            Store::index_changed(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Published {
            plugin_id: id,
            version: report.version.clone(),
            state,
            unchanged: false,
            report,
        })
    }

    /// Adds the marketplace's countersignature.
    fn countersign(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(secflow_trust::add_signature(
            bytes,
            &self.inner.key,
            now(),
            None,
            &PackageLimits::default(),
        )
        .map_err(secflow_host::HostError::from)?)
    }

    // ---- review, yank, revoke -----------------------------------------------------------

    /// Versions waiting for a reviewer, oldest first.
    pub async fn queue(&self) -> Result<Vec<Pending>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            store::version_columns!(),
            ", report FROM versions WHERE state = 'pending' ORDER BY published_at, plugin_id, version"
        ))
        .fetch_all(&self.store().pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Pending {
                version: store::version_row(r),
                report: serde_json::from_str(r.get("report")).unwrap_or_default(),
            })
            .collect())
    }

    async fn existing(&self, id: &str, version: &str) -> Result<VersionRow> {
        self.store().version(id, version).await?.ok_or_else(|| {
            MarketError::NotFound(format!(
                "no version {} of {} in this marketplace",
                version.escape_debug(),
                id.escape_debug()
            ))
        })
    }

    /// A reviewer approves (the marketplace countersigns) or rejects a pending version.
    pub async fn review(
        &self,
        id: &str,
        version: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<VersionRow> {
        let row = self.existing(id, version).await?;
        if row.state != State::Pending {
            return Err(MarketError::Conflict(format!(
                "{id} {version} is {} already; only pending versions are reviewed",
                row.state.as_str()
            )));
        }
        if reason.trim().is_empty() || reason.len() > 2000 {
            return Err(MarketError::Invalid(
                "a review needs a reason (1 to 2000 characters)".into(),
            ));
        }
        let (state, file_sha256) = if approve {
            let upload = self.read_package(&row.upload_sha256)?;
            (
                State::Approved,
                self.write_package(&self.countersign(&upload)?)?,
            )
        } else {
            (State::Rejected, row.file_sha256.clone())
        };
        let mut tx = self.store().pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE versions SET state = ?, file_sha256 = ?, decided_by = ?, decided_at = ?, decision_reason = ? WHERE plugin_id = ? AND version = ? AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(&file_sha256)
        .bind(actor)
        .bind(now() as i64)
        .bind(reason)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(MarketError::Conflict(format!(
                "{id} {version} was reviewed by someone else at the same moment"
            )));
        }
        if approve {
            Store::index_changed(&mut *tx).await?;
        }
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketReview,
            Some(PluginRef {
                id: id.into(),
                version: version.into(),
                digest: row.sha256.clone(),
            }),
            state.as_str(),
            reason.to_string(),
            serde_json::json!({"file_sha256": file_sha256}),
        )
        .await?;
        self.existing(id, version).await
    }

    /// Yanks (or un-yanks) a version: not picked by version ranges any more; installed
    /// copies and exact-version installs keep working. `publisher`: the caller's publisher
    /// when it is one (it may yank only its own versions); `None` for an admin.
    pub async fn yank(
        &self,
        id: &str,
        version: &str,
        yanked: bool,
        reason: &str,
        publisher: Option<&str>,
        actor: &str,
    ) -> Result<VersionRow> {
        let row = self.existing(id, version).await?;
        if let Some(publisher) = publisher
            && publisher != row.publisher
        {
            return Err(MarketError::Forbidden(format!(
                "{id} {version} belongs to publisher `{}`",
                row.publisher
            )));
        }
        let mut tx = self.store().pool.begin().await?;
        sqlx::query(
            "UPDATE versions SET yanked_at = ?, yank_reason = ? WHERE plugin_id = ? AND version = ?",
        )
        .bind(yanked.then(|| now() as i64))
        .bind(yanked.then(|| reason.to_string()))
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        Store::index_changed(&mut *tx).await?;
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketYank,
            Some(PluginRef {
                id: id.into(),
                version: version.into(),
                digest: row.sha256.clone(),
            }),
            if yanked { "yanked" } else { "unyanked" },
            reason.to_string(),
            serde_json::json!({}),
        )
        .await?;
        self.existing(id, version).await
    }

    /// Revokes a version: its digest goes on the signed revocation list; clients refuse to
    /// run it and quarantine it. It leaves the index and is no longer served.
    pub async fn revoke(
        &self,
        id: &str,
        version: &str,
        reason: &str,
        actor: &str,
    ) -> Result<VersionRow> {
        let row = self.existing(id, version).await?;
        if reason.trim().is_empty() || reason.len() > 2000 {
            return Err(MarketError::Invalid(
                "a revocation needs a reason (1 to 2000 characters)".into(),
            ));
        }
        if row.revoked_at.is_some() {
            return Ok(row);
        }
        let mut tx = self.store().pool.begin().await?;
        sqlx::query(
            "UPDATE versions SET revoked_at = ?, revoke_reason = ? WHERE plugin_id = ? AND version = ?",
        )
        .bind(now() as i64)
        .bind(reason)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        Store::index_changed(&mut *tx).await?;
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketRevoke,
            Some(PluginRef {
                id: id.into(),
                version: version.into(),
                digest: row.sha256.clone(),
            }),
            "revoked",
            reason.to_string(),
            serde_json::json!({}),
        )
        .await?;
        self.existing(id, version).await
    }

    // ---- what clients fetch -------------------------------------------------------------

    /// The signed index, re-signed (with the next version) after any change to what it
    /// lists, and when half of its lifetime has passed.
    pub async fn index(&self) -> Result<SignedDocument> {
        let _one = self.inner.signing.lock().await;
        let store = self.store();
        let lifetime = self.inner.config.index_lifetime.as_secs().max(60);
        let dirty = store.meta("index_dirty").await?.as_deref() != Some("0");
        let current: Option<SignedDocument> = store
            .meta("index")
            .await?
            .and_then(|t| serde_json::from_str(&t).ok());
        let expires: u64 = store
            .meta("index_expires_at")
            .await?
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if let Some(current) = current
            && !dirty
            && expires > now() + lifetime / 2
        {
            return Ok(current);
        }
        let version: u64 = store
            .meta("index_version")
            .await?
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
            + 1;
        let issued_at = now();
        let index = Index {
            kind: INDEX_TYPE.into(),
            version,
            issued_at,
            expires_at: issued_at + lifetime,
            plugins: self.index_plugins().await?,
        };
        let doc = SignedDocument::sign(&index, &[&self.inner.key]);
        let mut tx = store.pool.begin().await?;
        for (key, value) in [
            ("index", serde_json::to_string(&doc).expect("serializes")),
            ("index_version", version.to_string()),
            ("index_expires_at", index.expires_at.to_string()),
            ("index_dirty", "0".to_string()),
        ] {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(doc)
    }

    async fn approved(&self) -> Result<Vec<VersionRow>> {
        let mut rows: Vec<VersionRow> = sqlx::query(concat!(
            "SELECT ",
            store::version_columns!(),
            " FROM versions WHERE state = 'approved' AND revoked_at IS NULL"
        ))
        .fetch_all(&self.store().pool)
        .await?
        .iter()
        .map(store::version_row)
        .collect();
        rows.sort_by(|a, b| {
            a.plugin_id
                .cmp(&b.plugin_id)
                .then_with(|| semver_order(&a.version, &b.version))
        });
        Ok(rows)
    }

    async fn index_plugins(&self) -> Result<Vec<IndexPlugin>> {
        let mut plugins: Vec<IndexPlugin> = Vec::new();
        for row in self.approved().await? {
            let caps: Capabilities =
                serde_json::from_value(row.capabilities.clone()).unwrap_or_default();
            let version = IndexVersion {
                version: row.version.clone(),
                sha256: row.sha256.clone(),
                file_sha256: row.file_sha256.clone(),
                size: row.size,
                published_at: row.published_at,
                yanked: row.yanked_at.is_some(),
                capabilities: secflow_registry::grants::labels(&caps),
                dependencies: row.dependencies.clone(),
            };
            match plugins.last_mut() {
                Some(p) if p.id == row.plugin_id => {
                    // The newest version describes the plugin.
                    p.name = row.name;
                    p.description = row.description;
                    p.kind = row.kind;
                    p.categories = row.categories;
                    p.tags = row.tags;
                    p.versions.push(version);
                }
                _ => plugins.push(IndexPlugin {
                    id: row.plugin_id,
                    name: row.name,
                    kind: row.kind,
                    description: row.description,
                    publisher: row.publisher,
                    categories: row.categories,
                    tags: row.tags,
                    versions: vec![version],
                }),
            }
        }
        Ok(plugins)
    }

    /// The signed list of revoked digests (a `secflow.revocation-list/v1` signed by the
    /// marketplace key), re-signed when a revocation is added.
    pub async fn revocations(&self) -> Result<Signed> {
        let rows = sqlx::query(
            "SELECT plugin_id, version, sha256, revoked_at, revoke_reason FROM versions WHERE revoked_at IS NOT NULL ORDER BY revoked_at, plugin_id, version",
        )
        .fetch_all(&self.store().pool)
        .await?;
        if let Some((count, signed)) = self.inner.revocations.lock().expect("revocations").as_ref()
            && *count == rows.len()
        {
            return Ok(signed.clone());
        }
        let entries = rows
            .iter()
            .map(|r| secflow_trust::Revocation {
                item: secflow_trust::RevokedItem::PackageSha256(r.get("sha256")),
                // Any use is refused, whenever it was installed.
                from: 0,
                reason: format!(
                    "{} {} revoked by the marketplace: {}",
                    r.get::<String, _>("plugin_id"),
                    r.get::<String, _>("version"),
                    r.get::<Option<String>, _>("revoke_reason")
                        .unwrap_or_default()
                ),
            })
            .collect();
        let signed = secflow_trust::lists::sign_revocations(&self.inner.key, entries, now());
        *self.inner.revocations.lock().expect("revocations") = Some((rows.len(), signed.clone()));
        Ok(signed)
    }

    /// The countersigned package file of an approved, unrevoked version.
    pub async fn package(&self, id: &str, version: &str) -> Result<(VersionRow, Vec<u8>)> {
        let row = self.existing(id, version).await?;
        if row.state != State::Approved {
            return Err(MarketError::NotFound(format!(
                "{id} {version} is {}, not approved: it is not served",
                row.state.as_str()
            )));
        }
        if row.revoked_at.is_some() {
            return Err(MarketError::NotFound(format!(
                "{id} {version} was revoked: {}",
                row.revoke_reason.clone().unwrap_or_default()
            )));
        }
        let bytes = self.read_package(&row.file_sha256)?;
        Ok((row, bytes))
    }

    /// A pending version's upload, for its reviewers.
    pub async fn upload(&self, id: &str, version: &str) -> Result<(VersionRow, Vec<u8>)> {
        let row = self.existing(id, version).await?;
        let bytes = self.read_package(&row.upload_sha256)?;
        Ok((row, bytes))
    }

    // ---- receipts and ratings -----------------------------------------------------------

    /// Counts an install from a receipt signed by the installing host: once per host and
    /// version. Returns whether it was new.
    pub async fn record_install(&self, receipt: &HostSigned, actor: &str) -> Result<bool> {
        let (host_id, body) = receipt
            .receipt()
            .map_err(|e| MarketError::Invalid(format!("install receipt: {e}")))?;
        let row = self.existing(&body.plugin_id, &body.version).await?;
        if row.sha256 != body.sha256 || row.state != State::Approved {
            return Err(MarketError::Invalid(format!(
                "the receipt names payload {} but {} {} published here is {}",
                body.sha256, body.plugin_id, body.version, row.sha256
            )));
        }
        let new = sqlx::query(
            "INSERT INTO installs (host_id, plugin_id, version, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&host_id)
        .bind(&body.plugin_id)
        .bind(&body.version)
        .bind(now() as i64)
        .execute(&self.store().pool)
        .await?
        .rows_affected()
            == 1;
        if new {
            self.audit(
                actor,
                Action::MarketReceipt,
                Some(PluginRef {
                    id: body.plugin_id.clone(),
                    version: body.version.clone(),
                    digest: body.sha256.clone(),
                }),
                "install",
                String::new(),
                serde_json::json!({"host": host_id}),
            )
            .await?;
        }
        Ok(new)
    }

    /// A rating by a host that sent an install receipt for the plugin; one per host and
    /// plugin (a new one replaces the old).
    pub async fn rate(&self, id: &str, rating: &HostSigned, actor: &str) -> Result<RatingRow> {
        let (host_id, body) = rating
            .rating()
            .map_err(|e| MarketError::Invalid(format!("rating: {e}")))?;
        if body.plugin_id != id {
            return Err(MarketError::Invalid(format!(
                "the rating is for {}, not {id}",
                body.plugin_id
            )));
        }
        let installed: Option<String> = sqlx::query_scalar(
            "SELECT version FROM installs WHERE host_id = ? AND plugin_id = ? ORDER BY at DESC LIMIT 1",
        )
        .bind(&host_id)
        .bind(id)
        .fetch_optional(&self.store().pool)
        .await?;
        let Some(version) = installed else {
            return Err(MarketError::Forbidden(format!(
                "no install receipt from host {host_id} for {id}: only hosts that installed it may rate it (a client sends the receipt when it installs)"
            )));
        };
        sqlx::query(
            "INSERT INTO ratings (host_id, plugin_id, version, stars, text, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(host_id, plugin_id) DO UPDATE SET version = excluded.version, stars = excluded.stars, text = excluded.text, at = excluded.at, hidden_at = NULL, hidden_by = NULL, hidden_reason = NULL",
        )
        .bind(&host_id)
        .bind(id)
        .bind(&version)
        .bind(i64::from(body.stars))
        .bind(&body.text)
        .bind(now() as i64)
        .execute(&self.store().pool)
        .await?;
        self.audit(
            actor,
            Action::MarketReceipt,
            Some(PluginRef {
                id: id.into(),
                version: version.clone(),
                digest: String::new(),
            }),
            "rating",
            String::new(),
            serde_json::json!({"host": host_id, "stars": body.stars}),
        )
        .await?;
        let row = sqlx::query(
            "SELECT host_id, plugin_id, version, stars, text, at, hidden_at FROM ratings WHERE host_id = ? AND plugin_id = ?",
        )
        .bind(&host_id)
        .bind(id)
        .fetch_one(&self.store().pool)
        .await?;
        Ok(store::rating_row(&row))
    }

    /// Moderation: hides (or shows again) a rating.
    pub async fn moderate(
        &self,
        id: &str,
        host_id: &str,
        hide: bool,
        reason: &str,
        actor: &str,
    ) -> Result<()> {
        let changed = sqlx::query(
            "UPDATE ratings SET hidden_at = ?, hidden_by = ?, hidden_reason = ? WHERE plugin_id = ? AND host_id = ?",
        )
        .bind(hide.then(|| now() as i64))
        .bind(hide.then(|| actor.to_string()))
        .bind(hide.then(|| reason.to_string()))
        .bind(id)
        .bind(host_id)
        .execute(&self.store().pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(MarketError::NotFound(format!(
                "no rating of {id} by host {host_id}"
            )));
        }
        self.audit(
            actor,
            Action::MarketReceipt,
            Some(PluginRef {
                id: id.into(),
                version: String::new(),
                digest: String::new(),
            }),
            if hide {
                "rating-hidden"
            } else {
                "rating-shown"
            },
            reason.to_string(),
            serde_json::json!({"host": host_id}),
        )
        .await
    }

    // ---- browsing -----------------------------------------------------------------------

    async fn listings(&self) -> Result<Vec<(Listing, VersionRow)>> {
        let approved = self.approved().await?;
        let downloads: BTreeMap<String, u64> =
            sqlx::query("SELECT plugin_id, COUNT(*) AS n FROM installs GROUP BY plugin_id")
                .fetch_all(&self.store().pool)
                .await?
                .iter()
                .map(|r| (r.get("plugin_id"), r.get::<i64, _>("n").max(0) as u64))
                .collect();
        let ratings: BTreeMap<String, (f64, u64)> = sqlx::query(
            "SELECT plugin_id, AVG(stars) AS avg, COUNT(*) AS n FROM ratings WHERE hidden_at IS NULL GROUP BY plugin_id",
        )
        .fetch_all(&self.store().pool)
        .await?
        .iter()
        .map(|r| {
            (
                r.get("plugin_id"),
                (r.get::<f64, _>("avg"), r.get::<i64, _>("n").max(0) as u64),
            )
        })
        .collect();
        let mut by_id: BTreeMap<String, Vec<VersionRow>> = BTreeMap::new();
        for row in approved {
            by_id.entry(row.plugin_id.clone()).or_default().push(row);
        }
        Ok(by_id
            .into_iter()
            .filter_map(|(id, versions)| {
                let latest = versions
                    .iter()
                    .rev()
                    .find(|v| v.yanked_at.is_none())
                    .or(versions.last())?
                    .clone();
                let updated_at = versions.iter().map(|v| v.published_at).max().unwrap_or(0);
                let (rating, count) = ratings
                    .get(&id)
                    .map_or((None, 0), |(avg, n)| (Some(*avg), *n));
                Some((
                    Listing {
                        id: id.clone(),
                        name: latest.name.clone(),
                        kind: latest.kind.clone(),
                        description: latest.description.clone(),
                        publisher: latest.publisher.clone(),
                        categories: latest.categories.clone(),
                        tags: latest.tags.clone(),
                        latest_version: latest.version.clone(),
                        updated_at,
                        downloads: downloads.get(&id).copied().unwrap_or(0),
                        rating,
                        ratings: count,
                    },
                    latest,
                ))
            })
            .collect())
    }

    /// Browse and search the approved plugins.
    pub async fn search(&self, query: &Query) -> Result<SearchResult> {
        let words: Vec<String> = query
            .text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut found: Vec<Listing> = self
            .listings()
            .await?
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| query.kind.as_ref().is_none_or(|k| &l.kind == k))
            .filter(|l| {
                query
                    .category
                    .as_ref()
                    .is_none_or(|c| l.categories.contains(c))
            })
            .filter(|l| query.tag.as_ref().is_none_or(|t| l.tags.contains(t)))
            .filter(|l| {
                let text = format!("{} {} {} {}", l.id, l.name, l.description, l.tags.join(" "))
                    .to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .collect();
        match query.sort {
            Sort::Downloads => found.sort_by_key(|l| std::cmp::Reverse(l.downloads)),
            Sort::Rating => found.sort_by(|a, b| {
                b.rating
                    .unwrap_or(0.0)
                    .total_cmp(&a.rating.unwrap_or(0.0))
                    .then(b.ratings.cmp(&a.ratings))
            }),
            Sort::Recent => found.sort_by_key(|l| std::cmp::Reverse(l.updated_at)),
        }
        let per_page = query.per_page.clamp(1, 100);
        let page = query.page.max(1);
        let total = found.len();
        let plugins = found
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        Ok(SearchResult {
            total,
            page,
            per_page,
            plugins,
        })
    }

    /// The plugin page of an approved plugin.
    pub async fn page(&self, id: &str) -> Result<PluginPage> {
        let Some((listing, latest)) = self.listings().await?.into_iter().find(|(l, _)| l.id == id)
        else {
            return Err(MarketError::NotFound(format!(
                "no approved plugin `{}` in this marketplace",
                id.escape_debug()
            )));
        };
        let caps: Capabilities =
            serde_json::from_value(latest.capabilities.clone()).unwrap_or_default();
        let capabilities = secflow_registry::grants::asks(&caps)
            .into_iter()
            .map(|a| vetting::Capability {
                label: a.label,
                reason: a.reason,
            })
            .collect();
        let mut versions: Vec<VersionSummary> = self
            .store()
            .versions(id)
            .await?
            .into_iter()
            .filter(|v| v.state == State::Approved && v.revoked_at.is_none())
            .map(|v| VersionSummary {
                version: v.version,
                published_at: v.published_at,
                yanked: v.yanked_at.is_some(),
                sha256: v.sha256,
            })
            .collect();
        versions.reverse();
        let report = self
            .store()
            .report(id, &latest.version)
            .await?
            .unwrap_or_default();
        let downloads = Downloads {
            total: self.store().installs(id, 0).await?,
            last_90_days: self
                .store()
                .installs(id, now().saturating_sub(90 * 86_400))
                .await?,
        };
        let ratings = self.store().ratings(id, false).await?;
        Ok(PluginPage {
            listing,
            latest,
            capabilities,
            versions,
            report,
            downloads,
            ratings,
        })
    }
}

/// The audit details of a vetting report: what was decided and why, in brief.
fn summary(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "checks": report.checks.iter().map(|c| serde_json::json!({
            "name": c.name, "status": c.status, "summary": c.summary,
        })).collect::<Vec<_>>(),
        "escalation": report.escalation,
        "secrets": report.secrets.len(),
        "similar_ids": report.similar_ids,
        "decision": report.decision,
    })
}

//! A SecFlow host as a marketplace client.
//!
//! A marketplace is added with its public key (pinned: trusted in the host's trust store
//! with the `marketplace` role). Its index is accepted only when signed by that key, not
//! expired (freeze) and not older than the last version this host saw (rollback; the last
//! version is kept in `marketplaces.json`). An install by id resolves a version from the
//! index (yanked versions only by exact version), downloads the package, checks its SHA-256
//! against the index (a tampered download is refused), requires the marketplace's
//! countersignature, and then goes through the host's one admission path like any
//! package. A receipt signed by the host's identity key counts the install. Revocation
//! lists are fetched when older than the poll interval, imported into the trust store
//! (a marketplace key revokes package digests only), and revoked installed plugins are
//! quarantined; run clearance refuses a revoked digest from the import on.

use secflow_host::{Admitted, Approver, Host, HostError, InstallMode, InstallRequest, Package};
use secflow_market::documents::{IndexPlugin, IndexVersion, RECEIPT_TYPE, Receipt};
use secflow_market::{HostSigned, Index, SignedDocument};
use secflow_trust::{KeyDir, PublicKeyFile, Role, TrustStore};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How often revocation lists are fetched by default. A revoke reaches a client within
/// this plus the time to its next run.
pub const DEFAULT_POLL: Duration = Duration::from_secs(120);

/// How long a revocation poll waits for the marketplace.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// The name of the host's identity key (signs install receipts and ratings).
pub const IDENTITY_KEY: &str = "host-identity";

/// Largest package downloaded.
const MAX_PACKAGE_BYTES: usize = 256 << 20;

/// Why a marketplace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The marketplace's answer is not to be trusted (signature, rollback, freeze, digest).
    #[error("{0}")]
    Refused(String),
    #[error("marketplace {name}: {message}")]
    Unreachable { name: String, message: String },
    #[error(transparent)]
    Host(#[from] HostError),
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A marketplace this host uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marketplace {
    pub name: String,
    /// Base URL (`https://market.example.com`).
    pub url: String,
    /// The pinned key.
    pub key: PublicKeyFile,
    pub added_at: u64,
    /// The highest index version seen (rollback protection).
    #[serde(default)]
    pub index_version: Option<u64>,
    /// When its revocation list was last applied.
    #[serde(default)]
    pub revocations_at: Option<u64>,
    /// When a poll last tried to fetch it (applied or not): a marketplace that is down is
    /// tried once per poll interval, not before every run.
    #[serde(default)]
    pub polled_at: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Config {
    #[serde(default)]
    marketplaces: Vec<Marketplace>,
}

/// What an install from a marketplace did.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub marketplace: String,
    pub id: String,
    pub version: String,
    pub admitted: Vec<Admitted>,
    /// Whether the marketplace counted the install (a failure to send the receipt does not
    /// undo the install).
    pub receipt: std::result::Result<bool, String>,
}

/// What applying a marketplace's revocation list did.
#[derive(Debug, Clone, Serialize)]
pub struct Synced {
    pub marketplace: String,
    /// The import's own message (how many revocations were new).
    pub imported: String,
    /// Installed plugins quarantined because their package is revoked.
    pub quarantined: Vec<String>,
}

/// The marketplace client of a host.
#[derive(Debug, Clone)]
pub struct Client {
    host: Host,
    http: reqwest::Client,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ClientError::Invalid(format!(
            "marketplace name `{}`: 1 to 64 of a-z, 0-9 and `-`",
            name.escape_debug()
        )))
    }
}

impl Client {
    pub fn new(host: Host) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("secflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with the default settings");
        Client { host, http }
    }

    fn path(&self) -> PathBuf {
        self.host.paths().root.join("marketplaces.json")
    }

    fn load(&self) -> Result<Config> {
        match std::fs::read(self.path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Invalid(format!(
                    "{} is damaged ({e}); remove it and add the marketplaces again",
                    self.path().display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(HostError::internal(format!(
                "cannot read {}: {e}",
                self.path().display()
            ))
            .into()),
        }
    }

    fn save(&self, config: &Config) -> Result<()> {
        let text = serde_json::to_vec_pretty(config).expect("a config serializes");
        secflow_host::write_file(&self.path(), &text, false)?;
        Ok(())
    }

    /// The marketplaces this host uses.
    pub fn list(&self) -> Result<Vec<Marketplace>> {
        Ok(self.load()?.marketplaces)
    }

    fn marketplace(&self, name: &str) -> Result<Marketplace> {
        self.list()?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| {
                ClientError::NotFound(format!(
                    "no marketplace `{name}`; add it with `secflow marketplace add {name} URL --key FILE`"
                ))
            })
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Marketplace)) -> Result<()> {
        let mut config = self.load()?;
        if let Some(m) = config.marketplaces.iter_mut().find(|m| m.name == name) {
            change(m);
        }
        self.save(&config)
    }

    /// Adds a marketplace and pins its key (trusted to countersign any plugin id, and to
    /// revoke package digests).
    pub async fn add(&self, name: &str, url: &str, key_file_text: &str) -> Result<Marketplace> {
        check_name(name)?;
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ClientError::Invalid(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ClientError::Invalid(format!(
                "`{url}`: a marketplace is reached over https (or http on a trusted network)"
            )));
        }
        let (key, _) = PublicKeyFile::parse(key_file_text)
            .map_err(|e| ClientError::Invalid(format!("the marketplace key: {e}")))?;
        let mut config = self.load()?;
        if config.marketplaces.iter().any(|m| m.name == name) {
            return Err(ClientError::Invalid(format!(
                "a marketplace `{name}` is already added"
            )));
        }
        self.host
            .change_trust(secflow_host::TrustChange::AddPublicKey {
                text: key_file_text.to_string(),
                role: Role::Marketplace,
                scopes: vec!["*".into()],
            })
            .await?;
        let added = Marketplace {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            key,
            added_at: secflow_trust::now(),
            index_version: None,
            revocations_at: None,
            polled_at: None,
        };
        config.marketplaces.push(added.clone());
        self.save(&config)?;
        Ok(added)
    }

    async fn get(&self, market: &Marketplace, path: &str, limit: usize) -> Result<Vec<u8>> {
        self.get_within(market, path, limit, Duration::from_secs(60))
            .await
    }

    async fn get_within(
        &self,
        market: &Marketplace,
        path: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let unreachable = |message: String| ClientError::Unreachable {
            name: market.name.clone(),
            message,
        };
        let mut response = self
            .http
            .get(format!("{}{path}", market.url))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound(format!(
                "marketplace {}: {path} not found",
                market.name
            )));
        }
        if !status.is_success() {
            return Err(unreachable(format!("{path}: HTTP {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(e.to_string()))?
        {
            if body.len() + chunk.len() > limit {
                return Err(ClientError::Refused(format!(
                    "marketplace {}: {path} is larger than {limit} bytes",
                    market.name
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The marketplace's index, verified: signed by the pinned key, not expired, not older
    /// than the last version seen (which it then becomes).
    pub async fn index(&self, name: &str) -> Result<Index> {
        let market = self.marketplace(name)?;
        let bytes = self
            .get(
                &market,
                "/v1/market/index",
                secflow_market::documents::MAX_INDEX_BYTES + 4096,
            )
            .await?;
        let doc: SignedDocument = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Refused(format!("marketplace {name}: the index: {e}")))?;
        let key = secflow_trust::keys::parse_public(&market.key.public)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        // Expiry is judged by the trust store's clock, which never goes back.
        let now = secflow_trust::now().max(self.host.trust_store()?.latest_time);
        let index = Index::open(&doc, &[key], 1, now, market.index_version)
            .map_err(|e| ClientError::Refused(format!("marketplace {name}: {e}")))?;
        let seen = index.version;
        self.update(name, |m| {
            m.index_version = Some(m.index_version.map_or(seen, |v| v.max(seen)));
        })?;
        Ok(index)
    }

    /// Plugins of the marketplace's index whose id, name, description or tags contain every
    /// word of `text`.
    pub async fn search(&self, name: &str, text: &str) -> Result<Vec<IndexPlugin>> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        Ok(self
            .index(name)
            .await?
            .plugins
            .into_iter()
            .filter(|p| {
                let hay = format!("{} {} {} {}", p.id, p.name, p.description, p.tags.join(" "))
                    .to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .collect())
    }

    /// Installs (or, with [`InstallMode::Upgrade`], upgrades) `spec` (`ID` or `ID@RANGE`)
    /// from the marketplace `name`.
    pub async fn install(
        &self,
        name: &str,
        spec: &str,
        mode: InstallMode,
        approver: &dyn Approver,
    ) -> Result<Installed> {
        let (id, range) = match spec.split_once('@') {
            Some((id, range)) => (id, range),
            None => (spec, "*"),
        };
        let req = semver::VersionReq::parse(range)
            .map_err(|e| ClientError::Invalid(format!("`{range}` is not a version range: {e}")))?;
        let market = self.marketplace(name)?;
        let index = self.index(name).await?;
        let plugin =
            index.plugins.iter().find(|p| p.id == id).ok_or_else(|| {
                ClientError::NotFound(format!("marketplace {name} has no `{id}`"))
            })?;
        let version = resolve(plugin, &req, range).ok_or_else(|| {
            ClientError::NotFound(format!(
                "marketplace {name} has no version of {id} matching `{range}` (yanked versions only by exact version, `={range}`)"
            ))
        })?;
        let bytes = self
            .get(
                &market,
                &format!(
                    "/v1/market/plugins/{id}/versions/{}/package",
                    version.version
                ),
                MAX_PACKAGE_BYTES,
            )
            .await?;
        // The bytes are the ones the signed index names.
        let got = secflow_io::sha256_hex(&bytes);
        if got != version.file_sha256 {
            return Err(ClientError::Refused(format!(
                "the download of {id} {} does not match the signed index (sha256 {got}, index {}): refused",
                version.version, version.file_sha256
            )));
        }
        // From a marketplace, its countersignature is required.
        let mut pinned = TrustStore::default();
        pinned
            .add_key(&market.key, Role::Marketplace, vec!["*".into()], 0)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let verification = secflow_trust::verify(
            &bytes,
            &mut pinned,
            secflow_trust::now(),
            &Default::default(),
            secflow_trust::VerifyOptions {
                allow_rollback: true,
            },
        )
        .map_err(|e| ClientError::Refused(format!("{id} {}: {e}", version.version)))?;
        if !verification.accepted() || verification.package_sha256 != version.sha256 {
            return Err(ClientError::Refused(format!(
                "{id} {} is not countersigned by marketplace {name}: {}",
                version.version,
                verification.refusals.join("; ")
            )));
        }
        let admitted = self
            .host
            .install(
                InstallRequest {
                    packages: vec![Package {
                        source: format!("marketplace {name}: {id} {}", version.version),
                        bytes,
                    }],
                    mode,
                    select: Vec::new(),
                    mounts: Vec::new(),
                    dev: false,
                    allow_rollback: false,
                },
                approver,
            )
            .await?;
        let receipt = self
            .send_receipt(&market, id, &version.version, &version.sha256)
            .await
            .map_err(|e| e.to_string());
        Ok(Installed {
            marketplace: name.to_string(),
            id: id.to_string(),
            version: version.version.clone(),
            admitted,
            receipt,
        })
    }

    async fn send_with_token(
        &self,
        market: &Marketplace,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<serde_json::Value> {
        let response =
            request
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| ClientError::Unreachable {
                    name: market.name.clone(),
                    message: e.to_string(),
                })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            return Ok(body);
        }
        let detail = body["detail"].as_str().unwrap_or("").to_string();
        let message = format!("marketplace {}: HTTP {status}: {detail}", market.name);
        Err(match status.as_u16() {
            400 | 409 | 415 | 422 => ClientError::Invalid(match body.get("report") {
                Some(report) => format!(
                    "{message}\n{}",
                    serde_json::to_string_pretty(report).unwrap_or_default()
                ),
                None => message,
            }),
            401 | 403 => ClientError::Refused(message),
            404 => ClientError::NotFound(message),
            _ => ClientError::Unreachable {
                name: market.name.clone(),
                message,
            },
        })
    }

    /// Publishes a package file as the publisher whose token is `token` (a `publisher`
    /// token named like the publisher). Returns the marketplace's answer: the state
    /// (`approved`, `pending`) and the vetting report.
    pub async fn publish(
        &self,
        name: &str,
        bytes: Vec<u8>,
        token: &str,
    ) -> Result<serde_json::Value> {
        let market = self.marketplace(name)?;
        let request = self
            .http
            .post(format!("{}/v1/market/packages", market.url))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        self.send_with_token(&market, request, token).await
    }

    /// The versions waiting for review, with their reports (a `reviewer` token).
    pub async fn queue(&self, name: &str, token: &str) -> Result<serde_json::Value> {
        let market = self.marketplace(name)?;
        let request = self.http.get(format!("{}/v1/market/queue", market.url));
        self.send_with_token(&market, request, token).await
    }

    /// A reviewer approves (the marketplace countersigns) or rejects a pending version.
    pub async fn review(
        &self,
        name: &str,
        id: &str,
        version: &str,
        approve: bool,
        reason: &str,
        token: &str,
    ) -> Result<serde_json::Value> {
        let market = self.marketplace(name)?;
        let request = self
            .http
            .post(format!(
                "{}/v1/market/plugins/{id}/versions/{version}/review",
                market.url
            ))
            .json(&serde_json::json!({
                "decision": if approve { "approve" } else { "reject" },
                "reason": reason,
            }));
        self.send_with_token(&market, request, token).await
    }

    /// The host's identity key (created on first use).
    fn identity(&self) -> Result<ed25519_dalek::SigningKey> {
        let keys = KeyDir::new(self.host.paths().keys());
        if keys.public(IDENTITY_KEY).is_err() {
            keys.generate(IDENTITY_KEY).map_err(HostError::from)?;
        }
        Ok(keys.signing_key(IDENTITY_KEY).map_err(HostError::from)?)
    }

    async fn send_receipt(
        &self,
        market: &Marketplace,
        id: &str,
        version: &str,
        sha256: &str,
    ) -> Result<bool> {
        let receipt = HostSigned::sign(
            &Receipt {
                kind: RECEIPT_TYPE.into(),
                plugin_id: id.to_string(),
                version: version.to_string(),
                sha256: sha256.to_string(),
                issued_at: secflow_trust::now(),
            },
            &self.identity()?,
        );
        let response = self
            .http
            .post(format!("{}/v1/market/installs", market.url))
            .json(&receipt)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                name: market.name.clone(),
                message: e.to_string(),
            })?;
        match response.status().as_u16() {
            201 => Ok(true),
            200 => Ok(false),
            status => Err(ClientError::Unreachable {
                name: market.name.clone(),
                message: format!("the receipt was not taken: HTTP {status}"),
            }),
        }
    }

    /// Fetches and applies the revocation list of `name`: imported into the trust store
    /// (clearance refuses a revoked digest from now on) and revoked installed plugins
    /// quarantined.
    pub async fn sync(&self, name: &str) -> Result<Synced> {
        let market = self.marketplace(name)?;
        // Polled before runs: a marketplace that is down costs a run seconds, not a minute.
        let bytes = self
            .get_within(&market, "/v1/market/revocations", 8 << 20, POLL_TIMEOUT)
            .await?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ClientError::Refused(format!(
                "marketplace {name}: the revocation list is not text"
            ))
        })?;
        // The list must be signed by the pinned key: the trust store checks the signer and
        // that a marketplace key revokes package digests only.
        let signed: secflow_trust::lists::Signed = serde_json::from_str(&text).map_err(|e| {
            ClientError::Refused(format!("marketplace {name}: the revocation list: {e}"))
        })?;
        // A revocation list and nothing else: the same import path also takes key
        // rotations, and a marketplace must not rotate its own pin away.
        let is_list = serde_json::from_str::<secflow_trust::lists::RevocationList>(&signed.body)
            .is_ok_and(|l| l.kind == secflow_trust::lists::REVOCATION_TYPE);
        if !is_list {
            return Err(ClientError::Refused(format!(
                "marketplace {name}: /v1/market/revocations is not a revocation list"
            )));
        }
        if signed.key_id != market.key.key_id {
            return Err(ClientError::Refused(format!(
                "marketplace {name}: the revocation list is signed by {}, not by the pinned key {}",
                signed.key_id, market.key.key_id
            )));
        }
        let imported = self
            .host
            .change_trust(secflow_host::TrustChange::ImportSigned { text })
            .await?;
        let quarantined = self.host.quarantine_revoked().await?;
        let now = secflow_trust::now();
        self.update(name, |m| m.revocations_at = Some(now))?;
        Ok(Synced {
            marketplace: name.to_string(),
            imported,
            quarantined,
        })
    }

    /// Applies the revocation lists last polled longer than `poll` ago. A marketplace that
    /// cannot be reached is reported and tried again at the next interval: the lists
    /// applied before stay in force.
    pub async fn sync_due(&self, poll: Duration) -> Vec<Result<Synced>> {
        let now = secflow_trust::now();
        let due: Vec<String> = match self.list() {
            Ok(list) => list
                .into_iter()
                .filter(|m| {
                    m.polled_at
                        .or(m.revocations_at)
                        .is_none_or(|at| at + poll.as_secs() <= now)
                })
                .map(|m| m.name)
                .collect(),
            Err(e) => return vec![Err(e)],
        };
        let mut out = Vec::new();
        for name in due {
            if let Err(e) = self.update(&name, |m| m.polled_at = Some(now)) {
                out.push(Err(e));
                continue;
            }
            out.push(self.sync(&name).await);
        }
        out
    }
}

/// The highest version matching `req` that is not yanked; a yanked one only when the range
/// names exactly it (`=1.2.3`).
fn resolve<'a>(
    plugin: &'a IndexPlugin,
    req: &semver::VersionReq,
    range: &str,
) -> Option<&'a IndexVersion> {
    let exact = range.trim().strip_prefix('=').map(str::trim);
    plugin
        .versions
        .iter()
        .filter_map(|v| {
            semver::Version::parse(&v.version)
                .ok()
                .map(|parsed| (parsed, v))
        })
        .filter(|(parsed, v)| {
            req.matches(parsed) && (!v.yanked || exact == Some(v.version.as_str()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v)
}

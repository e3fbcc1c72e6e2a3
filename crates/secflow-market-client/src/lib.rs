//! A SecFlow host as a marketplace client.
//!
//! A marketplace is added with its public key (pinned: trusted in the host's trust store
//! with the `marketplace` role). Its index is accepted only when signed by that key, not
//! expired (freeze) and not older than the last version this host saw (rollback; the last
//! version is kept in `marketplaces.json`). An install by id resolves a version from the
//! index (yanked versions only by exact version) and the dependencies it needs that are not
//! installed, downloads each package, checks its SHA-256 against the index (a tampered
//! download is refused), and then admits them through the host's one admission path with
//! `context.from_marketplace` set: the default policy `marketplace-countersignature-required`
//! refuses a package without a marketplace countersignature. A receipt signed by the host's
//! identity key counts the install. Revocation lists are fetched when older than the poll
//! interval, imported into the trust store (a marketplace key revokes package digests only),
//! and revoked installed plugins are quarantined; run clearance refuses a revoked digest
//! from the import on.
//!
//! Air-gapped hosts: [`Client::mirror`] writes a marketplace's signed index, revocation list
//! and packages into a directory; a marketplace added with a `file://` URL (or named by that
//! directory in `--from DIR`) is read from it with exactly the same checks, because the
//! documents carry their own signatures and the packages their digests. A mirror takes no
//! install receipts.

use secflow_host::{Admitted, Approver, Host, HostError, InstallMode, InstallRequest, Package};
use secflow_market::documents::{
    IndexPlugin, IndexVersion, RATING_TYPE, RECEIPT_TYPE, Rating, Receipt,
};
use secflow_market::{HostSigned, Index, SignedDocument};
use secflow_trust::{KeyDir, PublicKeyFile, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often revocation lists are fetched by default. A revoke reaches a client within
/// this plus the time to its next run.
pub const DEFAULT_POLL: Duration = Duration::from_secs(120);

/// The shortest and longest poll interval a marketplace may be given.
pub const POLL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);

/// How long a revocation poll waits for the marketplace.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// The name of the host's identity key (signs install receipts and ratings).
pub const IDENTITY_KEY: &str = "host-identity";

/// Largest package downloaded.
const MAX_PACKAGE_BYTES: usize = 256 << 20;

/// Most packages one install resolves (the plugin and its dependencies). A hostile index
/// could otherwise describe an endless chain.
const MAX_RESOLVED: usize = 64;

/// File names inside a mirror directory.
pub const MIRROR_INDEX: &str = "index.json";
pub const MIRROR_REVOCATIONS: &str = "revocations.json";
pub const MIRROR_PACKAGES: &str = "packages";

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
    /// How often its revocation list is fetched, in seconds [default: [`DEFAULT_POLL`]].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_secs: Option<u64>,
}

impl Marketplace {
    /// How often its revocation list is fetched.
    pub fn poll(&self) -> Duration {
        self.poll_secs.map_or(DEFAULT_POLL, Duration::from_secs)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Config {
    #[serde(default)]
    marketplaces: Vec<Marketplace>,
    /// Installed plugin id → the marketplace it was installed from (`plugin update`).
    #[serde(default)]
    installed_from: std::collections::BTreeMap<String, String>,
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

/// What `update` found for one plugin installed from a marketplace.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    pub id: String,
    pub marketplace: String,
    pub installed: String,
    /// The version installed now; `None` when the installed one is the newest.
    pub upgraded_to: Option<String>,
    /// What the upgrade admitted (its message says whether more capabilities are held
    /// for approval).
    pub admitted: Vec<Admitted>,
}

/// What `mirror` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Mirrored {
    pub marketplace: String,
    pub dir: PathBuf,
    pub index_version: u64,
    /// When the mirrored index expires: refresh the mirror before then.
    pub expires_at: u64,
    pub packages: usize,
    /// Packages downloaded now (the others were already in the mirror, digests checked).
    pub downloaded: usize,
    /// Packages no longer in the index, removed from the mirror.
    pub removed: usize,
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

/// Where a host keeps its marketplaces and what it installed from them.
fn config_path(host: &Host) -> PathBuf {
    host.paths().root.join("marketplaces.json")
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
        config_path(&self.host)
    }

    /// Whether this host has added any marketplace (its configuration file exists): lets
    /// a front end skip building a client before every run.
    pub fn has_marketplaces(host: &Host) -> bool {
        config_path(host).exists()
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

    /// An added marketplace by name; or a mirror directory (a path with an `index.json`),
    /// read as the added marketplace whose pinned key signed that index: its rollback
    /// state and revocations are shared with it, and nothing in the directory is trusted
    /// that the pinned key did not sign.
    fn marketplace(&self, name_or_dir: &str) -> Result<Marketplace> {
        let list = self.list()?;
        if let Some(m) = list.iter().find(|m| m.name == name_or_dir) {
            return Ok(m.clone());
        }
        let dir = std::path::Path::new(name_or_dir);
        if !dir.join(MIRROR_INDEX).is_file() {
            return Err(ClientError::NotFound(format!(
                "no marketplace `{name_or_dir}` (nor a mirror directory of that name); add it with `secflow marketplace add NAME URL --key FILE`"
            )));
        }
        let doc = read_signed(&dir.join(MIRROR_INDEX))?;
        let signers: Vec<&str> = doc.signatures.iter().map(|s| s.key_id.as_str()).collect();
        let mut found = list
            .into_iter()
            .find(|m| signers.contains(&m.key.key_id.as_str()))
            .ok_or_else(|| {
                ClientError::Refused(format!(
                    "mirror {}: its index is signed by {}, and no added marketplace has that key pinned; add the marketplace with its key first (`secflow marketplace add NAME file://DIR --key FILE`)",
                    dir.display(),
                    if signers.is_empty() { "no key".to_string() } else { signers.join(", ") }
                ))
            })?;
        let absolute = std::path::absolute(dir)
            .map_err(|e| ClientError::Invalid(format!("mirror {}: {e}", dir.display())))?;
        found.url = file_url(&absolute);
        Ok(found)
    }

    fn change(&self, name: &str, change: impl FnOnce(&mut Marketplace)) -> Result<()> {
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
        if !matches!(parsed.scheme(), "https" | "http" | "file") {
            return Err(ClientError::Invalid(format!(
                "`{url}`: a marketplace is reached over https (or http on a trusted network), or read from a mirror directory as file:///DIR"
            )));
        }
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| ClientError::Invalid(format!("`{url}` is not a local directory")))?;
            if !dir.join(MIRROR_INDEX).is_file() {
                return Err(ClientError::Invalid(format!(
                    "`{url}`: {} has no {MIRROR_INDEX}; write a mirror there first with `secflow marketplace mirror DIR`",
                    dir.display()
                )));
            }
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
            poll_secs: None,
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
        if let Some(dir) = mirror_dir(market) {
            return read_mirror(market, &dir, path, limit);
        }
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
    /// than the last version seen (which it then becomes). `name` may also be a mirror
    /// directory.
    pub async fn index(&self, name: &str) -> Result<Index> {
        let market = self.marketplace(name)?;
        Ok(self.index_of(&market).await?.0)
    }

    /// The verified index of `market`, with the signed document it came in.
    async fn index_of(&self, market: &Marketplace) -> Result<(Index, Vec<u8>)> {
        let name = &market.name;
        let bytes = self
            .get(
                market,
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
        self.change(name, |m| {
            m.index_version = Some(m.index_version.map_or(seen, |v| v.max(seen)));
        })?;
        Ok((index, bytes))
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
    /// from the marketplace (or mirror directory) `name`, with the dependencies it needs
    /// that are not installed (installed first, as new plugins). `select` limits the
    /// grant of the plugin itself to these capability labels (empty: what the approval
    /// covers).
    pub async fn install(
        &self,
        name: &str,
        spec: &str,
        mode: InstallMode,
        select: &[String],
        approver: &dyn Approver,
    ) -> Result<Installed> {
        let (id, range) = match spec.split_once('@') {
            Some((id, range)) => (id, range),
            None => (spec, "*"),
        };
        let market = self.marketplace(name)?;
        let (index, _) = self.index_of(&market).await?;
        let installed: BTreeMap<String, semver::Version> = self
            .host
            .list()
            .await?
            .into_iter()
            // Bundled plugins do not satisfy dependencies: the registry checks installed ones.
            .filter(|row| row.origin == secflow_host::Origin::Installed)
            .filter_map(|row| {
                let v = semver::Version::parse(&row.plugin.version).ok()?;
                Some((row.plugin.id, v))
            })
            .collect();
        let plan = plan(&index, &market.name, id, range, &installed)?;
        let mut downloaded = Vec::with_capacity(plan.len());
        for (pid, version) in &plan {
            downloaded.push(self.download(&market, pid, version).await?);
        }
        let root = downloaded
            .pop()
            .expect("a plan ends with the plugin asked for");
        let mut admitted = Vec::new();
        if !downloaded.is_empty() {
            // Dependencies are new plugins whatever `mode` says; the host orders them.
            admitted.extend(
                self.host
                    .install(
                        InstallRequest {
                            packages: downloaded,
                            mode: InstallMode::Install,
                            select: Vec::new(),
                            mounts: Vec::new(),
                            dev: false,
                            allow_rollback: false,
                        },
                        approver,
                    )
                    .await?,
            );
        }
        admitted.extend(
            self.host
                .install(
                    InstallRequest {
                        packages: vec![root],
                        mode,
                        select: select.to_vec(),
                        mounts: Vec::new(),
                        dev: false,
                        allow_rollback: false,
                    },
                    approver,
                )
                .await?,
        );
        let mut config = self.load()?;
        for (pid, _) in &plan {
            config
                .installed_from
                .insert(pid.clone(), market.name.clone());
        }
        self.save(&config)?;
        let mut receipt = Ok(true);
        for (pid, version) in &plan {
            let sent = self
                .send_receipt(&market, pid, &version.version, &version.sha256)
                .await
                .map_err(|e| e.to_string());
            if pid == id {
                receipt = sent;
            }
        }
        let root_version = plan.last().expect("a non-empty plan").1.version.clone();
        Ok(Installed {
            marketplace: market.name.clone(),
            id: id.to_string(),
            version: root_version,
            admitted,
            receipt,
        })
    }

    /// Downloads one version and checks it is the file the signed index names.
    async fn download(
        &self,
        market: &Marketplace,
        id: &str,
        version: &IndexVersion,
    ) -> Result<Package> {
        let bytes = self
            .get(
                market,
                &format!(
                    "/v1/market/plugins/{id}/versions/{}/package",
                    version.version
                ),
                MAX_PACKAGE_BYTES,
            )
            .await?;
        let got = secflow_io::sha256_hex(&bytes);
        if got != version.file_sha256 {
            return Err(ClientError::Refused(format!(
                "the download of {id} {} does not match the signed index (sha256 {got}, index {}): refused",
                version.version, version.file_sha256
            )));
        }
        Ok(Package {
            source: format!("marketplace {}: {id} {}", market.name, version.version),
            bytes,
            // The policies then require a marketplace countersignature (by default).
            from_marketplace: true,
        })
    }

    /// Upgrades plugins installed from a marketplace to the newest version its index
    /// offers (not yanked): `id`, or every one of them. Same grant rules as any upgrade:
    /// more capabilities wait for approval.
    pub async fn update(&self, id: Option<&str>, approver: &dyn Approver) -> Result<Vec<Updated>> {
        let config = self.load()?;
        let installed: BTreeMap<String, String> = self
            .host
            .list()
            .await?
            .into_iter()
            .filter(|row| row.origin == secflow_host::Origin::Installed)
            .map(|row| (row.plugin.id, row.plugin.version))
            .collect();
        let targets: Vec<(String, String)> = match id {
            Some(id) => {
                let market = config.installed_from.get(id).ok_or_else(|| {
                    ClientError::NotFound(format!(
                        "{id} was not installed from a marketplace; upgrade it from a file with `secflow plugin upgrade FILE`, or from a marketplace with `secflow plugin upgrade {id} --from NAME`"
                    ))
                })?;
                vec![(id.to_string(), market.clone())]
            }
            None => config
                .installed_from
                .iter()
                .map(|(i, m)| (i.clone(), m.clone()))
                .collect(),
        };
        let mut indexes: BTreeMap<String, Index> = BTreeMap::new();
        let mut out = Vec::new();
        for (pid, market_name) in targets {
            let Some(current) = installed.get(&pid) else {
                // Uninstalled since: forget where it came from.
                let mut config = self.load()?;
                config.installed_from.remove(&pid);
                self.save(&config)?;
                if id.is_some() {
                    return Err(ClientError::NotFound(format!("{pid} is not installed")));
                }
                continue;
            };
            if !indexes.contains_key(&market_name) {
                let index = self.index(&market_name).await?;
                indexes.insert(market_name.clone(), index);
            }
            let index = &indexes[&market_name];
            let newest = index
                .plugins
                .iter()
                .find(|p| p.id == pid)
                .and_then(|p| resolve(p, &semver::VersionReq::STAR, "*"))
                .map(|v| v.version.clone());
            let newer = newest.filter(|n| {
                match (semver::Version::parse(n), semver::Version::parse(current)) {
                    (Ok(n), Ok(c)) => n > c,
                    _ => false,
                }
            });
            let mut updated = Updated {
                id: pid.clone(),
                marketplace: market_name.clone(),
                installed: current.clone(),
                upgraded_to: None,
                admitted: Vec::new(),
            };
            if let Some(version) = newer {
                let done = self
                    .install(
                        &market_name,
                        &format!("{pid}@={version}"),
                        InstallMode::Upgrade,
                        &[],
                        approver,
                    )
                    .await?;
                updated.upgraded_to = Some(version);
                updated.admitted = done.admitted;
            }
            out.push(updated);
        }
        Ok(out)
    }

    /// Writes an air-gapped mirror of marketplace `name` into `dir`: its signed index,
    /// its signed revocation list and every package the index lists, each checked against
    /// the index before it is written (packages already there with the right digest are
    /// kept; packages no longer listed are removed). The index is written last, so an
    /// interrupted mirror still serves its previous index with the packages it names.
    pub async fn mirror(&self, name: &str, dir: &std::path::Path) -> Result<Mirrored> {
        let market = self.marketplace(name)?;
        if let Some(source) = mirror_dir(&market)
            && std::path::absolute(dir).ok().as_deref() == Some(source.as_path())
        {
            return Err(ClientError::Invalid(format!(
                "{} is the mirror marketplace {name} is read from",
                dir.display()
            )));
        }
        let (index, index_bytes) = self.index_of(&market).await?;
        let revocations = self.get(&market, "/v1/market/revocations", 8 << 20).await?;
        let revocations_text = String::from_utf8(revocations).map_err(|_| {
            ClientError::Refused(format!(
                "marketplace {name}: the revocation list is not text"
            ))
        })?;
        check_revocation_list(&market, &revocations_text)?;
        let packages_dir = dir.join(MIRROR_PACKAGES);
        std::fs::create_dir_all(&packages_dir).map_err(|e| {
            ClientError::Invalid(format!("cannot create {}: {e}", packages_dir.display()))
        })?;
        let mut wanted = std::collections::BTreeSet::new();
        let mut downloaded = 0;
        for plugin in &index.plugins {
            for version in &plugin.versions {
                let path = mirror_package_path(dir, &plugin.id, &version.version)?;
                wanted.insert(path.clone());
                let present = std::fs::read(&path)
                    .is_ok_and(|b| secflow_io::sha256_hex(&b) == version.file_sha256);
                if present {
                    continue;
                }
                let package = self.download(&market, &plugin.id, version).await?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        ClientError::Invalid(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                secflow_host::write_file(&path, &package.bytes, false)?;
                downloaded += 1;
            }
        }
        let removed = prune_mirror(&packages_dir, &wanted)?;
        secflow_host::write_file(
            &dir.join(MIRROR_REVOCATIONS),
            revocations_text.as_bytes(),
            false,
        )?;
        secflow_host::write_file(&dir.join(MIRROR_INDEX), &index_bytes, false)?;
        Ok(Mirrored {
            marketplace: market.name.clone(),
            dir: dir.to_path_buf(),
            index_version: index.version,
            expires_at: index.expires_at,
            packages: wanted.len(),
            downloaded,
            removed,
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
        answer(market, response).await
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

    /// Sets how often `name`'s revocation list is fetched (within [`POLL_RANGE`]). A
    /// revoke reaches this host within the interval plus the time to its next run.
    pub fn set_poll(&self, name: &str, poll: Duration) -> Result<Marketplace> {
        if !POLL_RANGE.contains(&poll) {
            return Err(ClientError::Invalid(format!(
                "a poll interval of {} s: use 1 s to 24 h",
                poll.as_secs()
            )));
        }
        let mut config = self.load()?;
        let market = config
            .marketplaces
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| ClientError::NotFound(format!("no marketplace `{name}`")))?;
        market.poll_secs = Some(poll.as_secs());
        let changed = market.clone();
        self.save(&config)?;
        Ok(changed)
    }

    /// The marketplace `id` was installed from, if it was.
    pub fn installed_from(&self, id: &str) -> Result<Option<String>> {
        Ok(self.load()?.installed_from.get(id).cloned())
    }

    /// Rates a plugin from this host (1 to 5 stars and a text), signed with the host's
    /// identity key. The marketplace takes it only from a host whose install receipt for
    /// the plugin it counted; a second rating replaces the first.
    pub async fn rate(
        &self,
        name: &str,
        id: &str,
        stars: u8,
        text: &str,
    ) -> Result<serde_json::Value> {
        if !(1..=5).contains(&stars) {
            return Err(ClientError::Invalid(format!("{stars} stars: rate 1 to 5")));
        }
        let market = self.marketplace(name)?;
        if mirror_dir(&market).is_some() {
            return Err(ClientError::Invalid(format!(
                "marketplace {name} is read from a mirror, which takes no ratings; rate on the marketplace itself"
            )));
        }
        let rating = HostSigned::sign(
            &Rating {
                kind: RATING_TYPE.into(),
                plugin_id: id.to_string(),
                stars,
                text: text.to_string(),
                issued_at: secflow_trust::now(),
            },
            &self.identity()?,
        );
        let response = self
            .post_signed(
                &market,
                &format!("/v1/market/plugins/{id}/ratings"),
                &rating,
            )
            .await?;
        answer(&market, response).await
    }

    /// Posts `body` to a version's `verb` route (`review`, `yank`, `revoke`) with a token.
    async fn post_version(
        &self,
        name: &str,
        id: &str,
        version: &str,
        verb: &str,
        body: &serde_json::Value,
        token: &str,
    ) -> Result<serde_json::Value> {
        let market = self.marketplace(name)?;
        let request = self
            .http
            .post(format!(
                "{}/v1/market/plugins/{id}/versions/{version}/{verb}",
                market.url
            ))
            .json(body);
        self.send_with_token(&market, request, token).await
    }

    /// Yanks (or with `yanked: false` un-yanks) a version: version ranges stop picking
    /// it; installed copies keep working (a publisher token for its own versions, or an
    /// admin token).
    pub async fn yank(
        &self,
        name: &str,
        id: &str,
        version: &str,
        yanked: bool,
        reason: &str,
        token: &str,
    ) -> Result<serde_json::Value> {
        let body = serde_json::json!({"yanked": yanked, "reason": reason});
        self.post_version(name, id, version, "yank", &body, token)
            .await
    }

    /// Revokes a version: its digest goes on the signed revocation list, and clients
    /// refuse to run it and quarantine it at their next poll (a reviewer or admin token).
    pub async fn revoke(
        &self,
        name: &str,
        id: &str,
        version: &str,
        reason: &str,
        token: &str,
    ) -> Result<serde_json::Value> {
        let body = serde_json::json!({"reason": reason});
        self.post_version(name, id, version, "revoke", &body, token)
            .await
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
        let body = serde_json::json!({
            "decision": if approve { "approve" } else { "reject" },
            "reason": reason,
        });
        self.post_version(name, id, version, "review", &body, token)
            .await
    }

    /// Posts a document signed with the host's identity key (a receipt, a rating): these
    /// routes take no token, the signature is the credential.
    async fn post_signed(
        &self,
        market: &Marketplace,
        path: &str,
        document: &HostSigned,
    ) -> Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", market.url))
            .json(document)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                name: market.name.clone(),
                message: e.to_string(),
            })
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
        if mirror_dir(market).is_some() {
            return Err(ClientError::Invalid(
                "installed from a mirror, which takes no install receipts".into(),
            ));
        }
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
            .post_signed(market, "/v1/market/installs", &receipt)
            .await?;
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
        check_revocation_list(&market, &text)?;
        let imported = self
            .host
            .change_trust(secflow_host::TrustChange::ImportSigned { text })
            .await?;
        let quarantined = self.host.quarantine_revoked().await?;
        let now = secflow_trust::now();
        self.change(name, |m| m.revocations_at = Some(now))?;
        Ok(Synced {
            marketplace: name.to_string(),
            imported,
            quarantined,
        })
    }

    /// Applies the revocation lists last polled longer than their marketplace's poll
    /// interval ago (`Some(ZERO)`: all of them now). A marketplace that cannot be reached is
    /// reported and tried again at the next interval: the lists applied before stay in
    /// force.
    pub async fn sync_due(&self, poll: Option<Duration>) -> Vec<Result<Synced>> {
        let now = secflow_trust::now();
        let due: Vec<String> = match self.list() {
            Ok(list) => list
                .into_iter()
                .filter(|m| {
                    let poll = poll.unwrap_or_else(|| m.poll());
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
            if let Err(e) = self.change(&name, |m| m.polled_at = Some(now)) {
                out.push(Err(e));
                continue;
            }
            out.push(self.sync(&name).await);
        }
        out
    }
}

/// The marketplace's JSON answer, or its problem as an error of the matching kind.
async fn answer(market: &Marketplace, response: reqwest::Response) -> Result<serde_json::Value> {
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

/// The install plan for `id@range`: the dependencies (transitively) that are not installed
/// in a matching version, each resolved in the same index, then the plugin itself (last).
/// A dependency installed in a version outside the range is an error that says what to do;
/// resolution is breadth-first and bounded by [`MAX_RESOLVED`].
fn plan<'a>(
    index: &'a Index,
    market: &str,
    id: &str,
    range: &str,
    installed: &BTreeMap<String, semver::Version>,
) -> Result<Vec<(String, &'a IndexVersion)>> {
    let find = |id: &str, range: &str| -> Result<&'a IndexVersion> {
        let req = semver::VersionReq::parse(range).map_err(|e| {
            ClientError::Invalid(format!("`{range}` (for {id}) is not a version range: {e}"))
        })?;
        let plugin =
            index.plugins.iter().find(|p| p.id == id).ok_or_else(|| {
                ClientError::NotFound(format!("marketplace {market} has no `{id}`"))
            })?;
        resolve(plugin, &req, range).ok_or_else(|| {
            // A yanked version the range would have picked is named, with how to get it.
            let yanked = plugin
                .versions
                .iter()
                .filter(|v| v.yanked)
                .filter_map(|v| Some((semver::Version::parse(&v.version).ok()?, v)))
                .filter(|(parsed, _)| req.matches(parsed))
                .max_by(|a, b| a.0.cmp(&b.0));
            ClientError::NotFound(match yanked {
                Some((_, v)) => format!(
                    "marketplace {market}: {id} {} matches `{range}` but is yanked; install it by exact version ({id}@={}) if you must",
                    v.version, v.version
                ),
                None => format!("marketplace {market} has no version of {id} matching `{range}`"),
            })
        })
    };
    let root = find(id, range)?;
    let mut chosen: Vec<(String, &'a IndexVersion)> = Vec::new();
    let mut queue: std::collections::VecDeque<(String, String, String)> = root
        .dependencies
        .iter()
        .map(|(d, r)| (id.to_string(), d.clone(), r.clone()))
        .collect();
    while let Some((needed_by, dep, range)) = queue.pop_front() {
        let req = semver::VersionReq::parse(&range).map_err(|e| {
            ClientError::Refused(format!(
                "marketplace {market}: {needed_by} names `{range}` for {dep}, not a version range: {e}"
            ))
        })?;
        if dep == id {
            continue; // a cycle back to the plugin: the host names it
        }
        if let Some(have) = installed.get(&dep) {
            if req.matches(have) {
                continue;
            }
            return Err(ClientError::Invalid(format!(
                "{needed_by} needs {dep} {range}, but {dep} {have} is installed; upgrade it first (`secflow plugin upgrade {dep}@{range} --from {market}`)"
            )));
        }
        if let Some((_, v)) = chosen.iter().find(|(c, _)| *c == dep) {
            let matches = semver::Version::parse(&v.version).is_ok_and(|v| req.matches(&v));
            if !matches {
                return Err(ClientError::Invalid(format!(
                    "{needed_by} needs {dep} {range}, but another dependency needs {dep} {}; no single version fits both",
                    v.version
                )));
            }
            continue;
        }
        if chosen.len() + 1 >= MAX_RESOLVED {
            return Err(ClientError::Refused(format!(
                "marketplace {market}: {id} needs more than {MAX_RESOLVED} plugins; refused"
            )));
        }
        let version = find(&dep, &range)?;
        queue.extend(
            version
                .dependencies
                .iter()
                .map(|(d, r)| (dep.clone(), d.clone(), r.clone())),
        );
        chosen.push((dep, version));
    }
    chosen.push((id.to_string(), root));
    Ok(chosen)
}

/// A revocation list from `market` is accepted only when it is a revocation list (the
/// trust store's import path also takes key rotations, and a marketplace must not rotate
/// its own pin away) signed by the pinned key; the trust store then checks the signature
/// and that a marketplace key revokes package digests only.
fn check_revocation_list(market: &Marketplace, text: &str) -> Result<()> {
    let name = &market.name;
    let signed: secflow_trust::lists::Signed = serde_json::from_str(text).map_err(|e| {
        ClientError::Refused(format!("marketplace {name}: the revocation list: {e}"))
    })?;
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
    Ok(())
}

fn read_signed(path: &Path) -> Result<SignedDocument> {
    let bytes = std::fs::read(path)
        .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() > secflow_market::documents::MAX_INDEX_BYTES + 4096 {
        return Err(ClientError::Refused(format!(
            "{} is larger than an index may be",
            path.display()
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Refused(format!("{}: not a signed index: {e}", path.display())))
}

fn file_url(dir: &Path) -> String {
    reqwest::Url::from_directory_path(dir)
        .map(|u| u.to_string().trim_end_matches('/').to_string())
        .unwrap_or_else(|()| format!("file://{}", dir.display()))
}

/// The directory of a marketplace read from a mirror (`file://` URL).
fn mirror_dir(market: &Marketplace) -> Option<PathBuf> {
    let url = reqwest::Url::parse(&market.url).ok()?;
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

/// A path segment taken from the (signed) index, checked before it names a file: no
/// separators, no `..`, nothing hidden.
fn plain_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'+' | b'_'))
}

fn mirror_package_path(dir: &Path, id: &str, version: &str) -> Result<PathBuf> {
    if !plain_segment(id) || !plain_segment(version) {
        return Err(ClientError::Refused(format!(
            "the index names `{}` `{}`, which cannot be a file name in a mirror",
            id.escape_debug(),
            version.escape_debug()
        )));
    }
    Ok(dir
        .join(MIRROR_PACKAGES)
        .join(id)
        .join(format!("{version}.sfpkg")))
}

/// Serves the marketplace routes the client uses from a mirror directory.
fn read_mirror(market: &Marketplace, dir: &Path, path: &str, limit: usize) -> Result<Vec<u8>> {
    let file = match path {
        "/v1/market/index" => dir.join(MIRROR_INDEX),
        "/v1/market/revocations" => dir.join(MIRROR_REVOCATIONS),
        _ => {
            let rest = path
                .strip_prefix("/v1/market/plugins/")
                .and_then(|r| r.strip_suffix("/package"))
                .and_then(|r| r.split_once("/versions/"));
            match rest {
                Some((id, version)) => mirror_package_path(dir, id, version)?,
                None => {
                    return Err(ClientError::NotFound(format!(
                        "mirror {}: {path} is not served from a mirror",
                        market.name
                    )));
                }
            }
        }
    };
    let meta = std::fs::metadata(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ClientError::NotFound(format!(
            "mirror {} ({}): {} is missing; refresh the mirror with `secflow marketplace mirror DIR`",
            market.name,
            dir.display(),
            file.display()
        )),
        _ => ClientError::Unreachable {
            name: market.name.clone(),
            message: format!("{}: {e}", file.display()),
        },
    })?;
    if meta.len() > limit as u64 {
        return Err(ClientError::Refused(format!(
            "mirror {}: {} is larger than {limit} bytes",
            market.name,
            file.display()
        )));
    }
    std::fs::read(&file).map_err(|e| ClientError::Unreachable {
        name: market.name.clone(),
        message: format!("{}: {e}", file.display()),
    })
}

/// Removes `*.sfpkg` files under `packages` that are not `wanted`, and directories left
/// empty. Returns how many packages were removed.
fn prune_mirror(packages: &Path, wanted: &std::collections::BTreeSet<PathBuf>) -> Result<usize> {
    let io = |e: std::io::Error| ClientError::Invalid(format!("{}: {e}", packages.display()));
    let mut removed = 0;
    for entry in std::fs::read_dir(packages).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !entry.file_type().map_err(io)?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(entry.path()).map_err(io)? {
            let path = file.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "sfpkg") && !wanted.contains(&path) {
                std::fs::remove_file(&path).map_err(io)?;
                removed += 1;
            }
        }
        // Only succeeds when empty.
        let _ = std::fs::remove_dir(entry.path());
    }
    Ok(removed)
}

//! `secflow-host`: the one application layer between SecFlow's front ends (the CLI, and
//! the server, proxy and workers that build on it) and the domain crates.
//!
//! Every security decision lives here once: install admission (verification, policy,
//! approval through an [`Approver`]), run clearance ([`Host::clear`]), plugin selection for
//! a scan ([`Host::scan`]), and the single after-run path ([`Host::after_run`]: statistics,
//! violations, quarantine, audit) that `run`, `scan` and every later front end share. Front
//! ends parse, ask and print; they never repeat a decision.
//!
//! A [`Host`] is opened once from the state directory and is cheap to clone and share
//! across threads and tasks. Operations are `async`; [`Host::block_on`] runs one on the
//! host's own tokio runtime for synchronous callers. Every operation records its audit
//! events before it returns, and fails if they cannot be recorded.

mod admission;
mod api;
mod audit;
mod bundled;
mod call;
mod clearance;
mod error;
mod keys;
mod lifecycle;
mod paths;
mod policy;
mod policy_cache;
mod proxy;
mod queries;
mod run;
mod scan;
mod security;
mod trust;

pub use admission::{
    AdmitOutcome, Admitted, Answer, ApprovalRequest, Approver, InstallMode, InstallRequest,
    Package, Purpose,
};
pub use api::{ApiResource, Identity, NewToken, Refusal, ScanJobChange, TokenInfo};
pub use audit::{Integrity, LastEvent, Summary as AuditSummary};
pub use bundled::{BundledPlugin, bundled, bundled_plugin};
pub use call::{CallRequest, build_call};
pub use clearance::{Cleared, Origin};
pub use error::{ErrorKind, HostError, Remedy, Result};
pub use paths::StateDir;
pub use policy::{Explanation, PolicyCheck};
pub use proxy::{
    FailureMode, FilterDecision, FilterMode, SECURITY_MARK, check_filter, check_tighter,
    is_security_filter,
};
pub use queries::{Permissions, PluginInfo, PluginListing};
pub use run::{AfterRun, Failure, RunOutcome};
pub use scan::{PluginConfigs, RULES_PLUGIN, ScanOutcome, ScanRequest};
pub use security::{MAX_RECENT, SecurityOverview};
pub use trust::{TrustChange, Verdict};

/// Types of the domain crates that appear in host operations' inputs and results, so a
/// front end depends on this crate alone.
pub mod types {
    pub use secflow_audit::{
        Action as AuditAction, Checkpoint, Entry, Event, Filter as AuditFilter, PluginRef,
        VerifyReport,
    };
    pub use secflow_policy::{Action as PolicyAction, PluginFacts, PolicyDecision, PolicyProblem};
    pub use secflow_registry::admission::Signer;
    pub use secflow_registry::grants::{Ask, Grant};
    pub use secflow_registry::{
        Health, InstalledPlugin, PluginUsage, RunStats, SearchQuery, VersionRecord,
    };
    pub use secflow_trust::store::TrustedKey;
    pub use secflow_trust::{
        PublicKeyFile, Revocation, RevokedItem, Role, SignatureStatus, TrustStore, Verification,
    };
}

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Where a host keeps its state and who acts through it.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub state_dir: StateDir,
    /// Who the audit log says acted: `cli:alice`, `api:token-3`.
    pub actor: String,
}

/// An open SecFlow host. Clones share everything; [`Host::acting_as`] gives a clone that
/// records another actor (the server opens one host and acts as each request's token).
#[derive(Debug, Clone)]
pub struct Host {
    inner: Arc<Inner>,
    actor: Arc<str>,
}

#[derive(Debug)]
struct Inner {
    paths: StateDir,
    /// The sandbox, created on first use (it needs the host key for its compile cache).
    runtime: Mutex<Option<secflow_runtime::Runtime>>,
    /// The audit log, opened on first write or read.
    audit: tokio::sync::OnceCell<secflow_audit::AuditLog>,
    /// Serializes read-modify-write of the trust store within this process.
    trust: tokio::sync::Mutex<()>,
    /// The host's tokio runtime, for synchronous callers.
    executor: OnceLock<tokio::runtime::Runtime>,
    /// API tokens, opened on first use.
    tokens: tokio::sync::OnceCell<secflow_tokens::TokenStore>,
    /// The API policies, reloaded when their files change.
    api_policy: policy_cache::PolicyCache<secflow_policy::api::ApiPolicy>,
    /// The admission policies, reloaded when their files change.
    admission_policy: policy_cache::PolicyCache<secflow_policy::PolicyEngine>,
    /// Open registry connections, reused (opening one and checking the schema costs more
    /// than most queries).
    registries: Mutex<Vec<secflow_registry::Registry>>,
    /// At most [`REGISTRY_POOL`] connections in use at once: a busy server waits for one
    /// instead of opening (and closing) connections by the dozen.
    registry_permits: Arc<tokio::sync::Semaphore>,
    /// The writer of run statistics, opened on the first run of an installed plugin.
    runs: tokio::sync::OnceCell<secflow_registry::RunLog>,
    /// What run clearance established, reused while nothing it depends on changed.
    clearances: clearance::ClearanceCache,
    /// Audit batches queued but not yet committed ([`Host::invoke_live`]): at most
    /// [`AUDIT_BACKLOG`], so a writer that falls behind slows its callers down instead of
    /// letting the queue grow.
    audit_backlog: Arc<tokio::sync::Semaphore>,
    /// A queued batch failed to commit: every later record fails too, so nothing goes on
    /// unrecorded once the log stopped taking entries.
    audit_failed: std::sync::atomic::AtomicBool,
}

impl Host {
    /// Opens the host of a state directory. Nothing is created until an operation needs it.
    pub fn open(config: HostConfig) -> Host {
        Host {
            actor: config.actor.into(),
            inner: Arc::new(Inner {
                paths: config.state_dir,
                runtime: Mutex::new(None),
                audit: tokio::sync::OnceCell::new(),
                trust: tokio::sync::Mutex::new(()),
                executor: OnceLock::new(),
                tokens: tokio::sync::OnceCell::new(),
                api_policy: Default::default(),
                admission_policy: Default::default(),
                registries: Mutex::new(Vec::new()),
                registry_permits: Arc::new(tokio::sync::Semaphore::new(REGISTRY_POOL)),
                runs: tokio::sync::OnceCell::new(),
                clearances: Default::default(),
                audit_backlog: Arc::new(tokio::sync::Semaphore::new(AUDIT_BACKLOG as usize)),
                audit_failed: Default::default(),
            }),
        }
    }

    pub fn paths(&self) -> &StateDir {
        &self.inner.paths
    }

    /// Who the audit log and the policies see acting through this handle.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The same host (state, sandbox, audit log) acting as someone else: `api:tok_3f2a`.
    pub fn acting_as(&self, actor: &str) -> Host {
        Host {
            inner: self.inner.clone(),
            actor: actor.into(),
        }
    }

    /// Runs `future` to completion on the host's runtime (multi-threaded, one worker per
    /// core). For synchronous front ends; never call it from inside an async task.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.inner
            .executor
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime starts")
            })
            .block_on(future)
    }

    /// The sandbox. Its compile cache is authenticated with a key derived from the host
    /// key, which never enters the cache directory.
    pub fn runtime(&self) -> Result<secflow_runtime::Runtime> {
        let mut slot = self.inner.runtime.lock().expect("runtime lock");
        if let Some(runtime) = slot.as_ref() {
            return Ok(runtime.clone());
        }
        let config = secflow_runtime::RuntimeConfig {
            cache_dir: Some(self.paths().component_cache()),
            cache_key: Some(audit::cache_key(self.paths())?),
            kv_dir: Some(self.paths().kv()),
            ..Default::default()
        };
        let runtime = secflow_runtime::Runtime::new(config)
            .map_err(|e| HostError::internal(format!("cannot start the sandbox: {e:#}")))?;
        *slot = Some(runtime.clone());
        Ok(runtime)
    }

    /// The admission policies (the shipped defaults until the state directory has its own),
    /// as they are on disk for every operation: a long-running host (`sync --watch`, the
    /// server) judges with the policies as they are now, and a broken edit denies from then
    /// on. Parsed once and parsed again when a file in the directory changes.
    pub fn policy(&self) -> Result<Arc<secflow_policy::PolicyEngine>> {
        self.inner
            .admission_policy
            .get(&self.paths().policy(), |dir| {
                secflow_policy::PolicyEngine::load(dir)
                    .map_err(|e| HostError::invalid(e.to_string()))
            })
    }

    /// A registry connection (creating the registry when something is to be stored):
    /// an open one from the pool, or a new one. It goes back to the pool when dropped.
    async fn registry(&self) -> Result<PooledRegistry<'_>> {
        let permit = self
            .inner
            .registry_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HostError::internal("the registry pool is closed"))?;
        let pooled = self.inner.registries.lock().expect("registry pool").pop();
        let idle = match pooled {
            Some(mut registry) => registry.is_idle().await.then_some(registry),
            None => None,
        };
        let registry = match idle {
            Some(registry) => registry,
            None => secflow_registry::Registry::open(&self.paths().root)
                .await
                .map_err(|e| {
                    HostError::internal(format!(
                        "cannot open the registry in {}: {e}",
                        self.paths().root.display()
                    ))
                })?,
        };
        Ok(PooledRegistry {
            registry: Some(registry),
            pool: &self.inner.registries,
            _permit: permit,
        })
    }

    /// The writer of run statistics (one commit for the runs that finish together).
    async fn run_log(&self) -> Result<&secflow_registry::RunLog> {
        self.inner
            .runs
            .get_or_try_init(|| async {
                secflow_registry::RunLog::open(&self.paths().root)
                    .await
                    .map_err(|e| {
                        HostError::internal(format!(
                            "cannot open the registry in {}: {e}",
                            self.paths().root.display()
                        ))
                    })
            })
            .await
    }

    /// Commits the statistics of the runs made through this host so far (a clean run's are
    /// queued, not waited for). Readers of statistics call it first; a front end calls it
    /// before it exits.
    pub async fn flush(&self) -> Result<()> {
        if let Some(runs) = self.inner.runs.get() {
            runs.flush().await?;
        }
        self.flush_audit().await
    }

    /// [`Host::flush`] for synchronous front ends, before they exit: a no-op (no runtime
    /// started) when no run was made.
    pub fn flush_blocking(&self) -> Result<()> {
        match self.inner.runs.initialized() {
            true => self.block_on(self.flush()),
            false => Ok(()),
        }
    }

    /// Whether anything was ever installed (a registry exists).
    fn has_registry(&self) -> bool {
        self.paths().registry_db().exists()
    }

    fn load_trust_store(&self) -> Result<secflow_trust::TrustStore> {
        Ok(secflow_trust::TrustStore::load(
            &self.paths().trust_store(),
        )?)
    }

    fn save_trust_store(&self, store: &secflow_trust::TrustStore) -> Result<()> {
        Ok(store.save(&self.paths().trust_store())?)
    }

    /// Reads a plugin directory: its manifest and component bytes.
    pub fn read_plugin_dir(
        &self,
        dir: &std::path::Path,
    ) -> Result<(secflow_manifest::Manifest, Vec<u8>)> {
        read_plugin_dir(dir)
    }
}

/// Registry connections kept open between operations, and in use at once at most.
const REGISTRY_POOL: usize = 8;

/// Most audit batches queued and not yet committed (see [`Host::invoke_live`]).
const AUDIT_BACKLOG: u32 = 4096;

/// A registry connection borrowed from the host's pool.
struct PooledRegistry<'a> {
    registry: Option<secflow_registry::Registry>,
    pool: &'a Mutex<Vec<secflow_registry::Registry>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledRegistry<'_> {
    type Target = secflow_registry::Registry;
    fn deref(&self) -> &Self::Target {
        self.registry.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for PooledRegistry<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.registry.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledRegistry<'_> {
    fn drop(&mut self) {
        // One left in a transaction by a cancelled operation is checked when taken out.
        if let (Some(registry), Ok(mut pool)) = (self.registry.take(), self.pool.lock())
            && pool.len() < REGISTRY_POOL
        {
            pool.push(registry);
        }
    }
}

/// Reads and validates the manifest of a plugin directory.
pub fn read_manifest(dir: &std::path::Path) -> Result<secflow_manifest::Manifest> {
    let path = secflow_manifest::find_manifest(dir).ok_or_else(|| {
        HostError::invalid(format!(
            "no plugin.toml or plugin.yaml in {}",
            dir.display()
        ))
        .with_remedy(Remedy::CreateManifest)
    })?;
    secflow_manifest::Manifest::from_file(&path).map_err(|e| HostError::invalid(e.to_string()))
}

/// Reads a plugin directory: its manifest and component bytes.
pub fn read_plugin_dir(dir: &std::path::Path) -> Result<(secflow_manifest::Manifest, Vec<u8>)> {
    let manifest = read_manifest(dir)?;
    let component: PathBuf = dir.join(&manifest.component);
    let wasm = std::fs::read(&component).map_err(|e| {
        HostError::invalid(format!(
            "cannot read the component {}: {e}",
            component.display()
        ))
        .with_remedy(Remedy::Build {
            dir: dir.to_path_buf(),
        })
    })?;
    Ok((manifest, wasm))
}

/// Writes a report, package, key or checkpoint: durable, 0644 (or 0600 for secrets), and
/// never replacing what is not a regular file (`/dev/null` stays a device).
pub fn write_file(path: &std::path::Path, bytes: &[u8], private: bool) -> Result<()> {
    let mode = if private {
        secflow_io::Mode::Private
    } else {
        secflow_io::Mode::Shared
    };
    secflow_io::write_output(path, bytes, mode)
        .map_err(|e| HostError::invalid(format!("cannot write {}: {e}", path.display())))
}

/// The time now, RFC 3339 to the second.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

//! Run clearance: what every front end checks before a plugin runs, in one place. An
//! installed plugin must be enabled and approved, its blob intact, its signatures still
//! valid against today's trust store with one of the grant's signers among them, the grant
//! bound to this exact package, and the policies must allow `run`. A bundled plugin must
//! match the digest its build pinned. A `--dev` plugin is the developer's own and runs with
//! what it declares, in a key-value store of its own.

use crate::audit::plugin_ref;
use crate::{Host, HostError, Remedy, Result};
use secflow_audit::{Action as AuditAction, Event};
use secflow_io::FileStamp;
use secflow_manifest::Manifest;
use secflow_registry::Registry;
use secflow_registry::admission::{self, Question};
use secflow_registry::blobs::BlobStore;
use secflow_registry::grants::Grant;
use secflow_registry::{InstalledPlugin, VersionRecord};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Embedded in the binary.
    Bundled,
    /// A plugin directory given on the command line.
    Dev,
    /// From the registry.
    Installed,
    /// A package on trial (the marketplace's vetting): run with nothing granted, under the
    /// limits the trial sets, never installed.
    Trial,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Bundled => "bundled",
            Origin::Dev => "dev",
            Origin::Installed => "installed",
            Origin::Trial => "trial",
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that width and alignment (`{:<10}`) apply.
        f.pad(self.as_str())
    }
}

/// A plugin cleared to run.
#[derive(Debug, Clone)]
pub struct Cleared {
    pub origin: Origin,
    /// The manifest of the verified package (or the bundled / dev manifest). Shared by the
    /// clones of a cached clearance: one is taken for every filter call of the proxy.
    pub manifest: Arc<Manifest>,
    pub component: bytes::Bytes,
    pub version: String,
    /// The package payload digest for installed plugins; the component digest otherwise.
    pub digest: String,
    installed: Option<Installed>,
    /// The plugin loaded with these grants, shared by the runs of one clearance (clones of
    /// a cached clearance share it): loading again would give the same sandbox.
    pub(crate) loaded: LoadedSlot,
}

/// A plugin loaded once for a clearance (with no extra mounts).
pub(crate) type LoadedSlot = Arc<tokio::sync::OnceCell<Arc<secflow_runtime::Plugin>>>;

/// What clearance established for an installed plugin.
#[derive(Debug, Clone)]
struct Installed {
    grant: Grant,
    /// The `run` question the policies allowed, asked again after a violation.
    question: Question,
    /// The policies that allowed the run (recorded with each run it clears).
    policies: Vec<String>,
}

impl Cleared {
    pub fn id(&self) -> &str {
        self.manifest.id.as_str()
    }

    /// A bundled plugin. Its bytes are checked against the pinned digest when it is
    /// loaded ([`Host::load`]), so one that is never selected cannot stop anything.
    pub fn bundled(plugin: &crate::BundledPlugin) -> Cleared {
        Cleared {
            origin: Origin::Bundled,
            version: plugin.manifest.version.to_string(),
            digest: plugin.sha256.to_string(),
            manifest: plugin.manifest.clone(),
            component: bytes::Bytes::from_static(plugin.component),
            installed: None,
            loaded: Default::default(),
        }
    }

    /// A plugin from its source directory, run with what it declares.
    pub fn dev(manifest: Manifest, component: Vec<u8>) -> Cleared {
        Cleared {
            origin: Origin::Dev,
            version: manifest.version.to_string(),
            digest: secflow_io::sha256_hex(&component),
            manifest: Arc::new(manifest),
            component: component.into(),
            installed: None,
            loaded: Default::default(),
        }
    }

    /// A package on trial: `manifest` (with the limits the trial imposes) and its
    /// component, from the package whose payload digest is `digest`. It runs with no
    /// capability at all, whatever it declares.
    pub fn trial(manifest: Manifest, component: Vec<u8>, digest: &str) -> Cleared {
        Cleared {
            origin: Origin::Trial,
            version: manifest.version.to_string(),
            digest: digest.to_string(),
            manifest: Arc::new(manifest),
            component: component.into(),
            installed: None,
            loaded: Default::default(),
        }
    }

    /// The stored grant, for installed plugins.
    pub fn grant(&self) -> Option<&Grant> {
        self.installed.as_ref().map(|i| &i.grant)
    }

    /// The runtime grants. An installed plugin gets its stored grant's capabilities, granted
    /// directories bound where the grant says or where `extra` re-binds them (granted
    /// directories only), and the key-value store of its verified identity (id + signers),
    /// never of whatever claims its id. Bundled and dev plugins get what they declare, each
    /// in a store of its own.
    pub fn grants(&self, extra: &[(String, PathBuf)]) -> Result<secflow_runtime::Grants> {
        let id = self.id();
        if self.origin == Origin::Trial {
            return Ok(secflow_runtime::Grants::none());
        }
        let Some(installed) = &self.installed else {
            // A bundled plugin reads only directories the user bound to it: none of its
            // declared paths is taken from the host's file system by default.
            if self.origin == Origin::Bundled
                && let Some(missing) = self.manifest.capabilities.filesystem.iter().find(|f| {
                    !extra.iter().any(|(guest, _)| {
                        secflow_manifest::normalize_guest_path(guest).ok() == Some(f.guest_path())
                    })
                })
            {
                return Err(HostError::invalid(format!(
                    "{id} reads {}: bind it to a host directory (mount {}=DIR)",
                    missing.guest_path(),
                    missing.guest_path()
                )));
            }
            let grants = secflow_runtime::Grants::all_declared(&self.manifest, extra)
                .map_err(|e| HostError::invalid(format!("{id}: {e}")))?;
            return Ok(match self.origin {
                Origin::Bundled => {
                    grants.with_kv_namespace(secflow_runtime::KvNamespace::bundled(id))
                }
                _ => grants,
            });
        };
        let grant = &installed.grant;
        let mut mounts: Vec<(String, PathBuf)> = grant
            .mounts
            .iter()
            .map(|(g, h)| (g.clone(), h.clone()))
            .collect();
        for (guest, host) in extra {
            let guest = secflow_manifest::normalize_guest_path(guest)
                .map_err(|e| HostError::invalid(format!("mount {guest}: {e}")))?;
            if !grant
                .capabilities
                .filesystem
                .iter()
                .any(|f| f.guest_path() == guest)
            {
                return Err(HostError::invalid(format!(
                    "mount {guest}: {id} is not granted that directory"
                )));
            }
            mounts.retain(|(g, _)| g != &guest);
            mounts.push((guest, host.clone()));
        }
        let mut granted = (*self.manifest).clone();
        granted.capabilities = grant.capabilities.clone();
        let namespace = secflow_runtime::KvNamespace::installed(id, &grant.signers);
        Ok(secflow_runtime::Grants::all_declared(&granted, &mounts)
            .map_err(HostError::invalid)?
            .with_kv_namespace(namespace))
    }

    pub(crate) fn question(&self) -> Option<&Question> {
        self.installed.as_ref().map(|i| &i.question)
    }

    /// The policies that allowed an installed plugin's run.
    pub(crate) fn cleared_by(&self) -> Option<&[String]> {
        self.installed.as_ref().map(|i| i.policies.as_slice())
    }
}

impl Host {
    /// Clears the plugin `id` to run: the installed plugin of that id (an installed
    /// version replaces a bundled one, as in a scan), else the bundled one. Records the
    /// audit events of the checks.
    pub async fn clear(&self, id: &str) -> Result<Cleared> {
        // Taken before anything is read: a change after it shows in the next stamp. It also
        // says whether anything was ever installed (a registry file exists).
        let stamp = RegistryStamp::of(self.paths());
        if stamp.exists() {
            if let Some(cleared) = self.unchanged_clearance(id, &stamp)? {
                return Ok(cleared);
            }
            let mut events = Vec::new();
            let result = async {
                // The connection goes back to the pool before the clearance (which may
                // wait for another request's identical one).
                let (snapshot, blobs) = {
                    let mut registry = self.registry().await?;
                    match registry.snapshot(id).await {
                        Err(secflow_registry::RegistryError::NotInstalled(_)) => {
                            return Ok(None);
                        }
                        Err(e) => return Err(e.into()),
                        Ok(snapshot) => (snapshot, registry.blobs()),
                    }
                };
                // The policies only for an installed plugin: a bundled one runs without them.
                let engine = self.policy()?;
                self.clear_snapshot(&blobs, &engine, snapshot, stamp, &mut events)
                    .await
                    .map(Some)
            }
            .await;
            if let Some(cleared) = self.record_then(events, result).await? {
                return Ok(cleared);
            }
        }
        match crate::bundled_plugin(id)? {
            Some(plugin) => Ok(Cleared::bundled(&plugin)),
            None => Err(HostError::new(
                crate::ErrorKind::NotFound,
                format!("no plugin `{id}` is bundled or installed"),
            )),
        }
    }

    /// Clears an installed plugin, or says why not. Pushes the audit events of the checks.
    pub(crate) async fn clear_installed(
        &self,
        registry: &mut Registry,
        engine: &Arc<secflow_policy::PolicyEngine>,
        id: &str,
        events: &mut Vec<Event>,
    ) -> Result<Cleared> {
        // Plugin, active version and grant from one consistent read.
        let stamp = RegistryStamp::of(self.paths());
        let snapshot = registry.snapshot(id).await?;
        self.clear_snapshot(&registry.blobs(), engine, snapshot, stamp, events)
            .await
    }

    /// The cached clearance of `id` when the registry file has not changed since it was
    /// read (and the trust store, the policies and the time bound still hold): no registry
    /// read at all. Never waits: a clearance being made goes the long way.
    fn unchanged_clearance(&self, id: &str, stamp: &RegistryStamp) -> Result<Option<Cleared>> {
        let slot = self
            .inner
            .clearances
            .slot(&ClearanceCache::key(self.actor(), id));
        let Ok(cached) = slot.try_lock() else {
            return Ok(None);
        };
        let Some(entry) = cached.as_ref() else {
            return Ok(None);
        };
        if !entry.registry.settled() || entry.registry != *stamp {
            return Ok(None);
        }
        let trust = FileStamp::of(&self.paths().trust_store());
        let engine = self.policy()?;
        let fresh = entry.at.elapsed() < CLEARANCE_TTL
            && entry.trust == trust
            && Arc::ptr_eq(&entry.policy, &engine);
        if fresh {
            self.inner
                .clearances
                .unread
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(fresh.then(|| entry.cleared.clone()))
    }

    /// How many runs this host cleared from its cache without reading the registry (the
    /// registry file unchanged since the clearance was made). For tests and figures.
    pub fn clearances_without_registry_read(&self) -> u64 {
        self.inner
            .clearances
            .unread
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Clears an installed plugin from a snapshot of its registry state: from the cache
    /// when nothing the clearance depends on has changed, else by checking everything.
    /// Requests for the same clearance wait for the one making it (a server's first runs,
    /// or the runs after the reuse bound, would otherwise each verify and load the plugin).
    async fn clear_snapshot(
        &self,
        blobs: &BlobStore,
        engine: &Arc<secflow_policy::PolicyEngine>,
        snapshot: (InstalledPlugin, VersionRecord, Grant),
        registry: RegistryStamp,
        events: &mut Vec<Event>,
    ) -> Result<Cleared> {
        let trust = FileStamp::of(&self.paths().trust_store());
        let slot = self
            .inner
            .clearances
            .slot(&ClearanceCache::key(self.actor(), &snapshot.0.id));
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_mut()
            && entry.still_valid(&snapshot, &trust, engine)
        {
            // The registry row is as it was: the new stamp stands for it from now on.
            entry.registry = registry;
            return Ok(entry.cleared.clone());
        }
        *cached = None;
        let state = (
            snapshot.0.clone(),
            snapshot.1.digest.clone(),
            snapshot.2.clone(),
        );
        let cleared = self.clear_checked(blobs, engine, snapshot, events).await?;
        *cached = Some(CachedClearance {
            at: Instant::now(),
            registry,
            state,
            trust,
            policy: engine.clone(),
            cleared: cleared.clone(),
        });
        Ok(cleared)
    }

    /// Every check of run clearance, against the stored package and today's trust store.
    async fn clear_checked(
        &self,
        blobs: &BlobStore,
        engine: &secflow_policy::PolicyEngine,
        (plugin, record, grant): (InstalledPlugin, VersionRecord, Grant),
        events: &mut Vec<Event>,
    ) -> Result<Cleared> {
        let id = plugin.id.as_str();
        if plugin.pending_approval || grant.pending {
            return Err(HostError::refused(format!(
                "{id} {} asks for capabilities that are not approved yet",
                plugin.version
            ))
            .with_remedy(Remedy::ReviewHeldGrant { id: id.into() }));
        }
        if !plugin.enabled {
            return Err(HostError::refused(format!("{id} is disabled"))
                .with_remedy(Remedy::Enable { id: id.into() }));
        }
        let pref = plugin_ref(id, &record.version, &record.digest);
        // The stored bytes, checked against their blob name and the installed digest.
        let bytes = secflow_registry::package_in(blobs, &record)?;

        // Trust may have changed since the install (a revoked key, a revoked digest): verify
        // again. Rollback protection was the install's job.
        let verified = {
            let _trust = self.inner.trust.lock().await;
            let mut store = self.load_trust_store()?;
            admission::verify_package(&bytes, &mut store, secflow_trust::now(), grant.dev, true)
        };
        let verified = match verified {
            Ok(v) => v,
            Err(refused) => {
                events.push(Event {
                    details: serde_json::json!({ "at": "run" }),
                    ..self.event(
                        AuditAction::SignatureVerify,
                        pref,
                        "refused",
                        refused.to_string(),
                    )
                });
                return Err(HostError::refused(format!(
                    "{id} {}: no longer trusted: {refused}",
                    record.version
                )));
            }
        };
        let manifest = verified.package.manifest.clone();
        // The grant is bound to this exact package and to a signer who still verifies.
        let signer_ok = if grant.signers.is_empty() {
            grant.dev
        } else {
            verified
                .signers
                .iter()
                .any(|s| grant.signers.contains(&s.key_id))
        };
        if grant.plugin_id != id
            || grant.version != record.version
            || grant.digest != record.digest
            || verified.digest != record.digest
            || manifest.id.as_str() != id
            || manifest.version.to_string() != record.version
            || !signer_ok
        {
            return Err(HostError::refused(format!(
                "{id} {}: the grant does not match the stored package (id, version, digest or signer)",
                record.version
            ))
            .with_remedy(Remedy::Reinstall));
        }

        let facts = admission::facts(
            &manifest,
            Some(&grant.capabilities),
            &verified.signers,
            plugin.violations,
            plugin.quarantined,
        );
        let question = Question {
            principal: self.actor().to_string(),
            action: secflow_policy::Action::Run,
            facts,
            dev: grant.dev,
            approved: true,
            capability_increase: false,
            from_marketplace: false,
        };
        let decision = admission::decide(engine, &question);
        events.push(self.decision_event(secflow_policy::Action::Run, pref, &decision));
        // A quarantine holds even under a site policy that forgot the `quarantined` rule.
        if !decision.allowed || plugin.quarantined {
            let by = if decision.allowed {
                "the registry".to_string()
            } else {
                format!("policy {}", decision.policies.join(", "))
            };
            let mut err = HostError::refused(format!("running {id} refused by {by}"));
            if plugin.quarantined {
                err.message.push_str(&format!(
                    " (quarantined: {})",
                    plugin
                        .quarantine_reason
                        .as_deref()
                        .unwrap_or("too many violations")
                ));
                err = err.with_remedy(Remedy::Release { id: id.into() });
            }
            return Err(err);
        }

        Ok(Cleared {
            origin: crate::Origin::Installed,
            version: record.version.clone(),
            digest: record.digest.clone(),
            component: verified.package.component.clone().into(),
            manifest: Arc::new(manifest),
            installed: Some(Installed {
                grant,
                question,
                policies: decision.policies,
            }),
            loaded: Default::default(),
        })
    }
}

/// How long a clearance is reused at most. Within it, a change to the plugin's registry
/// state, its grant, the trust store or the policies ends it at once; the bound is for
/// what no file records: time (a key that expires, a signature's validity window).
const CLEARANCE_TTL: Duration = Duration::from_secs(10);

/// Clearances kept at most (one per actor and plugin); all are dropped past it.
const CLEARANCE_ENTRIES: usize = 1024;

/// The registry state a clearance was established from.
type ClearedState = (InstalledPlugin, String, Grant);

#[derive(Debug)]
struct CachedClearance {
    at: Instant,
    /// The registry file as it was just before the state below was read.
    registry: RegistryStamp,
    state: ClearedState,
    trust: FileStamp,
    policy: Arc<secflow_policy::PolicyEngine>,
    cleared: Cleared,
}

impl CachedClearance {
    /// Whether this clearance still holds for a run that found `snapshot` in the registry.
    fn still_valid(
        &self,
        (plugin, record, grant): &(InstalledPlugin, VersionRecord, Grant),
        trust: &FileStamp,
        policy: &Arc<secflow_policy::PolicyEngine>,
    ) -> bool {
        let (p, digest, g) = &self.state;
        self.at.elapsed() < CLEARANCE_TTL
            && self.trust == *trust
            && Arc::ptr_eq(&self.policy, policy)
            && *digest == record.digest
            && g == grant
            && p.version == plugin.version
            && p.digest == plugin.digest
            && p.enabled == plugin.enabled
            && p.pending_approval == plugin.pending_approval
            && p.quarantined == plugin.quarantined
            && p.violations == plugin.violations
            && p.updated_at == plugin.updated_at
            && p.signers == plugin.signers
    }
}

/// A registry file's stamp: size, modification time and inode of `registry.db` and its
/// write-ahead log, where every commit goes (WAL mode is set on the file, for every
/// process). Taken before the registry is read, it tells later runs whether anything was
/// committed since, without a query: run statistics live in `runs.db`, so the registry
/// file changes only when someone changes a plugin. File times are coarse (a clock tick,
/// a second on some file systems): two commits within one tick can leave the same size and
/// time, so a stamp stands for the state only once its newest time is [`SETTLE`] older
/// than the moment it was taken; until then, runs read the registry (as before).
#[derive(Debug, Clone)]
pub(crate) struct RegistryStamp {
    files: [Option<(u64, SystemTime, u64)>; 2],
    taken: SystemTime,
}

/// How old a registry file's time must be before its stamp stands for its content.
const SETTLE: Duration = Duration::from_secs(2);

impl RegistryStamp {
    pub(crate) fn of(paths: &crate::StateDir) -> RegistryStamp {
        use std::os::unix::fs::MetadataExt;
        let taken = SystemTime::now();
        let db = paths.registry_db();
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        let stat = |path: &std::path::Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?, m.ino())))
        };
        let db = stat(&db);
        let wal = db.and_then(|_| stat(std::path::Path::new(&wal)));
        RegistryStamp {
            files: [db, wal],
            taken,
        }
    }

    /// Whether the registry file exists (anything was ever installed).
    pub(crate) fn exists(&self) -> bool {
        self.files[0].is_some()
    }

    /// Whether no commit can hide behind this stamp: the files exist and none was
    /// modified within [`SETTLE`] before it was taken.
    fn settled(&self) -> bool {
        self.exists()
            && self.files.iter().flatten().all(|(_, modified, _)| {
                modified
                    .checked_add(SETTLE)
                    .is_some_and(|settled| settled < self.taken)
            })
    }
}

/// The same files (whenever the stamps were taken).
impl PartialEq for RegistryStamp {
    fn eq(&self, other: &RegistryStamp) -> bool {
        self.files == other.files
    }
}

/// One clearance slot: the clearance of one actor and plugin, or none yet.
type Slot = Arc<tokio::sync::Mutex<Option<CachedClearance>>>;

/// Run clearance done once and reused. Re-checking an installed plugin for every run means
/// reading its package, verifying every signature, loading the trust store and asking the
/// policies: milliseconds, where the run itself takes microseconds. A cached clearance is
/// reused only while the plugin's registry row, active version, digest and grant are as
/// they were (read from the registry for every run, so a disable, quarantine, upgrade or
/// approval anywhere shows at once), the trust store file is unchanged (a revocation shows
/// at once) and the policies are the same set, for at most [`CLEARANCE_TTL`]. Refusals are
/// never cached.
#[derive(Debug, Default)]
pub(crate) struct ClearanceCache {
    slots: Mutex<HashMap<String, Slot>>,
    /// Bundled plugins loaded without extra mounts, by digest (they never change).
    pub(crate) bundled: tokio::sync::Mutex<HashMap<String, Arc<secflow_runtime::Plugin>>>,
    /// Clearances served without a registry read.
    unread: std::sync::atomic::AtomicU64,
}

impl ClearanceCache {
    fn key(actor: &str, id: &str) -> String {
        format!("{actor}\0{id}")
    }

    /// The slot of `key`, made when first asked.
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().expect("clearance cache");
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= CLEARANCE_ENTRIES {
            // Holders of dropped slots keep theirs; later requests start afresh.
            slots.clear();
        }
        slots.entry(key.to_string()).or_default().clone()
    }
}

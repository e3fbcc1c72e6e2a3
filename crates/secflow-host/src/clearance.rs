//! Run clearance: what every front end checks before a plugin runs, in one place. An
//! installed plugin must be enabled and approved, its blob intact, its signatures still
//! valid against today's trust store with one of the grant's signers among them, the grant
//! bound to this exact package, and the policies must allow `run`. A bundled plugin must
//! match the digest its build pinned. A `--dev` plugin is the developer's own and runs with
//! what it declares, in a key-value store of its own.

use crate::audit::plugin_ref;
use crate::{Host, HostError, Remedy, Result};
use secflow_audit::{Action as AuditAction, Event};
use secflow_manifest::Manifest;
use secflow_registry::Registry;
use secflow_registry::admission::{self, Question};
use secflow_registry::grants::Grant;
use std::borrow::Cow;
use std::path::PathBuf;

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
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Bundled => "bundled",
            Origin::Dev => "dev",
            Origin::Installed => "installed",
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
    /// The manifest of the verified package (or the bundled / dev manifest).
    pub manifest: Manifest,
    pub component: Cow<'static, [u8]>,
    pub version: String,
    /// The package payload digest for installed plugins; the component digest otherwise.
    pub digest: String,
    installed: Option<Installed>,
}

/// What clearance established for an installed plugin.
#[derive(Debug, Clone)]
struct Installed {
    grant: Grant,
    /// The `run` question the policies allowed, asked again after a violation.
    question: Question,
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
            component: Cow::Borrowed(plugin.component),
            installed: None,
        }
    }

    /// A plugin from its source directory, run with what it declares.
    pub fn dev(manifest: Manifest, component: Vec<u8>) -> Cleared {
        Cleared {
            origin: Origin::Dev,
            version: manifest.version.to_string(),
            digest: secflow_io::sha256_hex(&component),
            manifest,
            component: Cow::Owned(component),
            installed: None,
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
        let mut granted = self.manifest.clone();
        granted.capabilities = grant.capabilities.clone();
        let namespace = secflow_runtime::KvNamespace::installed(id, &grant.signers);
        Ok(secflow_runtime::Grants::all_declared(&granted, &mounts)
            .map_err(HostError::invalid)?
            .with_kv_namespace(namespace))
    }

    pub(crate) fn question(&self) -> Option<&Question> {
        self.installed.as_ref().map(|i| &i.question)
    }
}

impl Host {
    /// Clears the plugin `id` to run: the installed plugin of that id (an installed
    /// version replaces a bundled one, as in a scan), else the bundled one. Records the
    /// audit events of the checks.
    pub async fn clear(&self, id: &str) -> Result<Cleared> {
        let installed = if self.has_registry() {
            self.registry().await?.get(id).await?.is_some()
        } else {
            false
        };
        if !installed {
            return match crate::bundled_plugin(id)? {
                Some(plugin) => Ok(Cleared::bundled(&plugin)),
                None => Err(HostError::new(
                    crate::ErrorKind::NotFound,
                    format!("no plugin `{id}` is bundled or installed"),
                )),
            };
        }
        let engine = self.policy()?;
        let mut events = Vec::new();
        let result = async {
            let mut registry = self.registry().await?;
            self.clear_installed(&mut registry, &engine, id, &mut events)
                .await
        }
        .await;
        self.record_then(events, result).await
    }

    /// Clears an installed plugin, or says why not. Pushes the audit events of the checks.
    pub(crate) async fn clear_installed(
        &self,
        registry: &mut Registry,
        engine: &secflow_policy::PolicyEngine,
        id: &str,
        events: &mut Vec<Event>,
    ) -> Result<Cleared> {
        // Plugin, active version and grant from one consistent read.
        let (plugin, record, grant) = registry.snapshot(id).await?;
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
        let bytes = registry.package(&record)?;

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
            component: Cow::Owned(verified.package.component.clone()),
            manifest,
            installed: Some(Installed { grant, question }),
        })
    }
}

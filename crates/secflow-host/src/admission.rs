//! Admission: every way into the registry (install, upgrade, a synced directory, later an
//! upload to the server) runs this one path. Signatures are verified on the raw bytes
//! against the trust store; the Cedar policies are asked with the facts of what will be
//! granted; the capabilities are shown to an [`Approver`] with their reasons; every
//! decision and change is an audit event.

use crate::audit::plugin_ref;
use crate::{Host, HostError, Remedy, Result};
use secflow_audit::{Action as AuditAction, Event, PluginRef};
use secflow_manifest::Manifest;
use secflow_policy::Action;
use secflow_registry::admission::{self, Question, Signer, Verified};
use secflow_registry::grants::{self, Ask, Grant};
use secflow_registry::{InstalledPlugin, NewVersion, Registry, RegistryError};
use std::path::PathBuf;

/// How a package enters the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallMode {
    /// The id must not be installed (or be this exact payload).
    Install,
    /// The id must be installed.
    Upgrade,
    /// Install or upgrade as the registry's state says; never asks anyone, and an older
    /// package is left alone.
    Sync,
}

/// A package file as it arrived.
#[derive(Debug, Clone)]
pub struct Package {
    /// Where it came from (a file name, an upload), for messages and the audit log.
    pub source: String,
    pub bytes: Vec<u8>,
    /// Fetched from a marketplace (not given as a file): the policies see
    /// `context.from_marketplace` and by default require a marketplace countersignature.
    pub from_marketplace: bool,
}

/// What to admit and how.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    pub packages: Vec<Package>,
    pub mode: InstallMode,
    /// Grant only these capability labels (empty: what the approval covers).
    pub select: Vec<String>,
    /// Granted directories bound to host directories (guest path, host path).
    pub mounts: Vec<(String, PathBuf)>,
    /// Developer mode: unsigned packages are admitted (the policies still judge).
    pub dev: bool,
    /// Accept a version older than one this host trusted before.
    pub allow_rollback: bool,
}

/// What an approver is shown for one package.
#[derive(Debug)]
pub struct ApprovalRequest<'a> {
    pub manifest: &'a Manifest,
    pub signers: &'a [Signer],
    /// Every capability asked for, with its reason.
    pub asks: &'a [Ask],
    /// For an update: the capability labels the installed version was not granted.
    pub increase: Option<&'a [String]>,
    /// The installed plugin, for an update.
    pub installed: Option<&'a InstalledPlugin>,
    pub purpose: Purpose,
}

/// What the approval is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Install,
    Upgrade,
    /// Turning on a plugin whose upgrade waits for approval of what it asks for.
    Enable,
}

/// A person's (or an API caller's) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Approved; `via` says how (`prompt`, `--yes`, `api:token-3`) for the grant record.
    Approved {
        via: String,
    },
    Declined,
    /// Nobody can be asked (no terminal, no reviewer).
    CannotAsk,
}

/// Who approves capabilities: the CLI's prompt or flags, later an API approval.
pub trait Approver: Send + Sync {
    /// Shown every package before it is judged.
    fn show(&self, _request: &ApprovalRequest<'_>) {}
    /// An approval given in advance, with how it was given (`--yes`, `--grant`), if any.
    fn standing(&self) -> Option<String>;
    /// Asks now. Called only when approval is needed, none stands, and the policies would
    /// allow the change once approved (nobody is asked for what policy forbids anyway).
    fn ask(&self, request: &ApprovalRequest<'_>) -> Answer;
}

/// What happened to one package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum AdmitOutcome {
    Installed,
    Upgraded {
        from: String,
    },
    /// That exact package was already the active version.
    Unchanged,
    /// The same payload with other signatures: the stored file and signers were replaced.
    Resigned,
    /// Sync only: not newer than the installed version; left alone.
    NotNewer {
        installed: String,
    },
}

/// One admitted package.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Admitted {
    pub id: String,
    pub version: String,
    pub digest: String,
    #[serde(flatten)]
    pub outcome: AdmitOutcome,
    pub granted: Vec<String>,
    pub held_for_approval: bool,
    /// A sentence for people.
    #[serde(skip)]
    pub message: String,
}

/// One package read and verified, waiting for its turn.
struct Candidate {
    source: String,
    bytes: Vec<u8>,
    from_marketplace: bool,
    verified: Verified,
}

impl Host {
    /// Verifies, admits, asks approval for and stores packages, dependencies first. Stops at
    /// the first refusal; what was stored before it stays (the error says how many).
    pub async fn install(
        &self,
        request: InstallRequest,
        approver: &dyn Approver,
    ) -> Result<Vec<Admitted>> {
        let mut events = Vec::new();
        let result = self.install_inner(&request, approver, &mut events).await;
        self.record_then(events, result).await
    }

    async fn install_inner(
        &self,
        request: &InstallRequest,
        approver: &dyn Approver,
        events: &mut Vec<Event>,
    ) -> Result<Vec<Admitted>> {
        let mounts = normalize_mounts(&request.mounts)?;
        let engine = self.policy()?;
        let candidates = {
            let _trust = self.inner.trust.lock().await;
            let mut store = self.load_trust_store()?;
            let mut candidates = Vec::new();
            let mut refused = None;
            for package in &request.packages {
                let result = admission::verify_package(
                    &package.bytes,
                    &mut store,
                    secflow_trust::now(),
                    request.dev,
                    request.allow_rollback,
                );
                let (plugin, decision, reason) = match &result {
                    Ok(v) => (
                        plugin_ref(
                            v.package.manifest.id.as_str(),
                            &v.package.manifest.version.to_string(),
                            &v.digest,
                        ),
                        if v.signers.is_empty() {
                            "accepted-unsigned-dev"
                        } else {
                            "accepted"
                        },
                        String::new(),
                    ),
                    Err(r) => (
                        r.verification.as_ref().and_then(|v| {
                            v.plugin_id.as_ref().map(|id| PluginRef {
                                id: id.clone(),
                                version: v.version.clone().unwrap_or_default(),
                                digest: v.package_sha256.clone(),
                            })
                        }),
                        "refused",
                        r.to_string(),
                    ),
                };
                events.push(Event {
                    details: serde_json::json!({ "file": package.source }),
                    ..self.event(AuditAction::SignatureVerify, plugin, decision, reason)
                });
                match result {
                    Ok(verified) => candidates.push(Candidate {
                        source: package.source.clone(),
                        bytes: package.bytes.clone(),
                        from_marketplace: package.from_marketplace,
                        verified,
                    }),
                    Err(r) => {
                        refused = Some(HostError::refused(format!(
                            "{}: refused: {r}",
                            package.source
                        )));
                        break;
                    }
                }
            }
            // The trust store's clock and trusted versions persist whatever the outcome.
            self.save_trust_store(&store)?;
            if let Some(err) = refused {
                return Err(err);
            }
            candidates
        };

        // Dependencies inside the set first; cycles inside it are reported before anything
        // is stored.
        let nodes: Vec<_> = candidates
            .iter()
            .map(|c| secflow_registry::deps::Node::from_manifest(&c.verified.package.manifest))
            .collect();
        let order = secflow_registry::deps::install_order(&nodes).map_err(HostError::refused)?;

        let mut registry = self.registry().await?;
        let mut admitted = Vec::new();
        for i in order {
            match self
                .admit_one(
                    &mut registry,
                    &engine,
                    &candidates[i],
                    request,
                    &mounts,
                    approver,
                    events,
                )
                .await
            {
                Ok(outcome) => admitted.push(outcome),
                Err(e) if admitted.is_empty() => return Err(e),
                Err(e) => {
                    let n = admitted.len();
                    return Err(e.context(format!("{n} package(s) installed before the failure")));
                }
            }
        }
        // Blobs a crashed install left without a row.
        if let Err(e) = registry.sweep().await {
            tracing::warn!("{e}");
        }
        Ok(admitted)
    }

    /// Admits, approves and stores one verified package; pushes its audit events.
    #[allow(clippy::too_many_arguments)]
    async fn admit_one(
        &self,
        registry: &mut Registry,
        engine: &secflow_policy::PolicyEngine,
        c: &Candidate,
        request: &InstallRequest,
        mounts: &[(String, PathBuf)],
        approver: &dyn Approver,
        events: &mut Vec<Event>,
    ) -> Result<Admitted> {
        let manifest = &c.verified.package.manifest;
        let id = manifest.id.to_string();
        let version = manifest.version.to_string();
        let pref = plugin_ref(&id, &version, &c.verified.digest);
        // The plugin, its active version and grant as one consistent read; the install
        // below is refused if another process changes them before it commits.
        let snapshot = match registry.snapshot(&id).await {
            Ok(s) => Some(s),
            Err(RegistryError::NotInstalled(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let current = snapshot.as_ref().map(|(p, _, _)| p.clone());
        let expected = current
            .as_ref()
            .map(|p| (p.version.clone(), p.digest.clone()));
        let same_payload = current
            .as_ref()
            .is_some_and(|p| p.version == version && p.digest == c.verified.digest);
        let mode = request.mode;
        let upgrade = match mode {
            InstallMode::Install => false,
            InstallMode::Upgrade => true,
            InstallMode::Sync => current.is_some(),
        };
        if mode == InstallMode::Sync
            && !same_payload
            && let Some(p) = &current
            && semver::Version::parse(&p.version)
                .is_ok_and(|installed| manifest.version <= installed)
        {
            // An older (or other same-numbered) package left in the directory.
            return Ok(Admitted {
                id: id.clone(),
                version: version.clone(),
                digest: c.verified.digest.clone(),
                outcome: AdmitOutcome::NotNewer {
                    installed: p.version.clone(),
                },
                granted: Vec::new(),
                held_for_approval: false,
                message: format!(
                    "{}: {id} {version} is not newer than the installed {}; left alone",
                    c.source, p.version
                ),
            });
        }
        if !upgrade
            && !same_payload
            && let Some(p) = &current
        {
            return Err(RegistryError::AlreadyInstalled {
                id,
                version: p.version.clone(),
            }
            .into());
        }
        if upgrade && current.is_none() {
            return Err(RegistryError::NotInstalled(id).into());
        }
        // An update (an upgrade, or the same payload signed again) asks only for what the
        // installed version did not ask for. Capabilities declined then stay declined. A
        // grant still waiting for approval approved nothing, so against it all is new.
        let is_update = current.is_some();
        let (baseline, approved_before) = match &snapshot {
            Some((_, record, grant)) if !grant.pending => (
                record.manifest.capabilities.clone(),
                grant.capabilities.clone(),
            ),
            _ => Default::default(),
        };
        let asks = grants::asks(&manifest.capabilities);
        let increase = if is_update {
            grants::increase(&baseline, &manifest.capabilities)
        } else {
            Vec::new()
        };
        let previous = snapshot.as_ref().map(|(_, _, g)| g.clone());
        let standing = approver.standing();
        let granted_caps = if !request.select.is_empty() {
            grants::select(&manifest.capabilities, &request.select).map_err(HostError::invalid)?
        } else if is_update && increase.is_empty() && standing.is_none() {
            grants::covered(&approved_before, &manifest.capabilities)
        } else {
            manifest.capabilities.clone()
        };
        for (guest, _) in mounts {
            if !granted_caps
                .filesystem
                .iter()
                .any(|f| &f.guest_path() == guest)
            {
                return Err(HostError::invalid(format!(
                    "mount {guest}: {id} is not granted that directory"
                )));
            }
        }

        let approval_request = ApprovalRequest {
            manifest,
            signers: &c.verified.signers,
            asks: &asks,
            increase: is_update.then_some(increase.as_slice()),
            installed: current.as_ref(),
            purpose: if upgrade {
                Purpose::Upgrade
            } else {
                Purpose::Install
            },
        };
        approver.show(&approval_request);

        // An install needs approval when anything is asked; an update when it asks for
        // more than the previous grant.
        let needs_approval = if is_update {
            !increase.is_empty()
        } else {
            !asks.is_empty()
        };
        let mut approval = match standing {
            Some(via) => Some(via),
            None if !needs_approval => Some(
                if is_update {
                    "carried-over"
                } else {
                    "none-asked"
                }
                .to_string(),
            ),
            None => None,
        };
        let facts = admission::facts(
            manifest,
            Some(&granted_caps),
            &c.verified.signers,
            current.as_ref().map_or(0, |p| p.violations),
            current.as_ref().is_some_and(|p| p.quarantined),
        );
        let action = if upgrade {
            Action::Upgrade
        } else {
            Action::Install
        };
        let ask_policy = |approved: bool| {
            admission::decide(
                engine,
                &Question {
                    principal: self.actor().to_string(),
                    action,
                    facts: facts.clone(),
                    dev: request.dev,
                    approved,
                    capability_increase: !increase.is_empty(),
                    from_marketplace: c.from_marketplace,
                },
            )
        };
        // Judge before asking, as if approved.
        let decision = ask_policy(true);
        if !decision.allowed {
            events.push(self.decision_event(action, pref.clone(), &decision));
            return Err(HostError::refused(format!(
                "{id} {version}: refused by policy {}{}",
                decision.policies.join(", "),
                if decision.errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", decision.errors.join("; "))
                },
            ))
            .with_remedy(Remedy::ExplainPolicy {
                policy_dir: self.paths().policy(),
            }));
        }
        if approval.is_none() && mode != InstallMode::Sync {
            match approver.ask(&approval_request) {
                Answer::Approved { via } => approval = Some(via),
                Answer::Declined => {
                    return Err(HostError::refused("not approved; nothing was changed"));
                }
                Answer::CannotAsk => {}
            }
        }
        if approval.is_none() && !upgrade {
            return Err(HostError::invalid(format!(
                "{id} asks for capabilities and nobody approved them"
            ))
            .with_remedy(Remedy::ApproveCapabilities));
        }
        // An upgrade without approval of its increase is stored, held and disabled: the
        // policy says so (`capability-increase-needs-approval`), and it is recorded.
        let approved = approval.is_some();
        let decision = ask_policy(approved);
        events.push(self.decision_event(action, pref.clone(), &decision));
        let held = !decision.allowed;
        if held
            && !decision
                .policies
                .iter()
                .all(|p| p == "capability-increase-needs-approval")
        {
            return Err(HostError::refused(format!(
                "{id} {version}: refused by policy {}",
                decision.policies.join(", ")
            )));
        }

        // Directories stay bound where the previous grant bound them, unless a mount says
        // otherwise; bindings of paths no longer granted are dropped.
        let mut bound: std::collections::BTreeMap<String, PathBuf> = previous
            .as_ref()
            .map(|g| g.mounts.clone())
            .unwrap_or_default();
        bound.extend(mounts.iter().cloned());
        bound.retain(|guest, _| {
            granted_caps
                .filesystem
                .iter()
                .any(|f| &f.guest_path() == guest)
        });
        let grant = Grant {
            plugin_id: id.clone(),
            version: version.clone(),
            digest: c.verified.digest.clone(),
            signers: c
                .verified
                .signers
                .iter()
                .map(|s| s.key_id.clone())
                .collect(),
            capabilities: granted_caps,
            mounts: bound,
            approval: approval.clone().unwrap_or_else(|| "pending".into()),
            approved_by: if approved {
                self.actor().to_string()
            } else {
                String::new()
            },
            approved_at: if approved {
                crate::now_rfc3339()
            } else {
                String::new()
            },
            pending: held,
            dev: request.dev,
        };
        let enable = !held
            && current
                .as_ref()
                .is_none_or(|p| p.enabled || p.pending_approval);
        let registry_mode = if upgrade {
            secflow_registry::InstallMode::Upgrade {
                allow_older: request.allow_rollback,
            }
        } else {
            secflow_registry::InstallMode::Install
        };
        if current.is_none() {
            // A fresh install starts with an empty key-value store, whatever an earlier
            // install of the same id (or a crash during its uninstall) left behind.
            self.remove_kv(&id);
        }
        let outcome = registry
            .install(
                NewVersion {
                    package_file: &c.bytes,
                    manifest,
                    digest: c.verified.digest.clone(),
                    signers: c.verified.signers.clone(),
                    grant: grant.clone(),
                    enable,
                    expected,
                },
                registry_mode,
            )
            .await?;
        let labels = grants::labels(&grant.capabilities);
        use secflow_registry::InstallOutcome as O;
        let (audit_action, message, outcome) = match outcome {
            O::Installed => (
                AuditAction::PluginInstall,
                format!("installed {id} {version} from {}", c.source),
                AdmitOutcome::Installed,
            ),
            O::Upgraded { from } if held => (
                AuditAction::PluginUpgrade,
                format!(
                    "upgraded {id} {from} -> {version}; disabled until the new capabilities are approved"
                ),
                AdmitOutcome::Upgraded { from },
            ),
            O::Upgraded { from } => (
                AuditAction::PluginUpgrade,
                format!("upgraded {id} {from} -> {version}"),
                AdmitOutcome::Upgraded { from },
            ),
            O::Unchanged => (
                AuditAction::PluginInstall,
                format!("{id} {version} is already installed"),
                AdmitOutcome::Unchanged,
            ),
            O::Resigned => (
                AuditAction::PluginResign,
                format!(
                    "{id} {version}: stored package replaced by the one signed by {}",
                    grant.signers.join(", ")
                ),
                AdmitOutcome::Resigned,
            ),
        };
        if outcome != AdmitOutcome::Unchanged {
            events.push(Event {
                details: serde_json::json!({
                    "granted": labels,
                    "approval": grant.approval,
                    "signers": grant.signers,
                    "increase": increase,
                    "held_for_approval": held,
                    "dev": request.dev,
                    "rollback_override": c.verified.rollback_override,
                }),
                ..self.event(
                    audit_action,
                    pref,
                    if held { "held" } else { "ok" },
                    message.clone(),
                )
            });
        }
        Ok(Admitted {
            id,
            version,
            digest: c.verified.digest.clone(),
            outcome,
            granted: labels,
            held_for_approval: held,
            message,
        })
    }

    /// Deletes an installed plugin's key-value stores (one per signer set), if any. Stores
    /// of `--dev` runs and bundled plugins with the same id are separate and stay.
    pub(crate) fn remove_kv(&self, id: &str) {
        let dir = secflow_runtime::KvNamespace::installed_root(&self.paths().kv(), id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("could not remove {}: {e}", dir.display()),
        }
    }
}

/// Mounts as a grant stores them: the guest path normalized and the host path absolute,
/// so later runs bind the same directory whatever directory they start in.
fn normalize_mounts(pairs: &[(String, PathBuf)]) -> Result<Vec<(String, PathBuf)>> {
    pairs
        .iter()
        .map(|(guest, host)| {
            let guest = secflow_manifest::normalize_guest_path(guest)
                .map_err(|e| HostError::invalid(format!("mount {guest}: {e}")))?;
            let host = std::path::absolute(host)
                .map_err(|e| HostError::invalid(format!("mount {}: {e}", host.display())))?;
            Ok((guest, host))
        })
        .collect()
}

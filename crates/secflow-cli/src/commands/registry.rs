//! `secflow plugin install|upgrade|uninstall|enable|disable|list|info|search|versions|
//! permissions|release|check`: the local registry (`SECFLOW_HOME/registry.db` and
//! `SECFLOW_HOME/blobs/`).
//!
//! Every way in runs the same admission: signatures verified on the raw bytes against the
//! trust store, the Cedar policies asked with the facts of what will be granted, the
//! capabilities shown with their reasons and approved by a person (prompt on a terminal,
//! `--yes` or `--grant` in scripts). Every decision and change is an audit event.

use crate::cli::InstallArgs;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_audit::{Event, PluginRef};
use secflow_policy::{Action, PolicyDecision, PolicyEngine};
use secflow_registry::admission::{self, Question, Verified};
use secflow_registry::grants::{self, Grant};
use secflow_registry::{
    InstallMode, InstallOutcome, InstalledPlugin, NewVersion, Registry, RegistryError, SearchQuery,
};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Who the audit log says acted: the local user running the CLI.
pub fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

pub use super::block_on;

/// Maps registry errors to the CLI's exit codes: a conflict with what is installed or a
/// broken dependency is a refusal (3); a missing plugin is a usage error (2).
pub fn registry_error(e: RegistryError) -> anyhow::Error {
    let code = match &e {
        RegistryError::NotInstalled(_) => Exit::Usage,
        RegistryError::Database(_) | RegistryError::Io(_) => Exit::Usage,
        _ => Exit::Refused,
    };
    fail(code, e.to_string())
}

pub async fn open(home: &Home) -> anyhow::Result<Registry> {
    Registry::open(&home.root).await.map_err(|e| {
        fail(
            Exit::Usage,
            format!("cannot open the registry in {}: {e}", home.root.display()),
        )
    })
}

pub fn policy_engine(home: &Home) -> anyhow::Result<PolicyEngine> {
    PolicyEngine::load(&home.policy()).map_err(|e| fail(Exit::Usage, e.to_string()))
}

pub fn plugin_ref(id: &str, version: &str, digest: &str) -> Option<PluginRef> {
    Some(PluginRef {
        id: id.to_string(),
        version: version.to_string(),
        digest: digest.to_string(),
    })
}

/// The audit event of a policy decision.
pub fn decision_event(
    action: Action,
    plugin: Option<PluginRef>,
    decision: &PolicyDecision,
) -> Event {
    Event {
        actor: actor(),
        action: "policy.decision".into(),
        plugin,
        decision: Some(if decision.allowed { "allow" } else { "deny" }.into()),
        reason: format!("{} by {}", action.as_str(), decision.policies.join(", ")),
        details: serde_json::json!({
            "action": action.as_str(),
            "policies": decision.policies,
            "errors": decision.errors,
        }),
    }
}

fn event(action: &str, plugin: Option<PluginRef>, decision: &str, reason: String) -> Event {
    Event {
        actor: actor(),
        action: action.into(),
        plugin,
        decision: Some(decision.into()),
        reason,
        details: serde_json::Value::Null,
    }
}

/// `secflow plugin search`.
pub fn search(home: &Home, query: SearchQuery, json: bool) -> anyhow::Result<Exit> {
    let found = block_on(async {
        open(home)
            .await?
            .search(&query)
            .await
            .map_err(registry_error)
    })??;
    print_plugins(&found, json)?;
    Ok(Exit::Success)
}

/// `--mount GUEST=HOST` pairs as a grant stores them: the guest path normalized and the host
/// path absolute, so later runs bind the same directory whatever directory they start in.
fn parse_mounts(pairs: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    super::run::parse_mounts(pairs)?
        .into_iter()
        .map(|(guest, host)| {
            let guest = secflow_manifest::normalize_guest_path(&guest)
                .map_err(|e| fail(Exit::Usage, format!("--mount {guest}: {e}")))?;
            let host = std::path::absolute(&host)
                .map_err(|e| fail(Exit::Usage, format!("--mount {}: {e}", host.display())))?;
            Ok((guest, host))
        })
        .collect()
}

/// One package read and verified, waiting for its turn.
struct Candidate {
    file: PathBuf,
    bytes: Vec<u8>,
    verified: Verified,
}

/// How a package enters the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `plugin install`: the id must not be installed (or be this exact payload).
    Install,
    /// `plugin upgrade`: the id must be installed.
    Upgrade,
    /// `plugin sync`: install or upgrade as the registry's state says, never prompting.
    Sync,
}

pub fn install(home: &Home, args: InstallArgs, mode: Mode) -> anyhow::Result<Exit> {
    let mounts = parse_mounts(&args.mounts)?;
    let engine = policy_engine(home)?;
    let mut store = secflow_trust::TrustStore::load(&home.trust_store())
        .map_err(|e| fail(Exit::Usage, e.to_string()))?;
    let mut events = Vec::new();
    let mut candidates = Vec::new();
    let mut refused: Option<anyhow::Error> = None;
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| fail(Exit::Usage, format!("cannot read {}: {e}", file.display())))?;
        let now = secflow_trust::now();
        let result =
            admission::verify_package(&bytes, &mut store, now, args.dev, args.allow_rollback);
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
            details: serde_json::json!({ "file": file.display().to_string() }),
            ..event("signature.verify", plugin, decision, reason)
        });
        match result {
            Ok(verified) => candidates.push(Candidate {
                file: file.clone(),
                bytes,
                verified,
            }),
            Err(r) => {
                refused = Some(fail(
                    Exit::Refused,
                    format!("{}: refused: {r}", file.display()),
                ));
                break;
            }
        }
    }
    // The trust store's clock and trusted versions persist whatever the outcome.
    store
        .save(&home.trust_store())
        .map_err(|e| fail(Exit::Usage, e.to_string()))?;
    if let Some(err) = refused {
        super::audit_record(home, events)?;
        return Err(err);
    }

    // Dependencies inside the set first; cycles inside it are reported before anything is
    // stored.
    let nodes: Vec<_> = candidates
        .iter()
        .map(|c| secflow_registry::deps::Node::from_manifest(&c.verified.package.manifest))
        .collect();
    let order = match secflow_registry::deps::install_order(&nodes) {
        Ok(order) => order,
        Err(cycle) => {
            super::audit_record(home, events)?;
            return Err(fail(Exit::Refused, cycle));
        }
    };

    let result = block_on(async {
        let mut registry = open(home).await.map_err(|e| (e, Vec::new()))?;
        let mut outcomes = Vec::new();
        for i in order {
            let c = &candidates[i];
            match admit_one(
                home,
                &mut registry,
                &engine,
                c,
                &args,
                &mounts,
                mode,
                &mut events,
            )
            .await
            {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => return Err((e, outcomes)),
            }
        }
        // Blobs a crashed install left without a row.
        if let Err(e) = registry.sweep().await {
            errln!("warning: {e}");
        }
        Ok(outcomes)
    })?;
    super::audit_record(home, events)?;
    let outcomes = match result {
        Ok(o) => o,
        Err((e, done)) => {
            if !done.is_empty() && !args.json {
                errln!("{} package(s) installed before the failure", done.len());
            }
            return Err(e);
        }
    };
    if args.json {
        outln!("{}", secflow_term::to_json_pretty(&outcomes)?);
    }
    Ok(Exit::Success)
}

/// Admits, approves and stores one verified package; pushes its audit events.
#[allow(clippy::too_many_arguments)]
async fn admit_one(
    home: &Home,
    registry: &mut Registry,
    engine: &PolicyEngine,
    c: &Candidate,
    args: &InstallArgs,
    args_mounts: &[(String, PathBuf)],
    mode: Mode,
    events: &mut Vec<Event>,
) -> anyhow::Result<serde_json::Value> {
    let manifest = &c.verified.package.manifest;
    let id = manifest.id.to_string();
    let version = manifest.version.to_string();
    let pref = plugin_ref(&id, &version, &c.verified.digest);
    // The plugin, its active version and grant as one consistent read; the install below
    // is refused if another process changes them before it commits.
    let snapshot = match registry.snapshot(&id).await {
        Ok(s) => Some(s),
        Err(RegistryError::NotInstalled(_)) => None,
        Err(e) => return Err(registry_error(e)),
    };
    let current = snapshot.as_ref().map(|(p, _, _)| p.clone());
    let expected = current
        .as_ref()
        .map(|p| (p.version.clone(), p.digest.clone()));
    let same_payload = current
        .as_ref()
        .is_some_and(|p| p.version == version && p.digest == c.verified.digest);
    let upgrade = match mode {
        Mode::Install => false,
        Mode::Upgrade => true,
        Mode::Sync => current.is_some(),
    };
    let interactive =
        mode != Mode::Sync && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if mode == Mode::Sync
        && !same_payload
        && let Some(p) = &current
        && semver::Version::parse(&p.version).is_ok_and(|installed| manifest.version <= installed)
    {
        // An older (or other same-numbered) package left in the directory: not an upgrade.
        errln!(
            "note: {}: {id} {version} is not newer than the installed {}; left alone",
            c.file.display(),
            p.version
        );
        return Ok(serde_json::json!({"id": id, "version": version, "outcome": "not-newer"}));
    }
    if !upgrade
        && !same_payload
        && let Some(p) = &current
    {
        return Err(registry_error(RegistryError::AlreadyInstalled {
            id,
            version: p.version.clone(),
        }));
    }
    if upgrade && current.is_none() {
        return Err(registry_error(RegistryError::NotInstalled(id)));
    }
    // An update (an upgrade, or the same payload signed again) asks a person only for what
    // the installed version did not ask for. Capabilities declined then stay declined. A
    // grant still waiting for approval approved nothing, so against it everything is new.
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
    let granted_caps = if !args.grants.is_empty() {
        grants::select(&manifest.capabilities, &args.grants).map_err(|e| fail(Exit::Usage, e))?
    } else if is_update && increase.is_empty() && !args.yes {
        grants::covered(&approved_before, &manifest.capabilities)
    } else {
        manifest.capabilities.clone()
    };
    for (guest, _) in args_mounts {
        if !granted_caps
            .filesystem
            .iter()
            .any(|f| &f.guest_path() == guest)
        {
            return Err(fail(
                Exit::Usage,
                format!("--mount {guest}: {id} is not granted that directory"),
            ));
        }
    }

    print_request(c, &asks, is_update.then_some(&increase), current.as_ref());

    // Approval: --grant or --yes in scripts, a prompt on a terminal. An install needs it when
    // anything is asked; an upgrade when it asks for more than the previous grant.
    let needs_approval = if is_update {
        !increase.is_empty()
    } else {
        !asks.is_empty()
    };
    let mut approval = if !args.grants.is_empty() {
        Some("--grant")
    } else if args.yes {
        Some("--yes")
    } else if !needs_approval {
        Some(if is_update {
            "carried-over"
        } else {
            "none-asked"
        })
    } else {
        None
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
                principal: actor(),
                action,
                facts: facts.clone(),
                dev: args.dev,
                approved,
                capability_increase: !increase.is_empty(),
            },
        )
    };
    // Judge before prompting, as if approved: no point asking a person for what policy
    // forbids anyway.
    let decision = ask_policy(true);
    if !decision.allowed {
        events.push(decision_event(action, pref.clone(), &decision));
        return Err(fail(
            Exit::Refused,
            format!(
                "{id} {version}: refused by policy {}{}; see `secflow policy explain --dev DIR` or edit {}",
                decision.policies.join(", "),
                if decision.errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", decision.errors.join("; "))
                },
                home.policy().display()
            ),
        ));
    }
    if approval.is_none() && interactive {
        if confirm(if upgrade {
            "Grant the new capabilities and upgrade?"
        } else {
            "Grant these capabilities and install?"
        })? {
            approval = Some("prompt");
        } else {
            return Err(fail(Exit::Refused, "not approved; nothing was changed"));
        }
    }
    if approval.is_none() && !upgrade {
        return Err(fail(
            Exit::Usage,
            format!(
                "{id} asks for capabilities; approve them with --yes, or name the ones to grant with --grant LABEL (no terminal to ask on)"
            ),
        ));
    }
    // An upgrade without approval of its increase is stored, held and disabled: the policy
    // says so (`capability-increase-needs-approval`), and the decision is recorded.
    let approved = approval.is_some();
    let decision = ask_policy(approved);
    events.push(decision_event(action, pref.clone(), &decision));
    let held = !decision.allowed;
    if held
        && !decision
            .policies
            .iter()
            .all(|p| p == "capability-increase-needs-approval")
    {
        return Err(fail(
            Exit::Refused,
            format!(
                "{id} {version}: refused by policy {}",
                decision.policies.join(", ")
            ),
        ));
    }

    // Directories stay bound where the previous grant bound them, unless --mount says
    // otherwise; bindings of paths no longer granted are dropped.
    let mut mounts: std::collections::BTreeMap<String, PathBuf> = previous
        .as_ref()
        .map(|g| g.mounts.clone())
        .unwrap_or_default();
    mounts.extend(args_mounts.iter().cloned());
    mounts.retain(|guest, _| {
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
        mounts,
        approval: approval.unwrap_or("pending").to_string(),
        approved_by: if approved { actor() } else { String::new() },
        approved_at: if approved {
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
        } else {
            String::new()
        },
        pending: held,
        dev: args.dev,
    };
    let enable = !held
        && current
            .as_ref()
            .is_none_or(|p| p.enabled || p.pending_approval);
    let mode = if upgrade {
        InstallMode::Upgrade {
            allow_older: args.allow_rollback,
        }
    } else {
        InstallMode::Install
    };
    if current.is_none() {
        // A fresh install starts with an empty key-value store, whatever an earlier install
        // of the same id (or a crash during its uninstall) left behind.
        remove_kv(home, &id);
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
            mode,
        )
        .await
        .map_err(registry_error)?;
    let labels = grants::labels(&grant.capabilities);
    let (audit_action, message) = match &outcome {
        InstallOutcome::Installed => (
            "plugin.install",
            format!("installed {id} {version} from {}", c.file.display()),
        ),
        InstallOutcome::Upgraded { from } if held => (
            "plugin.upgrade",
            format!(
                "upgraded {id} {from} -> {version}; disabled until the new capabilities are approved: secflow plugin enable {id}"
            ),
        ),
        InstallOutcome::Upgraded { from } => (
            "plugin.upgrade",
            format!("upgraded {id} {from} -> {version}"),
        ),
        InstallOutcome::Unchanged => (
            "plugin.install",
            format!("{id} {version} is already installed"),
        ),
        InstallOutcome::Resigned => (
            "plugin.resign",
            format!(
                "{id} {version}: stored package replaced by the one signed by {}",
                grant.signers.join(", ")
            ),
        ),
    };
    if outcome != InstallOutcome::Unchanged {
        events.push(Event {
            details: serde_json::json!({
                "granted": labels,
                "approval": grant.approval,
                "signers": grant.signers,
                "increase": increase,
                "held_for_approval": held,
                "dev": args.dev,
                "rollback_override": c.verified.rollback_override,
            }),
            ..event(
                audit_action,
                pref,
                if held { "held" } else { "ok" },
                message.clone(),
            )
        });
    }
    if outcome == InstallOutcome::Unchanged {
        errln!("{message}");
    } else if !args.json {
        outln!("{message}");
    }
    Ok(serde_json::json!({
        "id": id, "version": version, "digest": c.verified.digest,
        "outcome": outcome, "granted": labels, "held_for_approval": held,
    }))
}

fn print_request(
    c: &Candidate,
    asks: &[grants::Ask],
    increase: Option<&Vec<String>>,
    current: Option<&InstalledPlugin>,
) {
    let m = &c.verified.package.manifest;
    let signed = if c.verified.signers.is_empty() {
        "unsigned (developer mode)".to_string()
    } else {
        format!(
            "signed by {}",
            c.verified
                .signers
                .iter()
                .map(|s| format!("{} ({})", s.name.as_deref().unwrap_or(&s.key_id), s.role))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    errln!("{} {} ({}), {signed}", m.id, m.version, m.kind);
    errln!("  {}", m.description);
    if let Some(p) = current {
        errln!("  installed: {} ({})", p.version, p.state());
    }
    if asks.is_empty() {
        errln!("  asks for no capabilities");
    } else {
        errln!("  asks for:");
        for a in asks {
            let new = increase.is_some_and(|inc| inc.contains(&a.label));
            errln!(
                "    {}{:<40} {}",
                if new { "+ " } else { "  " },
                a.label,
                a.reason
            );
        }
    }
    if let Some(inc) = increase {
        if inc.is_empty() {
            errln!("  nothing beyond the current grant");
        } else {
            errln!("  new since the installed version: {}", inc.join(", "));
        }
    }
}

/// Asks a yes/no question on the terminal; anything but yes is no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    err!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn uninstall(home: &Home, id: &str, json: bool) -> anyhow::Result<Exit> {
    let removed = block_on(async {
        let mut registry = open(home).await?;
        registry.uninstall(id).await.map_err(registry_error)
    })??;
    let active = removed.iter().find(|v| v.active).or(removed.first());
    super::audit_record(
        home,
        vec![Event {
            details: serde_json::json!({
                "versions": removed.iter().map(|v| &v.version).collect::<Vec<_>>(),
            }),
            ..event(
                "plugin.uninstall",
                active.and_then(|v| plugin_ref(id, &v.version, &v.digest)),
                "ok",
                format!("uninstalled {id}"),
            )
        }],
    )?;
    // The plugin's key-value store goes with it (a later install also starts clean).
    remove_kv(home, id);
    if json {
        outln!(
            "{}",
            serde_json::json!({"uninstalled": id, "versions": removed.iter().map(|v| &v.version).collect::<Vec<_>>()})
        );
    } else {
        outln!(
            "uninstalled {id} ({})",
            removed
                .iter()
                .map(|v| v.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Exit::Success)
}

/// `secflow plugin sync DIR [--watch]`: every `*.sfpkg` in DIR goes through the same
/// admission as `install`/`upgrade` (verification, policy, approval, dependencies). A new id
/// is installed, a newer version upgrades (held if it asks for more and `--yes` was not
/// given); an older version is left alone; an invalid or refused package is skipped with a
/// warning and the rest go on. With `--watch` the directory is polled and a new or changed
/// file is admitted when it appears: the hot reload of the long-running modes.
pub fn sync(
    home: &Home,
    dir: &std::path::Path,
    yes: bool,
    watch: bool,
    interval: f64,
) -> anyhow::Result<Exit> {
    if !dir.is_dir() {
        return Err(fail(
            Exit::Usage,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let interval = std::time::Duration::from_secs_f64(interval.clamp(0.05, 3600.0));
    // What each file looked like when it was last admitted (or refused).
    let mut seen: std::collections::HashMap<PathBuf, (std::time::SystemTime, u64)> =
        std::collections::HashMap::new();
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| fail(Exit::Usage, format!("cannot list {}: {e}", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sfpkg") && p.is_file())
            .collect();
        files.sort();
        let mut refused = 0;
        for file in files {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let stamp = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len());
            if seen.get(&file) == Some(&stamp) {
                continue;
            }
            seen.insert(file.clone(), stamp);
            let args = InstallArgs {
                files: vec![file.clone()],
                yes,
                grants: Vec::new(),
                mounts: Vec::new(),
                dev: false,
                allow_rollback: false,
                json: false,
            };
            match install(home, args, Mode::Sync) {
                Ok(_) => {}
                Err(e) => {
                    refused += 1;
                    errln!("warning: skipped {}: {e:#}", file.display());
                }
            }
        }
        if !watch {
            return Ok(if refused == 0 {
                Exit::Success
            } else {
                Exit::Refused
            });
        }
        std::thread::sleep(interval);
    }
}

/// An installed plugin cleared to run: every check `secflow run ID` and `secflow scan` make
/// before loading it has passed.
#[derive(Debug)]
pub struct Prepared {
    pub record: secflow_registry::VersionRecord,
    pub grant: Grant,
    /// The manifest of the verified package.
    pub manifest: secflow_manifest::Manifest,
    /// The component of the verified package.
    pub component: Vec<u8>,
    /// The `run` question the policies allowed, for asking again after a violation.
    pub question: Question,
}

impl Prepared {
    /// The runtime grants: the stored grant's capabilities, granted directories bound where
    /// the grant says, or where `extra` re-binds them (granted directories only).
    pub fn grants(&self, extra: &[(String, PathBuf)]) -> anyhow::Result<secflow_runtime::Grants> {
        let id = self.record.id.as_str();
        let mut mounts: Vec<(String, PathBuf)> = self
            .grant
            .mounts
            .iter()
            .map(|(g, h)| (g.clone(), h.clone()))
            .collect();
        for (guest, host) in extra {
            let guest = secflow_manifest::normalize_guest_path(guest)
                .map_err(|e| fail(Exit::Usage, format!("--mount {guest}: {e}")))?;
            if !self
                .grant
                .capabilities
                .filesystem
                .iter()
                .any(|f| f.guest_path() == guest)
            {
                return Err(fail(
                    Exit::Usage,
                    format!("--mount {guest}: {id} is not granted that directory"),
                ));
            }
            mounts.retain(|(g, _)| g != &guest);
            mounts.push((guest, host.clone()));
        }
        let mut granted = self.manifest.clone();
        granted.capabilities = self.grant.capabilities.clone();
        // The store belongs to the verified identity (id + signers), never to whatever
        // claims the id: a `--dev` plugin with this id has a store of its own.
        let namespace = secflow_runtime::KvNamespace::installed(id, &self.grant.signers);
        Ok(secflow_runtime::Grants::all_declared(&granted, &mounts)
            .map_err(|e| fail(Exit::Usage, e))?
            .with_kv_namespace(namespace))
    }
}

/// Clears an installed plugin to run, or says why not (exit 3): enabled and approved, its
/// blob intact, its signatures still valid against today's trust store with one of the
/// grant's signers among them, the grant bound to this exact package, and the policies
/// allowing `run`. Pushes the audit events of the checks.
pub async fn prepare_installed(
    home: &Home,
    registry: &mut Registry,
    engine: &PolicyEngine,
    id: &str,
    events: &mut Vec<Event>,
) -> anyhow::Result<Prepared> {
    // Plugin, active version and grant from one consistent read.
    let (plugin, record, grant) = registry.snapshot(id).await.map_err(registry_error)?;
    if plugin.pending_approval || grant.pending {
        return Err(fail(
            Exit::Refused,
            format!(
                "{id} {} asks for capabilities that are not approved yet; review them with `secflow plugin permissions {id}` and approve with `secflow plugin enable {id}`",
                plugin.version
            ),
        ));
    }
    if !plugin.enabled {
        return Err(fail(
            Exit::Refused,
            format!("{id} is disabled; turn it on with `secflow plugin enable {id}`"),
        ));
    }
    let pref = plugin_ref(id, &record.version, &record.digest);
    // The stored bytes, checked against their blob name and the installed digest.
    let bytes = registry.package(&record).map_err(registry_error)?;

    // Trust may have changed since the install (a revoked key, a revoked digest): verify
    // again. Rollback protection was the install's job.
    let mut store = secflow_trust::TrustStore::load(&home.trust_store())
        .map_err(|e| fail(Exit::Usage, e.to_string()))?;
    let verified = match admission::verify_package(
        &bytes,
        &mut store,
        secflow_trust::now(),
        grant.dev,
        true,
    ) {
        Ok(v) => v,
        Err(refused) => {
            events.push(Event {
                actor: actor(),
                action: "signature.verify".into(),
                plugin: pref,
                decision: Some("refused".into()),
                reason: refused.to_string(),
                details: serde_json::json!({ "at": "run" }),
            });
            return Err(fail(
                Exit::Refused,
                format!("{id} {}: no longer trusted: {refused}", record.version),
            ));
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
        return Err(fail(
            Exit::Refused,
            format!(
                "{id} {}: the grant does not match the stored package (id, version, digest or signer); reinstall it",
                record.version
            ),
        ));
    }

    let facts = admission::facts(
        &manifest,
        Some(&grant.capabilities),
        &verified.signers,
        plugin.violations,
        plugin.quarantined,
    );
    let question = Question {
        principal: actor(),
        action: secflow_policy::Action::Run,
        facts,
        dev: grant.dev,
        approved: true,
        capability_increase: false,
    };
    let decision = admission::decide(engine, &question);
    events.push(decision_event(
        secflow_policy::Action::Run,
        pref.clone(),
        &decision,
    ));
    // A quarantine holds even under a site policy that forgot the `quarantined` rule.
    if !decision.allowed || plugin.quarantined {
        let hint = if plugin.quarantined {
            format!(
                " (quarantined: {}; lift it with `secflow plugin release {id}`)",
                plugin
                    .quarantine_reason
                    .as_deref()
                    .unwrap_or("too many violations")
            )
        } else {
            String::new()
        };
        let by = if decision.allowed {
            "the registry".to_string()
        } else {
            format!("policy {}", decision.policies.join(", "))
        };
        return Err(fail(
            Exit::Refused,
            format!("running {id} refused by {by}{hint}"),
        ));
    }

    Ok(Prepared {
        record,
        grant,
        component: verified.package.component.clone(),
        manifest,
        question,
    })
}

/// Deletes an installed plugin's key-value stores (one per signer set), if any. Stores of
/// `--dev` runs and bundled plugins with the same id are separate and stay.
fn remove_kv(home: &Home, id: &str) {
    let dir = secflow_runtime::KvNamespace::installed_root(&home.kv(), id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errln!("warning: could not remove {}: {e}", dir.display()),
    }
}

pub fn enable(home: &Home, id: &str, yes: bool) -> anyhow::Result<Exit> {
    let engine = policy_engine(home)?;
    let mut events = Vec::new();
    let result = block_on(async {
        let mut registry = open(home).await?;
        let (plugin, record, grant) = registry.snapshot(id).await.map_err(registry_error)?;
        let pref = plugin_ref(id, &plugin.version, &plugin.digest);
        let mut approved = !grant.pending;
        if grant.pending {
            errln!(
                "{id} {} asks for capabilities not approved yet:",
                plugin.version
            );
            for a in grants::asks(&grant.capabilities) {
                errln!("    {:<40} {}", a.label, a.reason);
            }
            approved = yes
                || (std::io::stdin().is_terminal()
                    && std::io::stderr().is_terminal()
                    && confirm("Grant them and enable?")?);
        }
        let facts = admission::facts(
            &record.manifest,
            Some(&grant.capabilities),
            &record.signers,
            plugin.violations,
            plugin.quarantined,
        );
        let decision = admission::decide(
            &engine,
            &Question {
                principal: actor(),
                action: Action::Enable,
                facts,
                dev: grant.dev,
                approved,
                capability_increase: grant.pending,
            },
        );
        events.push(decision_event(Action::Enable, pref.clone(), &decision));
        if !decision.allowed {
            let hint = if grant.pending && !approved {
                " (approve the new capabilities with --yes)"
            } else if plugin.quarantined {
                " (quarantined: `secflow plugin release` it first)"
            } else {
                ""
            };
            return Err(fail(
                Exit::Refused,
                format!(
                    "enabling {id} refused by policy {}{hint}",
                    decision.policies.join(", ")
                ),
            ));
        }
        if grant.pending && !approved {
            return Err(fail(
                Exit::Refused,
                format!("{id}: the new capabilities were not approved; nothing changed"),
            ));
        }
        let approval = grant
            .pending
            .then_some((if yes { "--yes" } else { "prompt" }, actor()));
        registry
            .set_enabled(
                id,
                true,
                &plugin.version,
                approval.as_ref().map(|(h, b)| (*h, b.as_str())),
            )
            .await
            .map_err(registry_error)?;
        events.push(event(
            "plugin.enable",
            pref,
            "ok",
            if grant.pending {
                format!("enabled {id} {}, new capabilities approved", plugin.version)
            } else {
                format!("enabled {id} {}", plugin.version)
            },
        ));
        outln!("enabled {id} {}", plugin.version);
        anyhow::Ok(Exit::Success)
    });
    super::audit_record(home, events)?;
    result?
}

pub fn disable(home: &Home, id: &str) -> anyhow::Result<Exit> {
    let plugin = block_on(async {
        let mut registry = open(home).await?;
        let plugin = registry.require(id).await.map_err(registry_error)?;
        registry
            .set_enabled(id, false, &plugin.version, None)
            .await
            .map_err(registry_error)?;
        anyhow::Ok(plugin)
    })??;
    super::audit_record(
        home,
        vec![event(
            "plugin.disable",
            plugin_ref(id, &plugin.version, &plugin.digest),
            "ok",
            format!("disabled {id}"),
        )],
    )?;
    outln!("disabled {id}");
    Ok(Exit::Success)
}

pub fn release(home: &Home, id: &str) -> anyhow::Result<Exit> {
    let plugin = block_on(async {
        let mut registry = open(home).await?;
        let plugin = registry.require(id).await.map_err(registry_error)?;
        registry.release(id).await.map_err(registry_error)?;
        anyhow::Ok(plugin)
    })??;
    super::audit_record(
        home,
        vec![event(
            "plugin.release",
            plugin_ref(id, &plugin.version, &plugin.digest),
            "ok",
            format!(
                "released {id} from quarantine ({} violation(s) cleared)",
                plugin.violations
            ),
        )],
    )?;
    outln!("released {id}; its violation count is reset");
    Ok(Exit::Success)
}

fn print_plugins(plugins: &[InstalledPlugin], json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", secflow_term::to_json_pretty(plugins)?);
        return Ok(());
    }
    if plugins.is_empty() {
        outln!("no plugins installed; add one with `secflow plugin install FILE`");
        return Ok(());
    }
    outln!(
        "{:<24} {:<10} {:<14} {:<17} {:<10} SIGNED BY",
        "ID",
        "VERSION",
        "KIND",
        "STATE",
        "VIOLATIONS"
    );
    for p in plugins {
        let signers = if p.signers.is_empty() {
            "unsigned (dev)".to_string()
        } else {
            p.signers
                .iter()
                .map(|s| s.name.clone().unwrap_or_else(|| s.key_id.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        outln!(
            "{:<24} {:<10} {:<14} {:<17} {:<10} {signers}",
            p.id,
            p.version,
            p.kind,
            p.state(),
            p.violations
        );
    }
    Ok(())
}

pub fn list(home: &Home, json: bool) -> anyhow::Result<Exit> {
    let plugins = block_on(async { open(home).await?.list().await.map_err(registry_error) })??;
    print_plugins(&plugins, json)?;
    Ok(Exit::Success)
}

pub fn versions(home: &Home, id: &str, json: bool) -> anyhow::Result<Exit> {
    let versions =
        block_on(async { open(home).await?.versions(id).await.map_err(registry_error) })??;
    if json {
        let out: Vec<_> = versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "version": v.version, "digest": v.digest, "active": v.active,
                    "installed_at": v.installed_at, "signers": v.signers,
                })
            })
            .collect();
        outln!("{}", secflow_term::to_json_pretty(&out)?);
    } else {
        for v in &versions {
            outln!(
                "{} {:<10} {}  installed {}",
                if v.active { "*" } else { " " },
                v.version,
                v.digest,
                v.installed_at
            );
        }
    }
    Ok(Exit::Success)
}

pub fn permissions(home: &Home, id: &str, json: bool) -> anyhow::Result<Exit> {
    let (_, record, grant) =
        block_on(async { open(home).await?.snapshot(id).await.map_err(registry_error) })??;
    let asked = grants::asks(&record.manifest.capabilities);
    let granted = grants::labels(&grant.capabilities);
    if json {
        outln!(
            "{}",
            secflow_term::to_json_pretty(&serde_json::json!({
                "asked": asked, "granted": granted, "grant": grant,
            }))?
        );
        return Ok(Exit::Success);
    }
    outln!(
        "{id} {} (digest {}), grant {}",
        grant.version,
        grant.digest,
        if grant.pending {
            "PENDING approval".to_string()
        } else {
            format!(
                "approved by {} via {} at {}",
                grant.approved_by, grant.approval, grant.approved_at
            )
        }
    );
    outln!(
        "bound to signer(s): {}",
        if grant.signers.is_empty() {
            "none (installed unsigned in developer mode)".to_string()
        } else {
            grant.signers.join(", ")
        }
    );
    if asked.is_empty() {
        outln!("asks for no capabilities");
    }
    for a in &asked {
        let state = if granted.contains(&a.label) {
            "granted"
        } else {
            "denied "
        };
        let mount = a
            .label
            .strip_prefix("fs:")
            .map(|p| p.trim_end_matches(":write"))
            .and_then(|p| grant.mounts.get(p))
            .map(|h| format!(" -> {}", h.display()))
            .unwrap_or_default();
        outln!("  {state} {}{mount}  ({})", a.label, a.reason);
    }
    Ok(Exit::Success)
}

pub fn info(home: &Home, id: &str, json: bool) -> anyhow::Result<Exit> {
    let (plugin, record, grant, stats, health, versions) = block_on(async {
        let mut registry = open(home).await?;
        let (plugin, record, grant) = registry.snapshot(id).await.map_err(registry_error)?;
        let versions = registry.versions(id).await.map_err(registry_error)?;
        let stats = registry.stats(id).await.map_err(registry_error)?;
        let health = registry.health(id).await.map_err(registry_error)?;
        anyhow::Ok((plugin, record, grant, stats, health, versions))
    })??;
    let granted = grants::labels(&grant.capabilities);
    if json {
        outln!(
            "{}",
            secflow_term::to_json_pretty(&serde_json::json!({
                "plugin": plugin,
                "manifest": record.manifest,
                "versions": versions.iter().map(|v| &v.version).collect::<Vec<_>>(),
                "grant": grant,
                "granted": granted,
                "stats": stats,
                "health": health,
            }))?
        );
        return Ok(Exit::Success);
    }
    let m = &record.manifest;
    outln!("{} {} — {}", m.id, m.version, m.name);
    outln!("  {}", m.description);
    outln!("kind          {}", m.kind);
    outln!("state         {}", plugin.state());
    if let Some(reason) = &plugin.quarantine_reason {
        outln!("quarantined   {reason}");
    }
    outln!("digest        {}", plugin.digest);
    if !m.authors.is_empty() {
        outln!("authors       {}", m.authors.join(", "));
    }
    if let Some(license) = &m.license {
        outln!("license       {license}");
    }
    if !m.categories.is_empty() || !m.tags.is_empty() {
        outln!(
            "categories    {}   tags {}",
            m.categories.join(", "),
            m.tags.join(", ")
        );
    }
    if !m.dependencies.is_empty() {
        let deps: Vec<String> = m
            .dependencies
            .iter()
            .map(|(d, r)| format!("{d} {r}"))
            .collect();
        outln!("dependencies  {}", deps.join(", "));
    }
    outln!(
        "versions      {}",
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if plugin.signers.is_empty() {
        outln!("signatures    none (installed in developer mode)");
    }
    for s in &plugin.signers {
        outln!(
            "signature     {} {} ({})",
            s.key_id,
            s.name.as_deref().unwrap_or("?"),
            s.role
        );
    }
    outln!(
        "granted       {}",
        if granted.is_empty() {
            "nothing".to_string()
        } else {
            granted.join(", ")
        }
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
    outln!(
        "runs          {} ({} errors, {} violations); avg {}, p95 {}",
        stats.executions,
        stats.errors,
        plugin.violations,
        ms(stats.avg_ms),
        ms(stats.p95_ms)
    );
    outln!(
        "last run      {}",
        match (&stats.last_run, &stats.last_outcome) {
            (Some(t), Some(o)) => format!("{t} ({o})"),
            _ => "never".to_string(),
        }
    );
    outln!(
        "health        {}",
        match &health {
            Some(h) => format!(
                "{} at {} ({}){}",
                if h.ok { "healthy" } else { "unhealthy" },
                h.time,
                h.version,
                if h.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", h.message)
                }
            ),
            None => format!("not checked yet (`secflow run {id} --health`)"),
        }
    );
    Ok(Exit::Success)
}

pub fn check(home: &Home, json: bool) -> anyhow::Result<Exit> {
    let problems = block_on(async { open(home).await?.check().await.map_err(registry_error) })??;
    if json {
        outln!(
            "{}",
            serde_json::json!({"intact": problems.is_empty(), "problems": problems})
        );
    } else if problems.is_empty() {
        outln!("registry intact: every installed package present and unmodified");
    } else {
        for p in &problems {
            errln!("problem: {p}");
        }
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Refused
    })
}

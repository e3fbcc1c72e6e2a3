//! `secflow policy check|init|explain`: the Cedar admission policies in
//! `SECFLOW_HOME/policy/` (the shipped defaults until `init` writes them there to edit).

use crate::cli::PolicyCommand;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_policy::{Action, PluginFacts, PolicyEngine, PolicyRequest};

pub fn run(home: &Home, cmd: PolicyCommand) -> anyhow::Result<Exit> {
    let dir = home.policy();
    match cmd {
        PolicyCommand::Init => {
            PolicyEngine::install_defaults(&dir).map_err(|e| fail(Exit::Usage, e.to_string()))?;
            outln!("wrote the default schema and policies to {}", dir.display());
            Ok(Exit::Success)
        }
        PolicyCommand::Check { json } => {
            let engine = load(&dir)?;
            let problems = engine.check();
            let errors = problems.iter().filter(|p| !p.warning).count();
            if json {
                outln!(
                    "{}",
                    secflow_term::to_json_pretty(&serde_json::json!({
                        "sources": engine.sources(),
                        "valid": errors == 0,
                        "problems": problems,
                    }))?
                );
            } else {
                for p in &problems {
                    errln!("{}: {p}", if p.warning { "warning" } else { "error" });
                }
                if errors == 0 {
                    outln!("policies valid: {}", engine.sources().join(", "));
                }
            }
            if errors > 0 {
                return Err(fail(
                    Exit::Usage,
                    format!(
                        "{errors} policy error(s); every decision is denied until they are fixed"
                    ),
                ));
            }
            Ok(Exit::Success)
        }
        PolicyCommand::Explain {
            id,
            dev,
            signed_by,
            dev_mode,
            json,
        } => {
            let engine = load(&dir)?;
            let (plugin, dev_mode, grant_pending) = match (id, dev) {
                (Some(id), _) => installed_facts(home, &id)?,
                (None, Some(dev)) => {
                    let manifest = super::read_manifest(&dev)?;
                    (
                        PluginFacts::from_manifest(&manifest, !signed_by.is_empty(), signed_by),
                        dev_mode,
                        false,
                    )
                }
                (None, None) => {
                    return Err(fail(Exit::Usage, "name an installed plugin or --dev DIR"));
                }
            };
            let decisions: Vec<(Action, secflow_policy::PolicyDecision)> = Action::ALL
                .into_iter()
                .map(|action| {
                    let request = PolicyRequest {
                        principal: "cli".into(),
                        roles: Vec::new(),
                        action,
                        plugin: plugin.clone(),
                        dev: dev_mode,
                        approved: false,
                        capability_increase: grant_pending,
                    };
                    (action, engine.decide(&request))
                })
                .collect();
            if json {
                let out: Vec<serde_json::Value> = decisions
                    .iter()
                    .map(|(a, d)| serde_json::json!({ "action": a.as_str(), "decision": d }))
                    .collect();
                outln!(
                    "{}",
                    secflow_term::to_json_pretty(&serde_json::json!({
                        "plugin": plugin,
                        "decisions": out,
                    }))?
                );
            } else {
                outln!(
                    "{}@{} ({}), {}:",
                    plugin.id,
                    plugin.version,
                    plugin.kind,
                    if plugin.signed {
                        format!("signed by {}", plugin.signer_roles.join(", "))
                    } else {
                        "unsigned".to_string()
                    }
                );
                for (action, d) in &decisions {
                    outln!(
                        "  {:<8} {}  by {}{}",
                        action.as_str(),
                        if d.allowed { "allow" } else { "deny " },
                        d.policies.join(", "),
                        if d.errors.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", d.errors.join("; "))
                        }
                    );
                }
            }
            Ok(Exit::Success)
        }
    }
}

fn load(dir: &std::path::Path) -> anyhow::Result<PolicyEngine> {
    PolicyEngine::load(dir).map_err(|e| fail(Exit::Usage, e.to_string()))
}

/// The facts of an installed plugin as `secflow run` would judge them: its grant, the
/// signers recorded at install, its violations and quarantine. Returns the facts, whether it
/// was installed in developer mode, and whether its grant waits for approval.
fn installed_facts(home: &Home, id: &str) -> anyhow::Result<(PluginFacts, bool, bool)> {
    use super::registry::{block_on, open, registry_error};
    block_on(async {
        let (plugin, record, grant) = open(home)
            .await?
            .snapshot(id)
            .await
            .map_err(registry_error)?;
        let facts = secflow_registry::admission::facts(
            &record.manifest,
            Some(&grant.capabilities),
            &record.signers,
            plugin.violations,
            plugin.quarantined,
        );
        anyhow::Ok((facts, grant.dev, grant.pending))
    })?
}

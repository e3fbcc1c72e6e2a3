//! `secflow policy check|init|explain`: the Cedar admission policies in
//! `SECFLOW_HOME/policy/` (the shipped defaults until `init` writes them there to edit).

use crate::cli::PolicyCommand;
use crate::exit::{Exit, HostResultExt, fail};
use secflow_host::Host;

pub fn run(host: &Host, cmd: PolicyCommand) -> anyhow::Result<Exit> {
    match cmd {
        PolicyCommand::Init => {
            let dir = host.policy_init().cli()?;
            outln!("wrote the default schema and policies to {}", dir.display());
            Ok(Exit::Success)
        }
        PolicyCommand::Check { json } => {
            let check = host.policy_check().cli()?;
            let errors = check.errors();
            if json {
                outln!(
                    "{}",
                    secflow_term::to_json_pretty(&serde_json::json!({
                        "sources": check.sources,
                        "valid": errors == 0,
                        "problems": check.problems,
                    }))?
                );
            } else {
                for p in &check.problems {
                    errln!("{}: {p}", if p.warning { "warning" } else { "error" });
                }
                if errors == 0 {
                    outln!("policies valid: {}", check.sources.join(", "));
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
            let explanation = match (id, dev) {
                (Some(id), _) => host.block_on(host.explain_installed(&id)).cli()?,
                (None, Some(dev)) => {
                    let manifest = secflow_host::read_manifest(&dev).cli()?;
                    host.explain_manifest(&manifest, signed_by, dev_mode)
                        .cli()?
                }
                (None, None) => {
                    return Err(fail(Exit::Usage, "name an installed plugin or --dev DIR"));
                }
            };
            let plugin = &explanation.plugin;
            if json {
                let out: Vec<serde_json::Value> = explanation
                    .decisions
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
                for (action, d) in &explanation.decisions {
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

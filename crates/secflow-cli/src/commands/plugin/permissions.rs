//! `secflow plugin permissions ID`: what a plugin asked for, what it was granted, and by
//! whom.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str, json: bool) -> anyhow::Result<Exit> {
    let p = host.block_on(host.permissions(id)).cli()?;
    if json {
        outln!(
            "{}",
            secflow_term::to_json_pretty(&serde_json::json!({
                "asked": p.asked, "granted": p.granted, "grant": p.grant,
            }))?
        );
        return Ok(Exit::Success);
    }
    let grant = &p.grant;
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
    if p.asked.is_empty() {
        outln!("asks for no capabilities");
    }
    for a in &p.asked {
        let state = if p.granted.contains(&a.label) {
            "granted"
        } else {
            "denied "
        };
        let mount = a
            .label
            .strip_prefix("fs:")
            .map(|path| path.trim_end_matches(":write"))
            .and_then(|path| grant.mounts.get(path))
            .map(|h| format!(" -> {}", h.display()))
            .unwrap_or_default();
        outln!("  {state} {}{mount}  ({})", a.label, a.reason);
    }
    Ok(Exit::Success)
}

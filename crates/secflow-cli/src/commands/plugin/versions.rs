//! `secflow plugin versions ID`: every stored version, the active one marked.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str, json: bool) -> anyhow::Result<Exit> {
    let versions = host.block_on(host.versions(id)).cli()?;
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

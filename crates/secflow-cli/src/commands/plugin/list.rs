//! `secflow plugin list|search`: the bundled plugins and the installed ones.

use crate::exit::{Exit, HostResultExt};
use secflow_host::types::SearchQuery;
use secflow_host::{Host, Origin, PluginListing};

pub fn list(host: &Host, json: bool) -> anyhow::Result<Exit> {
    let plugins = host.block_on(host.list()).cli()?;
    print(&plugins, json)
}

pub fn search(host: &Host, query: SearchQuery, json: bool) -> anyhow::Result<Exit> {
    let plugins = host.block_on(host.search(&query)).cli()?;
    print(&plugins, json)
}

fn print(plugins: &[PluginListing], json: bool) -> anyhow::Result<Exit> {
    if json {
        outln!("{}", secflow_term::to_json_pretty(plugins)?);
        return Ok(Exit::Success);
    }
    if plugins.is_empty() {
        outln!("no plugins match");
        return Ok(Exit::Success);
    }
    outln!(
        "{:<24} {:<10} {:<14} {:<10} {:<17} {:<10} SIGNED BY",
        "ID",
        "VERSION",
        "KIND",
        "ORIGIN",
        "STATE",
        "VIOLATIONS"
    );
    for row in plugins {
        let p = &row.plugin;
        let signers = match row.origin {
            Origin::Bundled => "built into secflow".to_string(),
            _ if p.signers.is_empty() => "unsigned (dev)".to_string(),
            _ => p
                .signers
                .iter()
                .map(|s| s.name.clone().unwrap_or_else(|| s.key_id.clone()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        outln!(
            "{:<24} {:<10} {:<14} {:<10} {:<17} {:<10} {signers}",
            p.id,
            p.version,
            p.kind,
            row.origin,
            p.state(),
            p.violations
        );
    }
    if !plugins.iter().any(|p| p.origin == Origin::Installed) {
        outln!("(nothing installed; add a package with `secflow plugin install FILE`)");
    }
    Ok(Exit::Success)
}
